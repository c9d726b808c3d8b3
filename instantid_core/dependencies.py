"""The pack's dependencies beyond ComfyUI's own (opencv, insightface, onnxruntime, onnx), imported when first used.

A missing or broken one never stops the pack from loading: every node still registers, and the node that needs the
broken piece fails with a message naming it, what went wrong and the exact install command for the Python that runs
ComfyUI. `cv2` here stands for opencv in the modules that draw and resize.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType

from .errors import KINDS


@dataclass(frozen=True)
class Dependency:
    """A module the pack imports, the distribution that provides it and what the pack uses it for."""

    module: str
    distribution: str
    purpose: str
    note: str = ""
    needs: tuple[str, ...] = ()  # the other dependencies it imports itself


DEPENDENCIES = (
    Dependency("cv2", "opencv-python-headless", "drawing keypoints, resizing and cropping photos"),
    Dependency("insightface", "insightface", "face detection and recognition", needs=("cv2", "onnxruntime", "onnx")),
    Dependency(
        "onnxruntime",
        "onnxruntime",
        "running the face models",
        " (with an NVIDIA GPU, onnxruntime-gpu instead; never both)",
    ),
    Dependency("onnx", "onnx", "reading face model files"),
)
_BY_MODULE = {dependency.module: dependency for dependency in DEPENDENCIES}


MissingDependency = KINDS["missing_dependency"]
"""The error of a dependency that cannot be imported (code missing_dependency)."""


def install_command(distribution: str) -> str:
    """The pip command that installs a distribution into the Python running now (ComfyUI's)."""
    return f'"{sys.executable}" -m pip install {distribution}'


def import_problem(module: str) -> Exception | None:
    """What goes wrong importing a module, or None if it imports."""
    try:
        importlib.import_module(module)
    except Exception as e:  # a broken install raises anything from ImportError to OSError (a missing DLL)
        return e
    return None


def uninstall_command(*distributions: str) -> str:
    """The pip command that removes distributions from the Python running now (ComfyUI's)."""
    return f'"{sys.executable}" -m pip uninstall -y {" ".join(distributions)}'


def require(module: str) -> ModuleType:
    """Import a module (or submodule) of a dependency; a MissingDependency when it cannot be imported, naming the
    dependency at fault (insightface fails when opencv or onnxruntime does) and how to install it."""
    problem = import_problem(module)
    if problem is None:
        return importlib.import_module(module)
    wanted = _BY_MODULE[module.split(".")[0]]
    others = (_BY_MODULE[name] for name in wanted.needs)
    culprit, error = next(((d, e) for d in others if (e := import_problem(d.module))), (wanted, problem))
    needed_by = "" if culprit is wanted else f" (which {wanted.distribution} needs)"
    raise MissingDependency(
        f"The InstantID pack needs {culprit.distribution}{needed_by} for {culprit.purpose}, but '{culprit.module}' "
        f"cannot be imported ({type(error).__name__}: {error}). Install it into the Python that runs ComfyUI: "
        f"{install_command(culprit.distribution)}{culprit.note}, then restart ComfyUI."
    ) from problem


class LazyModule:
    """A dependency's module, imported when one of its attributes is first used."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        """The module's attribute; a MissingDependency if the module cannot be imported."""
        return getattr(require(self._name), attribute)


cv2 = LazyModule("cv2")
"""opencv, imported on first use."""

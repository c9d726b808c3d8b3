"""Dependencies imported on first use: a missing one is named, with the install command for this Python."""

import sys
from types import ModuleType

import pytest

from instantid_core import dependencies
from instantid_core.dependencies import MissingDependency, require

pytestmark = pytest.mark.unit


def test_a_missing_module_is_named_with_its_distribution_and_the_install_command_for_this_python(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what Python does for a module that cannot be imported

    with pytest.raises(MissingDependency) as error:
        require("cv2")

    message = str(error.value)
    assert "needs opencv-python-headless for drawing keypoints" in message and "'cv2' cannot be imported" in message
    assert f'"{sys.executable}" -m pip install opencv-python-headless' in message


def test_opencv_is_imported_only_when_first_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)

    with pytest.raises(MissingDependency, match="opencv-python-headless"):
        getattr(dependencies.cv2, "INTER_AREA")  # noqa: B009  (the attribute access is the test)
    monkeypatch.undo()
    assert isinstance(dependencies.cv2.INTER_AREA, int)


def test_insightface_failing_because_onnxruntime_is_broken_names_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "insightface.model_zoo", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)

    with pytest.raises(MissingDependency) as error:
        require("insightface.model_zoo")

    message = str(error.value)
    assert "needs onnxruntime (which insightface needs) for running the face models" in message
    assert "-m pip install onnxruntime (with an NVIDIA GPU, onnxruntime-gpu instead; never both)" in message


def test_insightface_failing_on_its_own_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "insightface.model_zoo", None)

    with pytest.raises(MissingDependency, match="needs insightface for face detection"):
        require("insightface.model_zoo")


def test_a_module_that_imports_comes_back_itself_and_a_submodule_too_not_its_package(monkeypatch):
    package, submodule = ModuleType("insightface"), ModuleType("insightface.model_zoo")
    monkeypatch.setitem(sys.modules, "insightface", package)  # stand-ins: what an import of these names gives
    monkeypatch.setitem(sys.modules, "insightface.model_zoo", submodule)

    assert require("insightface") is package
    assert require("insightface.model_zoo") is submodule

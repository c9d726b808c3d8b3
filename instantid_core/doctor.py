"""InstantID Doctor: what is installed, what the face models run on, and every model file the pack uses, found where
and identified as what, with the exact fix for each problem.

Every check reads; nothing is changed, downloaded or moved. The host glue passes in ComfyUI's version and the folders
ComfyUI searches (its own and those of extra_model_paths.yaml).
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import model_files
from .dependencies import DEPENDENCIES, import_problem, install_command, require, uninstall_command
from .errors import InstantIDError
from .face_pack import ANTELOPEV2_FILES, PACK_SOURCE, check_face_pack, load_pack_models
from .model_facts import ADAPTER, IDENTITYNET, IDENTITYNET_SHAPE
from .model_files import IP_ADAPTERS, NO_MODEL, FileKind

IDENTITYNET_PATH = tuple(IDENTITYNET.relative.split("/"))
"""Where IdentityNet goes inside a controlnet folder."""
INSIGHTFACE_MINIMUM = (2, 1)
INSIGHTFACE_UPGRADE = '-U "insightface>=2.1"'
ONNXRUNTIME_FOR_NUMPY_2 = (1, 19)
"""The first onnxruntime built for numpy 2."""
MODEL_EXTENSIONS = {".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".sft"}

DISTRIBUTIONS = {
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "onnxruntime": (
        "onnxruntime",
        "onnxruntime-gpu",
        "onnxruntime-directml",
        "onnxruntime-silicon",
        "onnxruntime-openvino",
    ),
    "insightface": ("insightface",),
    "onnx": ("onnx",),
    "numpy": ("numpy",),
}
"""The distributions that can provide each library; two of one library installed at once fight over its module."""
PREFERRED = {"opencv": "opencv-python-headless", "onnxruntime": "onnxruntime"}
"""The distribution to install where several provide a library."""


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, whether it is fine, and what was found or what to do."""

    subject: str
    ok: bool
    detail: str

    def line(self) -> str:
        """The finding as one report line."""
        return f"  {'OK     ' if self.ok else 'PROBLEM'} {self.subject}: {self.detail}"


@dataclass(frozen=True)
class ModelFolders:
    """The folders ComfyUI searches for each kind of model the pack uses."""

    instantid: tuple[Path, ...]
    controlnet: tuple[Path, ...]
    insightface: tuple[Path, ...]


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """The installed version of each of these distributions that is installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: '1.19.2rc1' → (1, 19, 2)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def environment(comfyui: str, torch_module) -> list[Finding]:
    """ComfyUI, Python and torch versions, the libraries the pack needs and the combinations known to break."""
    findings = [
        Finding("ComfyUI", True, comfyui),
        Finding("Python", True, f"{sys.version.split()[0]} ({sys.executable})"),
        Finding("torch", True, f"{torch_module.__version__} (CUDA {torch_module.version.cuda or 'none'})"),
    ]
    for library, names in DISTRIBUTIONS.items():
        versions = installed_versions(names)
        shown = ", ".join(f"{name} {version}" for name, version in versions.items()) or "not installed"
        if library == "opencv" and len(versions) > 1 and len(set(versions.values())) == 1:
            findings.append(
                Finding(
                    library,
                    True,
                    f"{shown}: insightface requires opencv-python and this pack adds the headless build (cv2 then "
                    "imports without the desktop's libGL); one version, so they install the same cv2.",
                )
            )
        elif len(versions) > 1:
            findings.append(
                Finding(
                    library,
                    False,
                    f"{shown}: these share one module and whichever was installed last wins. Uninstall all, then "
                    f"install one: {uninstall_command(*versions)}; then {install_command(PREFERRED[library])}"
                    f"{' (onnxruntime-gpu on NVIDIA GPUs)' if library == 'onnxruntime' else ''}.",
                )
            )
        else:
            findings.append(Finding(library, bool(versions), shown))
    findings += _imports() + _known_bad_versions()
    return findings


def _imports() -> list[Finding]:
    """Whether each dependency's module imports, with the fix when it does not."""
    findings = []
    for dependency in DEPENDENCIES:
        problem = import_problem(dependency.module)
        if problem is None:
            findings.append(Finding(f"import {dependency.module}", True, "imports"))
            continue
        hint = ""
        if dependency.module == "onnxruntime" and "numpy" in str(problem).lower():
            hint = " It was built for another numpy than the one installed: upgrade onnxruntime."
        if dependency.module == "cv2" and "libGL" in str(problem):
            hint = (
                " opencv-python needs a desktop's libGL; the headless build does not: "
                f"{install_command('--force-reinstall opencv-python-headless')}."
            )
        findings.append(
            Finding(
                f"import {dependency.module}",
                False,
                f"fails ({type(problem).__name__}: {problem}).{hint} Fix: "
                f"{install_command(dependency.distribution)}{dependency.note}, then restart ComfyUI.",
            )
        )
    return findings


def _known_bad_versions() -> list[Finding]:
    """insightface too old; numpy 2 with an onnxruntime built for numpy 1."""
    findings = []
    versions = installed_versions(("insightface", "numpy", *DISTRIBUTIONS["onnxruntime"]))
    insightface = versions.get("insightface")
    if insightface and version_tuple(insightface) < INSIGHTFACE_MINIMUM:
        findings.append(
            Finding(
                "insightface version",
                False,
                f"{insightface} is older than 2.1, which the pack needs (the older releases need a C++ compiler to "
                f"install and predate numpy 2). Fix: {install_command(INSIGHTFACE_UPGRADE)}.",
            )
        )
    numpy = versions.get("numpy")
    runtimes = {name: v for name, v in versions.items() if name.startswith("onnxruntime")}
    for name, version in runtimes.items():
        if numpy and version_tuple(numpy) >= (2,) and version_tuple(version) < ONNXRUNTIME_FOR_NUMPY_2:
            findings.append(
                Finding(
                    "numpy and onnxruntime",
                    False,
                    f"{name} {version} was built for numpy 1, but numpy {numpy} is installed. Fix: "
                    f"{install_command('-U ' + name)}.",
                )
            )
    return findings


def execution(torch_module) -> list[Finding]:
    """The providers onnxruntime offers, the one a face-model session actually runs on, and CUDA as torch and
    onnxruntime see it."""
    if import_problem("onnxruntime") is not None or import_problem("onnx") is not None:
        return [Finding("onnxruntime", False, "cannot be imported (see above), so face analysis cannot run")]
    from .face_analysis import resolve_providers

    onnxruntime = require("onnxruntime")
    available = list(onnxruntime.get_available_providers())
    wanted, _ = resolve_providers("auto", available)
    used = _session_provider(wanted)
    torch_cuda = torch_module.cuda.is_available()
    findings = [
        Finding("onnxruntime providers", True, ", ".join(available)),
        Finding(
            "face models run on",
            used == wanted[0],
            used
            if used == wanted[0]
            else f"{used}, although {wanted[0]} was asked for: onnxruntime could not start "
            f"it (usually a CUDA or cuDNN library that does not match onnxruntime-gpu's build; see the console).",
        ),
        Finding(
            "CUDA (torch)",
            True,
            f"{torch_module.cuda.get_device_name(0)}, CUDA {torch_module.version.cuda}"
            if torch_cuda
            else "no CUDA device (a CPU build of torch, or no NVIDIA driver)",
        ),
    ]
    onnx_cuda = "CUDAExecutionProvider" in available
    if torch_cuda and not onnx_cuda:
        findings.append(
            Finding(
                "CUDA (onnxruntime)",
                False,
                "torch uses the GPU but onnxruntime has no CUDA provider, so face analysis runs on the CPU. Fix: "
                f"{uninstall_command('onnxruntime')}; then {install_command('onnxruntime-gpu')}.",
            )
        )
    else:
        findings.append(Finding("CUDA (onnxruntime)", True, "available" if onnx_cuda else "not available"))
    return findings


def _session_provider(providers: Sequence[str]) -> str:
    """The provider an onnxruntime session (a one-node graph) actually runs on, asked for these providers."""
    onnx = require("onnx")
    helper = onnx.helper
    value = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    result = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "doctor", [value], [result])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = require("onnxruntime").InferenceSession(model.SerializeToString(), providers=list(providers))
    return session.get_providers()[0]


def model_files_of(folder: Path, skip: Sequence[str] = ()) -> list[Path]:
    """The model files of a folder and its sub-folders (except those named in `skip`)."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in MODEL_EXTENSIONS and not (set(path.relative_to(folder).parts[:-1]) & set(skip))
    )


def adapters(folders: ModelFolders) -> list[Finding]:
    """Every file in the InstantID adapter folders, identified; a problem if none is InstantID's adapter."""
    findings = [
        _adapter_folder_file(path, folders)
        for folder in folders.instantid
        for path in model_files_of(folder, skip=("faces",))
    ]
    if not any(f.ok for f in findings):
        findings.append(
            Finding(
                "InstantID adapter",
                False,
                f"none in {', '.join(map(str, folders.instantid)) or 'models/instantid'}: download {ADAPTER.name} "
                f"from {ADAPTER.source} into models/instantid/ (or use 'InstantID Download Models').",
            )
        )
    return findings


def _adapter_folder_file(path: Path, folders: ModelFolders) -> Finding:
    """One file of an adapter folder: fine if it is InstantID's adapter, else the one fix for what it is."""
    found = model_files.identify(path)
    put_the_adapter = f"put {ADAPTER.name} from {ADAPTER.source} here"
    if found.kind is FileKind.INSTANTID_ADAPTER:
        return Finding(str(path), True, "InstantID's adapter")
    if _is_identitynet(path, found):
        target = folders.controlnet[0].joinpath(*IDENTITYNET_PATH) if folders.controlnet else "models/controlnet"
        fix = f"this is IdentityNet, not the adapter: move it to {target}."
    elif found.kind in NO_MODEL:
        fix = f"{found.description}. InstantID's adapter is {ADAPTER.name} from {ADAPTER.source}."
    elif found.kind in IP_ADAPTERS:
        fix = (
            f"{found.description}: move it out of this folder (IP-Adapters belong in models/ipadapter) and "
            f"{put_the_adapter}."
        )
    else:
        fix = f"{found.description}. This folder is for InstantID's adapter: move it out and {put_the_adapter}."
    return Finding(str(path), False, fix)


def _transformer_blocks(path: Path) -> int:
    """How many transformer blocks a ControlNet file holds (diffusers or ComfyUI key layout)."""
    blocks = set()
    for key in model_files.tensor_shapes(path):
        match = re.match(r"(.*\.transformer_blocks\.\d+)\.", key)
        if match:
            blocks.add(match.group(1))
    return len(blocks)


def _is_identitynet(path: Path, found: model_files.FileIdentity) -> bool:
    """Whether a file is an SDXL ControlNet with IdentityNet's (full-size) structure."""
    return found.kind is FileKind.SDXL_CONTROLNET and _transformer_blocks(path) == IDENTITYNET_SHAPE.transformer_blocks


def identitynet(folders: ModelFolders) -> list[Finding]:
    """IdentityNet at controlnet/instantid/diffusion_pytorch_model.safetensors in some controlnet folder."""
    findings = []
    for folder in folders.controlnet:
        path = folder.joinpath(*IDENTITYNET_PATH)
        if not path.exists():
            continue
        found = model_files.identify(path)
        if _is_identitynet(path, found):
            findings.append(Finding(str(path), True, "an SDXL ControlNet of IdentityNet's full size"))
        else:
            findings.append(Finding(str(path), False, _not_identitynet(path, found)))
    if not findings:
        expected = [str(folder.joinpath(*IDENTITYNET_PATH)) for folder in folders.controlnet]
        findings.append(
            Finding(
                "IdentityNet",
                False,
                f"not found at {' or '.join(expected) or 'models/controlnet/instantid/'}: download "
                f"{IDENTITYNET.source} into models/controlnet/instantid/ (or use 'InstantID Download Models').",
            )
        )
    return findings


def _not_identitynet(path: Path, found: model_files.FileIdentity) -> str:
    """The one fix for a file in IdentityNet's place that is not IdentityNet, by what it is."""
    if found.kind in NO_MODEL:
        return f"{found.description}. IdentityNet is {IDENTITYNET.source}."
    controlnet = found.kind in (FileKind.CONTROLNET, FileKind.SDXL_CONTROLNET)
    blocks = f" with {_transformer_blocks(path)} transformer blocks" if controlnet else ""
    return (
        f"{found.description}{blocks}, not IdentityNet ({IDENTITYNET_SHAPE.transformer_blocks} transformer blocks, "
        f"{IDENTITYNET_SHAPE.context_width}-wide cross-attention): replace it with {IDENTITYNET.source}."
    )


def face_packs(folders: ModelFolders) -> list[Finding]:
    """Every face pack in models/insightface/models/ of each insightface folder, checked and loaded on the CPU; and
    face model files put one level too high."""
    findings = []
    for root in folders.insightface:
        if not root.is_dir():
            continue
        for stray in sorted(list(root.glob("*.onnx")) + list((root / "models").glob("*.onnx"))):
            findings.append(
                Finding(
                    str(stray),
                    False,
                    f"face model files belong in a pack folder: move it into {root / 'models' / 'antelopev2'}.",
                )
            )
        for misplaced in sorted(d for d in root.iterdir() if d.is_dir() and d.name != "models"):
            if any(misplaced.glob("*.onnx")):
                findings.append(
                    Finding(
                        str(misplaced),
                        False,
                        f"a face pack outside models/: move the folder to {root / 'models' / misplaced.name}.",
                    )
                )
        packs = root / "models"
        if packs.is_dir():
            for pack in sorted(d for d in packs.iterdir() if d.is_dir()):
                findings += _face_pack(pack)
    if not any(f.ok and Path(f.subject).name == "antelopev2" for f in findings):
        findings.append(
            Finding(
                "antelopev2",
                False,
                f"no usable antelopev2 pack in {', '.join(str(r / 'models') for r in folders.insightface)}: put the "
                f"files {', '.join(ANTELOPEV2_FILES)} of {PACK_SOURCE} into models/insightface/models/antelopev2/ (or "
                "use 'InstantID Download Models').",
            )
        )
    return findings


def _face_pack(pack: Path) -> list[Finding]:
    """One face pack folder: checked, its detector and recogniser found by content (on the CPU); in antelopev2, any
    file that is not one of its own."""
    try:
        check_face_pack(pack)
        models = load_pack_models(pack, ["CPUExecutionProvider"], 640)
    except InstantIDError as e:
        return [Finding(str(pack), False, str(e))]
    recogniser = models.recognizer_id
    detail = f"detector {models.detector_file.name}, recogniser {recogniser.name}"
    if not recogniser.instantid:  # its name says which it is; only the consequence is added
        detail += ": InstantID was trained with antelopev2's glintr100, so identities will transfer poorly"
    findings = [Finding(str(pack), True, detail)]
    if pack.name == "antelopev2":
        findings += [
            Finding(
                str(stray),
                False,
                "not one of antelopev2's files: insightface opens every .onnx file of the pack folder (a slower "
                "start, and a second detector or recogniser makes the choice ambiguous). Move it out of the folder.",
            )
            for stray in sorted(pack.glob("*.onnx"))
            if stray.name not in ANTELOPEV2_FILES
        ]
    return findings


def report(comfyui: str, torch_module, folders: ModelFolders) -> tuple[str, int]:
    """The whole report as text, and how many problems it found."""
    sections = {
        "Versions and libraries": environment(comfyui, torch_module),
        "Where the face models run": execution(torch_module),
        "InstantID adapter (models/instantid)": adapters(folders),
        "IdentityNet (models/controlnet/instantid)": identitynet(folders),
        "Face packs (models/insightface/models)": face_packs(folders),
    }
    problems = sum(not f.ok for findings in sections.values() for f in findings)
    lines = [f"InstantID Doctor: {problems or 'no'} problem{'s' if problems != 1 else ''} found."]
    for title, findings in sections.items():
        lines += ["", title, *(f.line() for f in findings)]
    return "\n".join(lines), problems

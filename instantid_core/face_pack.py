"""Face model packs known by content: which .onnx file of a folder is the keypoint detector and which the 512-d
recogniser, found from the graphs themselves (insightface's own routing by signature) whatever the files are called;
and which recogniser it is.

InstantID's Resampler was trained on embeddings of antelopev2's recogniser, `glintr100` (an IResNet-100 trained on
Glint360K). Another recogniser (buffalo_l's w600k_r50, a MobileFaceNet, ...) gives 512-d embeddings too, but in
another embedding space: face detection, keypoints, crops and similarity work with it, the identity does not transfer
well. glintr100 is recognised by its size and sha256, this pack's stand-in for it by its graph's name and metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import model_files
from .dependencies import require
from .download import file_sha256
from .errors import InstantIDError
from .model_facts import ANTELOPEV2_DETECTOR, GLINTR100, KnownFile

logger = logging.getLogger(__name__)

DETECTION, RECOGNITION = "detection", "recognition"
EMBEDDING_SIZE = 512
ANTELOPEV2_NAMES = {DETECTION: ANTELOPEV2_DETECTOR.name, RECOGNITION: GLINTR100.name}
"""antelopev2's file for each role: preferred when a folder holds several models of that role."""
ANTELOPEV2_FILES = (*ANTELOPEV2_NAMES.values(), "1k3d68.onnx", "2d106det.onnx", "genderage.onnx")
PACK_SOURCE = (
    "insightface's antelopev2 model pack (listed at https://github.com/deepinsight/insightface/tree/master/"
    "python-package; insightface does not download it itself, InstantID's README links a copy)"
)


STANDIN_GLINTR100_GRAPH = "standin_glintr100"
"""The graph name of this project's stand-in for glintr100 (random weights, for tests)."""


@dataclass(frozen=True)
class Recognizer:
    """Which recogniser made a set of embeddings: a name for messages, and whether InstantID was trained on it."""

    name: str
    instantid: bool

    def comparable(self, other: Recognizer) -> bool:
        """Whether embeddings of the two recognisers live in one space (the same recogniser)."""
        return self.name == other.name


STANDIN_RECOGNIZER = Recognizer("glintr100 (stand-in, random weights)", True)
"""The recogniser of the project's stand-in antelopev2 pack (random weights)."""


@dataclass(frozen=True)
class PackModels:
    """The detector and recogniser of a face pack folder, loaded by insightface, and which recogniser it is."""

    detector: object  # insightface's SCRFD or RetinaFace, with the five keypoints
    recognizer: object  # insightface's ArcFaceONNX, 112×112 → 512-d
    recognizer_id: Recognizer
    detector_file: Path
    recognizer_file: Path


@lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file (cached per path, size and modification time)."""
    return file_sha256(path)


def is_known_file(path: Path, known: KnownFile) -> bool:
    """Whether a file is this released file (its size first, then its sha256, cached)."""
    stat = Path(path).stat()
    return stat.st_size == known.size and _sha256(Path(path), stat.st_size, stat.st_mtime_ns) == known.sha256


def identify_recognizer(path: Path, model) -> Recognizer:
    """Which recogniser a loaded recognition model is: antelopev2's glintr100 (by size and sha256), this project's
    stand-in for it (by its graph), or another one (named by its file)."""
    if is_known_file(path, GLINTR100):
        return Recognizer("glintr100 (antelopev2)", True)
    meta = model.session.get_modelmeta()
    if meta.graph_name == STANDIN_GLINTR100_GRAPH and "standin" in meta.custom_metadata_map:
        return STANDIN_RECOGNIZER
    return Recognizer(
        f"{Path(path).name} ({Path(path).stat().st_size / 1e6:.1f} MB; not antelopev2's glintr100)", False
    )


def check_face_pack(pack_dir: Path) -> None:
    """Refuse a face pack folder that is missing, nested one level too deep, has no .onnx file or holds a file that
    is not a usable ONNX model (insightface opens every .onnx file of the folder)."""
    pack_dir = Path(pack_dir)
    wanted = "a face detector with keypoints and a 512-d face recogniser as .onnx files, e.g. the five files"
    if not pack_dir.is_dir():
        raise InstantIDError(
            f"Face model pack not found: there is no folder {pack_dir}. It must hold {wanted} "
            f"{', '.join(ANTELOPEV2_FILES)} of {PACK_SOURCE}. Download it, unzip it and put the files into "
            f"models/insightface/models/{pack_dir.name}/.",
            "model_not_found",
        )
    files = sorted(pack_dir.glob("*.onnx"))
    if not files:
        nested = next((sub for sub in sorted(pack_dir.iterdir()) if sub.is_dir() and any(sub.glob("*.onnx"))), None)
        if nested is not None:
            raise InstantIDError(
                f"The face pack is nested one folder too deep: its files are in {nested}, not in {pack_dir} (the "
                f"zip's own folder was unpacked inside the pack folder). Move the .onnx files up into {pack_dir} "
                f"and delete the empty {nested.name} folder.",
                "bad_face_pack",
            )
        raise InstantIDError(
            f"The face pack folder {pack_dir} holds no .onnx file: it must hold {wanted} of {PACK_SOURCE}.",
            "bad_face_pack",
        )
    broken = [
        f"{path.name} is {found.description}"
        for path in files
        if (found := model_files.identify(path)).kind is not model_files.FileKind.ONNX
    ]
    if broken:
        raise InstantIDError(
            f"insightface opens every .onnx file in {pack_dir}, and {'; '.join(broken)}. Download it again or move "
            "it out of the folder.",
            "bad_face_pack",
        )


def load_pack_models(pack_dir: Path, providers: list[str], det_size: int) -> PackModels:
    """Load the keypoint detector and the 512-d recogniser of a checked pack folder, found by their graphs."""
    get_model = require("insightface.model_zoo").get_model

    pack_dir = Path(pack_dir)
    found: dict[str, list[tuple[Path, object]]] = {DETECTION: [], RECOGNITION: []}
    others = []
    for path in sorted(pack_dir.glob("*.onnx")):
        try:
            model = get_model(str(path), providers=providers)
        except Exception as e:  # onnxruntime and insightface raise their own exception types for files they cannot use
            raise InstantIDError(
                f"insightface could not load {path} ({type(e).__name__}: {e}): download it again or move it out "
                "of the face pack folder.",
                "bad_face_pack",
            ) from e
        role = _role(model)
        if role is None:
            others.append(f"{path.name} ({getattr(model, 'taskname', 'not a face model insightface knows')})")
        else:
            found[role].append((path, model))
    if others:
        logger.info("Face pack %s: not used by InstantID: %s.", pack_dir, ", ".join(others))
    detector_file, detector = _pick(pack_dir, DETECTION, found[DETECTION])
    recognizer_file, recognizer = _pick(pack_dir, RECOGNITION, found[RECOGNITION])
    detector.prepare(-1, input_size=(det_size, det_size), det_thresh=0.5)
    recognizer.prepare(-1)
    return PackModels(
        detector, recognizer, identify_recognizer(recognizer_file, recognizer), detector_file, recognizer_file
    )


def _role(model) -> str | None:
    """DETECTION for a detector that gives the five keypoints, RECOGNITION for a 512-d recogniser, else None."""
    task = getattr(model, "taskname", None)
    if task == DETECTION and getattr(model, "use_kps", False):
        return DETECTION
    if task == RECOGNITION and list(getattr(model, "output_shape", []))[-1:] == [EMBEDDING_SIZE]:
        return RECOGNITION
    return None


def _pick(pack_dir: Path, role: str, candidates: list[tuple[Path, object]]) -> tuple[Path, object]:
    """The one model of a role: the only candidate, else antelopev2's file; none or an ambiguous choice is an error."""
    what, several = {
        DETECTION: ("face detector with the five keypoints", "face detectors with the five keypoints"),
        RECOGNITION: ("512-d face recogniser", "512-d face recognisers"),
    }[role]
    if not candidates:
        raise InstantIDError(
            f"The face pack in {pack_dir} has no {what} (insightface routes every .onnx file by its graph; none of "
            f"them is one): download the complete {PACK_SOURCE}.",
            "bad_face_pack",
        )
    if len(candidates) == 1:
        return candidates[0]
    preferred = [c for c in candidates if c[0].name == ANTELOPEV2_NAMES[role]]
    names = ", ".join(path.name for path, _ in candidates)
    if not preferred:
        raise InstantIDError(
            f"The face pack in {pack_dir} has several {several} ({names}) and none is antelopev2's "
            f"{ANTELOPEV2_NAMES[role]}: keep one of them in the folder and move the others out.",
            "bad_face_pack",
        )
    logger.warning("Face pack %s holds several %s (%s): using %s.", pack_dir, several, names, preferred[0][0].name)
    return preferred[0]

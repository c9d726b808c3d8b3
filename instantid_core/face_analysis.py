"""Face analysis with insightface's model packs (antelopev2): detection, 5 keypoints and the 512-d identity embedding.

Only the detector and the recogniser are loaded (InstantID needs nothing else), on the onnxruntime execution
provider the user picks. A photo without a face is retried at smaller detection sizes and with a padded border
(tight close-ups) before it counts as faceless.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import model_files
from .errors import InstantIDError
from .faces import DetectedFace, FaceAnalysisResult, InstantIDFaces, choose_face, sort_reading_order
from .keypoints import KEYPOINT_COLORS

logger = logging.getLogger(__name__)

DETECTOR_FILE = "scrfd_10g_bnkps.onnx"
RECOGNIZER_FILE = "glintr100.onnx"
FACE_PACK_FILES = (DETECTOR_FILE, RECOGNIZER_FILE, "1k3d68.onnx", "2d106det.onnx", "genderage.onnx")
PACK_SOURCE = "insightface's antelopev2 release (https://github.com/deepinsight/insightface/tree/master/model_zoo)"

PROVIDERS = ("auto", "CUDA", "ROCm", "CoreML", "DirectML", "CPU")
_ORT_NAMES = {"CUDA": "CUDAExecutionProvider", "ROCm": "ROCMExecutionProvider", "CoreML": "CoreMLExecutionProvider",
              "DirectML": "DmlExecutionProvider", "CPU": "CPUExecutionProvider"}
_INSTALL_HINTS = {"CUDA": "pip uninstall onnxruntime, then pip install onnxruntime-gpu (never both)",
                  "ROCm": "install onnxruntime-rocm", "CoreML": "use onnxruntime on macOS",
                  "DirectML": "install onnxruntime-directml", "CPU": ""}

NO_FACE_POLICIES = ("error", "skip")
RETRY_SIZES = (512, 384, 256)
"""Smaller detection sizes tried, in order, when no face is found at the chosen size."""
PAD_FRACTION = 0.25
"""Border added around a photo (per side, as a fraction of its size) for a last try on tight close-ups."""


def resolve_providers(requested: str, available: Sequence[str]) -> tuple[list[str], str | None]:
    """onnxruntime providers for a choice ('auto' = the best available), CPU last; and a warning if it fell back."""
    if requested not in PROVIDERS:
        raise InstantIDError(f"Unknown execution provider {requested!r}: use one of {', '.join(PROVIDERS)}.")
    cpu = _ORT_NAMES["CPU"]
    if requested == "auto":
        best = next((_ORT_NAMES[p] for p in PROVIDERS[1:] if _ORT_NAMES[p] in available), cpu)
        return ([best, cpu] if best != cpu else [cpu]), None
    wanted = _ORT_NAMES[requested]
    if wanted in available:
        return ([wanted, cpu] if wanted != cpu else [cpu]), None
    warning = (f"Face analysis: the {requested} provider is not available in this onnxruntime (available: "
               f"{', '.join(available) or 'none'}); running on the CPU instead. To use {requested}: "
               f"{_INSTALL_HINTS[requested]}.")
    return [cpu], warning


def check_face_pack(pack_dir: Path) -> None:
    """Refuse a face pack folder that is missing, nested one level too deep, incomplete or holds broken files."""
    pack_dir = Path(pack_dir)
    expected = ", ".join(FACE_PACK_FILES)
    if not pack_dir.is_dir():
        raise InstantIDError(f"Face model pack not found: looked in {pack_dir}. It must hold the five files "
                             f"{expected}, from {PACK_SOURCE}: put them into models/insightface/models/"
                             f"{pack_dir.name}/.")
    nested = pack_dir / pack_dir.name
    if not (pack_dir / DETECTOR_FILE).exists() and (nested / DETECTOR_FILE).exists():
        raise InstantIDError(f"The face pack is nested one folder too deep: the files are in {nested}. Move them "
                             f"up into {pack_dir} (the zip file's own folder was extracted inside the pack folder).")
    missing = [name for name in FACE_PACK_FILES[:2] if not (pack_dir / name).is_file()]
    if missing:
        raise InstantIDError(f"The face pack in {pack_dir} lacks {', '.join(missing)} (it needs {expected}): "
                             f"download the complete pack from {PACK_SOURCE}.")
    for name in FACE_PACK_FILES[:2]:
        found = model_files.identify(pack_dir / name)
        if found.kind != model_files.ONNX:
            raise InstantIDError(f"{pack_dir / name} is not a usable ONNX model: it is {found.description}.")
    for stray in sorted(set(p.name for p in pack_dir.glob("*.onnx")) - set(FACE_PACK_FILES)):
        logger.warning("Face pack %s holds %s, which is not part of it; it is ignored.", pack_dir, stray)


@dataclass(frozen=True, eq=False)
class FacePack:
    """The FACEANALYSIS value: insightface's detector and recogniser of one pack, ready to analyse photos."""

    app: object  # insightface.app.FaceAnalysis
    pack_dir: Path
    providers: tuple[str, ...]
    det_size: int

    @classmethod
    def load(cls, pack_dir: str | Path, provider: str = "auto", det_size: int = 640) -> FacePack:
        """Check the pack folder and load its detector and recogniser on the chosen provider."""
        import onnxruntime
        from insightface.app import FaceAnalysis

        pack_dir = Path(pack_dir)
        check_face_pack(pack_dir)
        providers, warning = resolve_providers(provider, onnxruntime.get_available_providers())
        if warning:
            logger.warning(warning)
        app = FaceAnalysis(name=str(pack_dir.resolve()), providers=providers,
                           allowed_modules=["detection", "recognition"])
        if set(app.models) != {"detection", "recognition"}:
            raise InstantIDError(f"insightface found {sorted(app.models) or 'no models'} in {pack_dir}, not a "
                                 f"detector ({DETECTOR_FILE}) and a recogniser ({RECOGNIZER_FILE}): the files are "
                                 f"damaged or from another pack.")
        app.prepare(ctx_id=0 if providers[0] != _ORT_NAMES["CPU"] else -1, det_size=(det_size, det_size))
        used = tuple(app.models["detection"].session.get_providers())
        logger.info("Face analysis loaded from %s on %s (detection size %d)", pack_dir, used[0], det_size)
        return cls(app=app, pack_dir=pack_dir, providers=used, det_size=det_size)

    def detect(self, bgr: np.ndarray, size: int) -> list:
        """insightface faces (box, keypoints, score, embedding) of one BGR picture at detection size `size`."""
        from insightface.app.common import Face

        boxes, keypoints = self.app.models["detection"].detect(bgr, input_size=(size, size))
        faces = []
        for box, kps in zip(boxes, keypoints):
            face = Face(bbox=box[:4], kps=kps, det_score=box[4])
            self.app.models["recognition"].get(bgr, face)
            faces.append(face)
        return faces

    def find_faces(self, rgb: np.ndarray) -> tuple[DetectedFace, ...]:
        """The faces of one HxWx3 uint8 RGB picture, in reading order; retries smaller sizes, then a padded border."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        height, width = rgb.shape[:2]
        for size in (self.det_size, *(s for s in RETRY_SIZES if s < self.det_size)):
            found = self.detect(bgr, size)
            if found:
                return sort_reading_order([_detected(f, (width, height)) for f in found])
        pad_y, pad_x = round(height * PAD_FRACTION), round(width * PAD_FRACTION)
        fill = [float(c) for c in bgr.reshape(-1, 3).mean(axis=0)]
        padded = cv2.copyMakeBorder(bgr, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=fill)
        found = self.detect(padded, self.det_size)
        return sort_reading_order([_detected(f, (width, height), (pad_x, pad_y)) for f in found])

    def analyze(self, pictures: Sequence[np.ndarray], choice: str = "largest", index: int = 0,
                no_face: str = "error") -> InstantIDFaces:
        """Analyse a batch of HxWx3 uint8 RGB pictures: the faces of each and the one chosen."""
        if no_face not in NO_FACE_POLICIES:
            raise InstantIDError(f"Unknown no-face policy {no_face!r}: use one of {', '.join(NO_FACE_POLICIES)}.")
        results = []
        for batch_index, rgb in enumerate(pictures):
            where = f"Reference image {batch_index} (of {len(pictures)}, {rgb.shape[1]}×{rgb.shape[0]})"
            faces = self.find_faces(rgb)
            if not faces:
                if no_face == "error":
                    raise InstantIDError(f"{where}: no face found, also at smaller detection sizes. Use a photo "
                                         "where the face is clearly visible, roughly frontal and not cut off, or set "
                                         "no_face to 'skip' to leave such photos out.")
                logger.warning("%s: no face found; skipped as requested.", where)
                results.append(FaceAnalysisResult(faces=(), chosen=None, batch_index=batch_index))
                continue
            try:
                chosen = choose_face(faces, choice, index)
            except InstantIDError as e:
                raise InstantIDError(f"{where}: {e}") from None
            results.append(FaceAnalysisResult(faces=faces, chosen=chosen, batch_index=batch_index))
        return InstantIDFaces(results)


def _detected(face, image_size: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> DetectedFace:
    """An insightface face as a DetectedFace, coordinates shifted back by `offset` (a padded border)."""
    shift = np.array(offset, dtype=np.float32)
    return DetectedFace(embedding=face.embedding, kps=face.kps - shift, bbox=face.bbox - np.tile(shift, 2),
                        det_score=face.det_score, image_size=image_size)


def draw_preview(rgb: np.ndarray, result: FaceAnalysisResult) -> np.ndarray:
    """A copy of the picture with every face's box, keypoints and reading-order index; the chosen face in green."""
    canvas = rgb.copy()
    thickness = max(1, round(max(rgb.shape[:2]) / 300))
    for number, face in enumerate(result.faces):
        x1, y1, x2, y2 = (int(round(float(v))) for v in face.bbox)
        colour = (0, 220, 0) if number == result.chosen else (200, 200, 200)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        for (x, y), point_colour in zip(face.kps, KEYPOINT_COLORS):
            cv2.circle(canvas, (int(round(float(x))), int(round(float(y)))), 2 * thickness, point_colour, -1)
        cv2.putText(canvas, str(number), (x1, max(y1 - 4 * thickness, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * thickness, colour, thickness)
    return canvas

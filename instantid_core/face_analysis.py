"""Face analysis with an insightface face pack (antelopev2 for InstantID): face boxes, the five keypoints and the
512-d identity embedding.

Only the detector and the recogniser are kept (InstantID needs nothing else; face_pack.py finds them by content), on
the onnxruntime execution provider the user picks. By default each photo is first resized as InstantID's reference pipeline does (photo_prep.py); what is
found is reported in the photo's own pixels either way. A photo without a face is retried at smaller detection sizes
and then with a border around it (tight close-ups) before it counts as faceless.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .analysis_cache import ANALYSES, picture_key
from .dependencies import cv2, require
from .errors import InstantIDError
from .face_pack import Recognizer, check_face_pack, load_pack_models
from .faces import DetectedFace, FaceAnalysisResult, InstantIDFaces, choose_face, sort_reading_order
from .keypoints import KEYPOINT_COLORS
from .photo_prep import prepare_like_reference

logger = logging.getLogger(__name__)

PROVIDERS = ("auto", "CUDA", "ROCm", "CoreML", "DirectML", "CPU")
ORT_PROVIDERS = {
    "CUDA": "CUDAExecutionProvider",
    "ROCm": "ROCMExecutionProvider",
    "CoreML": "CoreMLExecutionProvider",
    "DirectML": "DmlExecutionProvider",
    "CPU": "CPUExecutionProvider",
}
"""Our provider choices -> onnxruntime's names; 'auto' tries them in this order."""
_INSTALL_HINTS = {
    "CUDA": "pip uninstall onnxruntime, then pip install onnxruntime-gpu (never both onnxruntime and onnxruntime-gpu: "
    "they share one module and the CPU-only one wins), with the CUDA and cuDNN versions it names",
    "ROCm": "install AMD's ROCm build of onnxruntime (onnxruntime-rocm) in place of onnxruntime, never both",
    "CoreML": "CoreML comes with the standard onnxruntime package on macOS only",
    "DirectML": "pip uninstall onnxruntime, then pip install onnxruntime-directml (Windows; never both)",
}

ERROR, SKIP, PASS_THROUGH = "error", "skip", "pass through"
"""The no_face vocabulary, one meaning per word: ERROR stops with a message naming the photo; SKIP leaves the photo
out (with a warning) and goes on with the others; PASS_THROUGH (the all-in-one nodes) skips such photos too and, when
no usable face is left, returns the node's inputs unchanged."""
NO_FACE_POLICIES = (ERROR, SKIP)
"""What face analysis itself can do with a photo without a face."""
REFERENCE_PHOTO = "Reference image"
"""What messages call a picture of the batch being analysed, unless the caller names its input otherwise."""
RETRY_SIZES = (640, 512, 384, 256)
"""Detection sizes tried in turn, those smaller than the chosen one, when it finds no face."""
PAD_FRACTION = 0.25
"""Black border added to each side (as a fraction of the picture's size) for the last try on tight close-ups."""

CHOSEN_COLOUR = (0, 220, 0)
OTHER_COLOUR = (255, 200, 0)
NO_FACE_COLOUR = (230, 40, 40)


def resolve_providers(requested: str, available: Sequence[str]) -> tuple[list[str], str | None]:
    """onnxruntime providers for a choice ('auto': the best available), CPU last; and a warning if it fell back."""
    if requested not in PROVIDERS:
        raise InstantIDError(
            f"Unknown execution provider {requested!r}: use one of {', '.join(PROVIDERS)}.", "bad_setting"
        )
    cpu = ORT_PROVIDERS["CPU"]
    if requested == "auto":
        requested = next((name for name in PROVIDERS[1:] if ORT_PROVIDERS[name] in available), "CPU")
    elif requested != "CPU" and ORT_PROVIDERS[requested] not in available:
        warning = (
            f"Face analysis: the {requested} provider ({ORT_PROVIDERS[requested]}) is not available in this "
            f"onnxruntime (available: {', '.join(available) or 'none'}), so it runs on the CPU. To use "
            f"{requested}: {_INSTALL_HINTS[requested]}."
        )
        return [cpu], warning
    return list(dict.fromkeys([ORT_PROVIDERS[requested], cpu])), None


def as_rgb_uint8(picture: np.ndarray) -> np.ndarray:
    """One picture (H×W, or H×W×1, 3 or 4 channels; float 0..1, uint8 or uint16) as contiguous H×W×3 uint8 RGB."""
    array = np.asarray(picture)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise InstantIDError(
            f"Expected a picture of shape (height, width, 1|3|4), got shape {array.shape}.", "wrong_input_type"
        )
    rgb = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]  # alpha is dropped
    if np.issubdtype(rgb.dtype, np.floating):
        values = np.clip(rgb, 0.0, 1.0)  # a new array, scaled in place: a 6000×4000 photo makes no more copies
        values *= 255.0
        return np.rint(values, out=values).astype(np.uint8)
    if rgb.dtype == np.uint16:
        return np.rint(rgb / 257.0).astype(np.uint8)
    if rgb.dtype != np.uint8:
        raise InstantIDError(
            f"Expected picture values as float 0..1, uint8 or uint16, got {rgb.dtype}.", "wrong_input_type"
        )
    return np.ascontiguousarray(rgb)


@dataclass(frozen=True, eq=False)
class FaceModels:
    """The FACEANALYSIS value: the detector and recogniser of one face pack, ready to analyse photos."""

    detector: object  # insightface's SCRFD (or RetinaFace) with the five keypoints
    recognizer: object  # insightface's ArcFaceONNX: aligned 112×112 crop -> raw 512-d embedding
    recognizer_id: Recognizer  # which recogniser it is (InstantID was trained on glintr100's embeddings)
    pack_dir: Path
    providers: tuple[str, ...]  # what onnxruntime actually runs the detector on, best first
    det_size: int
    reference_resize: bool = True  # analyse each photo resized as the reference pipeline does (photo_prep.py)
    refuse_other_recognizer: bool = False  # identity tokens from another recogniser's embeddings: error, not warning
    pack_identity: str | None = None  # the pack's folder and model files, for the analysis cache; None: no cache

    @classmethod
    def load(
        cls,
        pack_dir: str | Path,
        provider: str = "auto",
        det_size: int = 640,
        reference_resize: bool = True,
        refuse_other_recognizer: bool = False,
    ) -> FaceModels:
        """Check the pack folder and load its detector and recogniser on the chosen execution provider; with
        reference_resize, photos are resized as InstantID's reference pipeline does before they are analysed."""
        pack_dir = Path(pack_dir)
        if det_size < 128 or det_size % 32:
            raise InstantIDError(
                f"The detection size must be a multiple of 32 from 128 up, got {det_size}.", "bad_setting"
            )
        check_face_pack(pack_dir)
        providers, warning = resolve_providers(provider, require("onnxruntime").get_available_providers())
        if warning:
            logger.warning(warning)
        models = load_pack_models(pack_dir, providers, det_size)
        used = tuple(models.detector.session.get_providers())
        if used[0] != providers[0]:
            logger.warning(
                "Face analysis asked onnxruntime for %s, but it runs on %s: onnxruntime could not start "
                "%s (see its log above; usually a missing or mismatched CUDA/cuDNN library).",
                providers[0],
                used[0],
                providers[0],
            )
        logger.info(
            "Face analysis loaded from %s on %s: detector %s, recogniser %s (detection size %d, photos %s).",
            pack_dir,
            used[0],
            models.detector_file.name,
            models.recognizer_id.name,
            det_size,
            "resized as the reference pipeline does" if reference_resize else "analysed at their own size",
        )
        if not models.recognizer_id.instantid:
            logger.warning(
                "The face pack in %s has the recogniser %s. Face detection, keypoints and similarity work with it, "
                "but InstantID was trained on antelopev2's glintr100, whose embeddings live in another space: "
                "identities made from this pack will not transfer well. Use antelopev2 for InstantID.",
                pack_dir,
                models.recognizer_id.name,
            )
        return cls(
            detector=models.detector,
            recognizer=models.recognizer,
            recognizer_id=models.recognizer_id,
            pack_dir=pack_dir,
            providers=used,
            det_size=det_size,
            reference_resize=reference_resize,
            refuse_other_recognizer=refuse_other_recognizer,
            pack_identity=_pack_identity(pack_dir),
        )

    @property
    def detection_sizes(self) -> tuple[int, ...]:
        """The detection sizes tried in turn: the chosen one, then the smaller ones of RETRY_SIZES."""
        return (self.det_size, *(size for size in RETRY_SIZES if size < self.det_size))

    def detect(self, bgr: np.ndarray, size: int) -> list[DetectedFace]:
        """The faces one detection pass at size×size finds in an H×W×3 uint8 BGR picture, with their embeddings."""
        Face = require("insightface.app.common").Face

        boxes, keypoints = self.detector.detect(bgr, input_size=(size, size))
        height, width = bgr.shape[:2]
        faces = []
        for box, kps in zip(boxes, keypoints, strict=False):
            embedding = self.recognizer.get(bgr, Face(bbox=box[:4], kps=kps, det_score=box[4]))
            faces.append(
                DetectedFace(embedding=embedding, kps=kps, bbox=box[:4], det_score=box[4], image_size=(width, height))
            )
        return faces

    def find_faces(self, rgb: np.ndarray) -> tuple[DetectedFace, ...]:
        """The faces of one H×W×3 uint8 RGB picture in reading order; retried smaller, then with a border."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        for size in self.detection_sizes:
            faces = self.detect(bgr, size)
            if faces:
                return sort_reading_order(faces)
        pad_x, pad_y = round(bgr.shape[1] * PAD_FRACTION), round(bgr.shape[0] * PAD_FRACTION)
        bordered = cv2.copyMakeBorder(bgr, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        shift = np.array([pad_x, pad_y], dtype=np.float32)
        image_size = (bgr.shape[1], bgr.shape[0])
        return sort_reading_order(
            [
                dataclasses.replace(
                    face, kps=face.kps - shift, bbox=face.bbox - np.tile(shift, 2), image_size=image_size
                )
                for face in self.detect(bordered, self.det_size)
            ]
        )

    def find_faces_in_photo(self, rgb: np.ndarray) -> tuple[DetectedFace, ...]:
        """The faces of one H×W×3 uint8 RGB photo in reading order, in the photo's own pixels; found in the photo as
        the reference pipeline prepares it when reference_resize is on. A photo analysed before with the same
        settings, in any prompt, is not analysed again (analysis_cache)."""
        if self.pack_identity is None:
            return self._find_faces_in_photo(rgb)
        settings = json.dumps([self.pack_identity, self.providers[0], self.det_size, self.reference_resize])
        key = picture_key(rgb, settings)
        faces = ANALYSES.get(key)
        hit = faces is not None
        if not hit:
            faces = self._find_faces_in_photo(rgb)
            ANALYSES.put(key, faces)
        logger.info(
            "Face analysis: cache %s for a %d×%d photo (%d face(s); %d photo(s) kept, %.1f MiB).",
            "hit, not analysed again" if hit else "miss, analysed",
            rgb.shape[1],
            rgb.shape[0],
            len(faces),
            len(ANALYSES),
            ANALYSES.bytes / 2**20,
        )
        return faces

    def _find_faces_in_photo(self, rgb: np.ndarray) -> tuple[DetectedFace, ...]:
        """find_faces_in_photo without the cache."""
        if not self.reference_resize:
            return self.find_faces(rgb)
        prepared = prepare_like_reference(rgb)
        return sort_reading_order([_in_photo_pixels(face, rgb.shape) for face in self.find_faces(prepared)])

    def analyze(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        choice: str = "largest",
        index: int = 0,
        on_no_face: str = "error",
        photo: str = REFERENCE_PHOTO,
        no_face_hint: str = "",
    ) -> InstantIDFaces:
        """Find the faces of every picture of a batch (B, H, W, C) and choose one face per picture.

        Messages call each picture `photo` and its batch index, so they name the input it came from. The error for a
        picture without a face ends with `no_face_hint`: the caller's own option for going on without one, if it has
        one (by default none is named).
        """
        if on_no_face not in NO_FACE_POLICIES:
            raise InstantIDError(
                f"Unknown no-face policy {on_no_face!r}: use one of {', '.join(NO_FACE_POLICIES)}.", "bad_setting"
            )
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise InstantIDError(
                f"Expected a batch of pictures (batch, height, width, channels), got shape {images.shape}.",
                "wrong_input_type",
            )
        if len(images) == 0:
            raise InstantIDError(f"{photo} batch is empty: connect at least one picture.", "missing_input")
        return InstantIDFaces(
            [
                self._analyze_one(
                    as_rgb_uint8(image), photo, batch_index, len(images), choice, index, on_no_face, no_face_hint
                )
                for batch_index, image in enumerate(images)
            ],
            recognizer=self.recognizer_id,
            refuse_other_recognizer=self.refuse_other_recognizer,
        )

    def _analyze_one(
        self,
        rgb: np.ndarray,
        photo: str,
        batch_index: int,
        count: int,
        choice: str,
        index: int,
        on_no_face: str,
        no_face_hint: str,
    ) -> FaceAnalysisResult:
        """The faces of picture batch_index of count and the chosen one, or a skipped result."""
        where = f"{photo} {batch_index} (of {count}, counted from 0; {rgb.shape[1]}×{rgb.shape[0]} px)"
        faces = self.find_faces_in_photo(rgb)
        if not faces:
            finding, advice = _flat_colour(rgb) or self._no_face()
            if on_no_face == "error":
                raise InstantIDError(
                    f"{where}{finding}. {advice}" + (f" {no_face_hint}" if no_face_hint else ""), "no_face"
                )
            logger.warning("%s%s; the image is skipped as requested.", where, finding)
            return FaceAnalysisResult(faces=(), chosen=None, batch_index=batch_index)
        try:
            chosen = choose_face(faces, choice, index)
        except InstantIDError as e:
            raise InstantIDError(f"{where}: {e}", e.code) from None
        return FaceAnalysisResult(faces=faces, chosen=chosen, batch_index=batch_index)

    def _no_face(self) -> tuple[str, str]:
        """What the search for a face found in a picture without one, and what to do about it."""
        tried = ", ".join(str(size) for size in self.detection_sizes)
        return (
            f": no face found (tried detection sizes {tried} and a padded border)",
            "Use a photo where the face is clearly visible, roughly frontal and not cut off. If the face is small "
            "in a large photo, crop closer to it or load the face analysis with a larger detection size; if it "
            "fills the whole photo, crop less close.",
        )


def _pack_identity(pack_dir: Path) -> str:
    """The face pack as the analysis cache tells packs apart: its folder and its model files (name, size and
    modification time). With the provider, detection size and reference resize it decides what is found in a photo."""
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(pack_dir).glob("*.onnx"))
    return json.dumps([str(Path(pack_dir).resolve()), files])


def _in_photo_pixels(face: DetectedFace, photo_shape: tuple[int, ...]) -> DetectedFace:
    """A face found in a resized copy of a photo, with its keypoints and box in the photo's own pixels (dtype kept)."""
    height, width = photo_shape[:2]
    found_width, found_height = face.image_size
    scale = np.array([width / found_width, height / found_height])
    return dataclasses.replace(
        face,
        kps=(np.asarray(face.kps, dtype=np.float64) * scale).astype(np.asarray(face.kps).dtype),
        bbox=(np.asarray(face.bbox, dtype=np.float64) * np.tile(scale, 2)).astype(np.asarray(face.bbox).dtype),
        image_size=(width, height),
    )


def _flat_colour(rgb: np.ndarray) -> tuple[str, str] | None:
    """For a picture that is one flat colour, or only pure black and white (what a loader gives for a file it cannot
    read): what it is and what to do; None for any other picture."""
    advice = (
        "A loader gives such a picture for a file it could not read, e.g. ComfyUI's Load Image for a 16-bit PNG "
        "in greyscale (its values are clipped to white): re-save the picture as an 8-bit PNG or a JPEG and load that; "
        "otherwise connect a photo with a face."
    )
    if (rgb == rgb[:1, :1]).all():
        red, green, blue = (int(v) for v in rgb[0, 0])
        return f" is a single flat colour (every pixel is RGB {red}, {green}, {blue}), so it has no face", advice
    if np.isin(rgb, (0, 255)).all() and (rgb == rgb[..., :1]).all():
        white = float((rgb[..., 0] == 255).mean())
        return f" is only pure black and white ({white:.0%} white), so it has no face that can be found", advice
    return None


def draw_preview(image_rgb_uint8: np.ndarray, result: FaceAnalysisResult) -> np.ndarray:
    """A copy of the picture with every face's box, keypoints and reading-order index; the chosen face in green."""
    canvas = np.array(image_rgb_uint8[..., :3], dtype=np.uint8, copy=True, order="C")
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    if result.skipped:
        _label(canvas, "no face", (0, 0), NO_FACE_COLOUR, thickness)
    for number, face in enumerate(result.faces):
        colour = CHOSEN_COLOUR if number == result.chosen else OTHER_COLOUR
        x1, y1, x2, y2 = (int(v) for v in np.round(face.bbox))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        for (x, y), point_colour in zip(np.round(face.kps).astype(int), KEYPOINT_COLORS, strict=False):
            cv2.circle(canvas, (int(x), int(y)), 2 * thickness + 1, point_colour, -1, cv2.LINE_AA)
        _label(canvas, str(number), (x1, y1), colour, thickness)
    return canvas


def _label(
    canvas: np.ndarray, text: str, corner: tuple[int, int], colour: tuple[int, int, int], thickness: int
) -> None:
    """Write text just above corner (x, y), or just below it where the picture's top edge leaves no room, in place."""
    scale = 0.6 * thickness
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    gap = 2 * thickness
    x = min(max(corner[0], 0), max(canvas.shape[1] - width, 0))
    y = corner[1] - gap - baseline if corner[1] - gap - baseline - height >= 0 else max(corner[1], 0) + gap + height
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)

"""Detected faces, face choice (largest or by reading-order index) and combination of several identity embeddings."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InstantIDError
from .face_pack import Recognizer
from .keypoints import face_box_mask

logger = logging.getLogger(__name__)

EMBEDDING_SIZE = 512
UNKNOWN_RECOGNIZER = Recognizer("an unknown recogniser", True)
"""Faces made without a face pack (tests, hand-built values): taken as they are."""
CHOICE_MODES = ("largest", "index")
PER_PICTURE = "per picture"
"""The combination that keeps every face as its own identity: picture i of the batch gets face i."""
COMBINE_METHODS = ("average", "norm average", "concat", "joint", PER_PICTURE)


def _frozen(array, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A read-only float32 copy of array, checked against shape."""
    value = np.array(array, dtype=np.float32)
    if value.shape != shape:
        raise ValueError(f"DetectedFace.{name} must have shape {shape}, got {value.shape}")
    value.setflags(write=False)
    return value


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face found by face analysis; coordinates in pixels of the photo it was found in (its image_size)."""

    embedding: np.ndarray  # (512,) float32, raw (not normalised), as the InstantID Resampler expects
    kps: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left and right mouth corner (image left/right)
    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2
    det_score: float
    image_size: tuple[int, int]  # (width, height) of that photo

    def __post_init__(self):
        object.__setattr__(self, "embedding", _frozen(self.embedding, (EMBEDDING_SIZE,), "embedding"))
        object.__setattr__(self, "kps", _frozen(self.kps, (5, 2), "kps"))
        object.__setattr__(self, "bbox", _frozen(self.bbox, (4,), "bbox"))
        object.__setattr__(self, "det_score", float(self.det_score))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    @property
    def area(self) -> float:
        """Area of the bounding box in square pixels."""
        return float(max(self.bbox[2] - self.bbox[0], 0.0) * max(self.bbox[3] - self.bbox[1], 0.0))


@dataclass(frozen=True)
class FaceAnalysisResult:
    """What face analysis found in one reference image: its faces in reading order and which one was chosen."""

    faces: tuple[DetectedFace, ...]
    chosen: int | None  # index into faces; None when the image had no face and was skipped
    batch_index: int

    def __post_init__(self):
        object.__setattr__(self, "faces", tuple(self.faces))
        if self.chosen is None:
            if self.faces:
                raise ValueError(f"image {self.batch_index}: a result with faces must say which one was chosen")
        elif not 0 <= self.chosen < len(self.faces):
            raise ValueError(f"image {self.batch_index}: chosen index {self.chosen} but {len(self.faces)} faces")

    @property
    def skipped(self) -> bool:
        """True when no face was found and the image was skipped (by the user's choice)."""
        return self.chosen is None

    @property
    def face(self) -> DetectedFace:
        """The chosen face."""
        if self.chosen is None:
            raise InstantIDError(f"Reference image {self.batch_index} has no face (it was skipped).", "no_face")
        return self.faces[self.chosen]


@dataclass(frozen=True)
class InstantIDFaces:
    """The INSTANTID_FACE value: one FaceAnalysisResult per reference image, skipped images included, and the
    recogniser that made the embeddings."""

    results: tuple[FaceAnalysisResult, ...]
    recognizer: Recognizer = UNKNOWN_RECOGNIZER
    refuse_other_recognizer: bool = False  # identity_embeddings: an error, not a warning, for another recogniser
    photo_weights: tuple[float, ...] | None = None  # one per picture (skipped ones included); None: equal

    def __post_init__(self):
        object.__setattr__(self, "results", tuple(self.results))

    @property
    def chosen_faces(self) -> tuple[DetectedFace, ...]:
        """The chosen face of every image that was not skipped, in batch order."""
        return tuple(result.face for result in self.results if not result.skipped)

    @property
    def skipped_indices(self) -> tuple[int, ...]:
        """Batch indices of the images that had no face and were skipped."""
        return tuple(result.batch_index for result in self.results if result.skipped)

    def result(self, index: int) -> FaceAnalysisResult:
        """The analysis of reference image `index`; an error when it is out of range or was skipped."""
        if not 0 <= index < len(self.results):
            raise InstantIDError(
                f"Reference image {index} was requested but the face analysis holds "
                f"{len(self.results)} image(s) (indices 0..{len(self.results) - 1}).",
                "index_out_of_range",
            )
        if self.results[index].skipped:
            raise InstantIDError(
                f"Reference image {index} has no face (it was skipped): choose another image.", "no_face"
            )
        return self.results[index]

    def box_masks(self, width: int, height: int) -> np.ndarray:
        """(B, height, width) float32: 1 inside each picture's chosen face box, all 0 for a picture skipped."""
        return np.stack([face_box_mask([] if r.skipped else [r.face.bbox], width, height) for r in self.results])

    def embeddings(self) -> np.ndarray:
        """(N, 512) float32 raw embeddings of the chosen faces; an error when every image was skipped."""
        faces = self.chosen_faces
        if not faces:
            raise InstantIDError(
                f"No face in any of the {len(self.results)} reference image(s) (all were skipped): "
                "use a photo where the face is clearly visible, or a smaller detection size for close-ups.",
                "no_face",
            )
        return np.stack([face.embedding for face in faces])

    def with_weights(self, weights: Sequence[float]) -> InstantIDFaces:
        """The same faces with a weight per picture, for the weighted combinations."""
        if len(weights) != len(self.results):
            raise InstantIDError(
                f"{len(weights)} weights for {len(self.results)} reference picture(s): give one weight per picture.",
                "bad_weights",
            )
        return dataclasses.replace(self, photo_weights=tuple(float(w) for w in weights))

    @property
    def weights(self) -> tuple[float, ...] | None:
        """The weights of the chosen faces (pictures skipped drop theirs); None when every picture counts equally."""
        if self.photo_weights is None:
            return None
        return tuple(w for w, r in zip(self.photo_weights, self.results, strict=True) if not r.skipped)

    def identity_embeddings(self) -> np.ndarray:
        """The embeddings, for identity tokens: warns (or refuses, if asked) when they come from another recogniser
        than the one InstantID was trained on."""
        embeddings = self.embeddings()
        if not self.recognizer.instantid:
            message = (
                f"These faces were analysed with the recogniser {self.recognizer.name}, but InstantID's adapter and "
                "IdentityNet were trained on antelopev2's glintr100, whose embeddings live in another space: the "
                "identity will not transfer well. Load antelopev2 in 'Load InstantID Face Analysis'"
            )
            if self.refuse_other_recognizer:
                raise InstantIDError(
                    f"{message}, or set other_recognizer to 'warn' there to go on anyway.", "recognizer_mismatch"
                )
            logger.warning("%s.", message)
        return embeddings


def join_faces(batches: Sequence[InstantIDFaces]) -> InstantIDFaces:
    """The faces of several INSTANTID_FACE values as one, in order (photo i of the result is the i-th photo of them
    all); their recognisers must be the same, as their embeddings must live in one space. Weights per photo carry
    over; a value without them counts each of its photos 1."""
    if not batches:
        raise InstantIDError("No faces to join: connect at least one face.", "missing_input")
    recognizers = {faces.recognizer.name for faces in batches}
    if len(recognizers) > 1:
        raise InstantIDError(
            f"These faces were analysed with different recognisers ({', '.join(sorted(recognizers))}): their "
            "embeddings live in different spaces and cannot be used side by side. Analyse (or save) every face with "
            "the same face models.",
            "recognizer_mismatch",
        )
    results = [result for faces in batches for result in faces.results]
    weighted = any(faces.photo_weights is not None for faces in batches)
    return InstantIDFaces(
        results=tuple(dataclasses.replace(result, batch_index=i) for i, result in enumerate(results)),
        recognizer=batches[0].recognizer,
        refuse_other_recognizer=any(faces.refuse_other_recognizer for faces in batches),
        photo_weights=tuple(w for faces in batches for w in (faces.photo_weights or (1.0,) * len(faces.results)))
        if weighted
        else None,
    )


ROW_GAP = 0.4
"""Two rows of faces are told apart by a gap between their box centres of at least this many face heights."""
MIN_ROW = 3
"""A split into rows must leave at least this many faces on each side, unless a face stands right above another."""


def sort_reading_order(faces: Sequence[DetectedFace]) -> tuple[DetectedFace, ...]:
    """Faces numbered as a person would number them: rows top to bottom, each row left to right. Only their face
    boxes (`bbox`) count, so a body pose's faces are numbered the same way.

    A group whose heads stand at different heights is one row (read left to right); rows are told apart only where
    the box centres leave a clear vertical gap (ROW_GAP face heights) with at least MIN_ROW faces on each side, or
    where a face stands right above another. The rule depends only on the faces' relative positions and sizes, so
    shifting or scaling the picture keeps the numbering.
    """
    rows = _rows(sorted(faces, key=_centre_y))
    return tuple(face for row in rows for face in sorted(row, key=lambda f: float(f.bbox[0] + f.bbox[2])))


def _centre_y(face: DetectedFace) -> float:
    """The height of a face's box centre."""
    return float(face.bbox[1] + face.bbox[3]) / 2


def _rows(faces: list[DetectedFace]) -> list[list[DetectedFace]]:
    """Faces sorted by the height of their centres, split into rows at the widest gap that qualifies, recursively."""
    if len(faces) < 2:
        return [faces] if faces else []
    height = float(np.median([float(f.bbox[3] - f.bbox[1]) for f in faces]))
    centres = [_centre_y(f) for f in faces]
    gaps = sorted(range(1, len(faces)), key=lambda i: centres[i] - centres[i - 1], reverse=True)
    for i in gaps:
        if centres[i] - centres[i - 1] < ROW_GAP * height:
            break
        upper, lower = faces[:i], faces[i:]
        if min(len(upper), len(lower)) >= MIN_ROW or _stacked(upper, lower):
            return _rows(upper) + _rows(lower)
    return [faces]


def _stacked(upper: list[DetectedFace], lower: list[DetectedFace]) -> bool:
    """Whether some face of `upper` stands right above one of `lower` (their boxes overlap by half the narrower
    width, horizontally)."""
    for a in upper:
        for b in lower:
            overlap = min(float(a.bbox[2]), float(b.bbox[2])) - max(float(a.bbox[0]), float(b.bbox[0]))
            narrower = min(float(a.bbox[2] - a.bbox[0]), float(b.bbox[2] - b.bbox[0]))
            if overlap >= 0.5 * narrower:
                return True
    return False


def choose_face(faces: Sequence[DetectedFace], mode: str, index: int) -> int:
    """Index (into faces, which are in reading order) of the face to use: the largest box, or the given index."""
    if mode not in CHOICE_MODES:
        raise InstantIDError(f"Unknown face choice {mode!r}: use one of {', '.join(CHOICE_MODES)}.", "bad_setting")
    if not faces:
        raise InstantIDError("No face was found, so none can be chosen.", "no_face")
    if mode == "largest":
        areas = [face.area for face in faces]
        return int(np.argmax(areas))  # first (in reading order) among equal areas
    if not 0 <= index < len(faces):
        raise InstantIDError(
            f"Face index {index} was requested but {len(faces)} face(s) were found (valid indices 0..{len(faces) - 1},"
            " counted in reading order: left to right, then top to bottom). Lower the index or choose 'largest'.",
            "index_out_of_range",
        )
    return int(index)


def combine_embeddings(embeddings, method: str, weights: Sequence[float] | None = None):
    """Combine (N, D) raw embeddings into (1, D) ('average', 'norm average'), keep all N rows ('concat', 'per
    picture') or stack them as one sample of N inputs, (1, N, D) ('joint'). `weights` (one per row, default equal)
    make the averages weighted: a photo of weight 2 counts as two photos of weight 1.

    'average' is the mean of the raw embeddings; 'norm average' averages the L2-normalised embeddings and rescales
    the direction to the mean raw norm; 'concat' returns the N rows unchanged (each becomes its own tokens, all
    attended to together); 'per picture' too (each becomes the identity of one picture of the batch); 'joint'
    is the reference pipeline's input for several faces: the Resampler attends over all N at once and gives one set
    of tokens. A torch tensor comes back as a tensor on the same device and dtype, anything else as a float32 numpy
    array.
    """
    if method not in COMBINE_METHODS:
        raise InstantIDError(
            f"Unknown embedding combination {method!r}: use one of {', '.join(COMBINE_METHODS)}.", "bad_setting"
        )
    is_torch = type(embeddings).__module__.startswith("torch")
    values = embeddings.detach().cpu().float().numpy() if is_torch else np.asarray(embeddings, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] == 0:
        raise InstantIDError(
            f"Expected embeddings of shape (N, D) with N >= 1, got shape {tuple(values.shape)}.", "bad_embeddings"
        )
    share = _weight_shares(weights, values.shape[0], method)
    if method == "average":
        combined = (share[:, None] * values).sum(axis=0, keepdims=True)
    elif method == "norm average":
        norms = np.linalg.norm(values, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise InstantIDError(
                f"Embedding row(s) {np.flatnonzero(norms[:, 0] == 0).tolist()} are all zeros.", "bad_embeddings"
            )
        direction = (share[:, None] * values / norms).sum(axis=0, keepdims=True)
        length = np.linalg.norm(direction)
        if length < 1e-6:
            raise InstantIDError(
                "The normalised embeddings cancel out (opposite directions): use 'average' or 'concat'.",
                "bad_embeddings",
            )
        combined = direction / length * float(share @ norms[:, 0])
    elif method == "joint":
        combined = values[np.newaxis]
    else:
        combined = values.copy()
    combined = combined.astype(np.float32)
    if is_torch:
        import torch

        return torch.from_numpy(combined).to(device=embeddings.device, dtype=embeddings.dtype)
    return combined


def parse_weights(text: str) -> tuple[float, ...] | None:
    """Weights per photo from text such as '1, 1, 0.5' (commas or spaces); None for empty text (equal weights)."""
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    try:
        return tuple(float(part) for part in parts)
    except ValueError:
        raise InstantIDError(
            f"Could not read the weights {text!r}: write one number per photo, e.g. '1, 1, 0.5'.", "bad_weights"
        ) from None


WEIGHTED_METHODS = ("average", "norm average")
"""The combinations that take a weight per photo."""


def _weight_shares(weights: Sequence[float] | None, count: int, method: str) -> np.ndarray:
    """Each row's share of the combination (summing to 1), from weights (None: equal)."""
    if weights is None:
        return np.full(count, 1.0 / count)
    values = np.asarray(weights, dtype=np.float64)
    if values.shape != (count,) or not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise InstantIDError(
            f"Expected {count} weights (one per reference face), none negative and not all 0, got {list(weights)}.",
            "bad_weights",
        )
    if method not in WEIGHTED_METHODS and np.ptp(values) > 0:
        raise InstantIDError(
            f"Weights per photo apply to {' and '.join(WEIGHTED_METHODS)}, not to {method!r}: set combine_embeds "
            "to one of those, or give every photo the same weight.",
            "bad_weights",
        )
    return values / values.sum()

"""Face similarity: how much the faces in pictures look like the reference person, as the InstantID paper measures
face fidelity (cosine similarity of the recogniser's raw embeddings), to rank a batch and keep the best.

Several references are scored against their combined identity (the mean of their unit embeddings) and one by one.
Embeddings of different recognisers live in different spaces and are never compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dependencies import cv2
from .errors import InstantIDError
from .faces import InstantIDFaces

NO_FACE = "no face"


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings."""
    return float(unit(a) @ unit(b))


@dataclass(frozen=True)
class ImageScore:
    """How one picture scores: its best-matching face (number in the picture) against the combined identity and
    against each reference; `score` is None when the picture has no face."""

    index: int
    score: float | None
    face: int | None = None
    per_reference: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """The score as text, or 'no face'."""
        return NO_FACE if self.score is None else f"{self.score:.3f}"


def check_comparable(reference: InstantIDFaces, candidates: InstantIDFaces) -> None:
    """Refuse to compare embeddings made by different recognisers."""
    if not reference.recognizer.comparable(candidates.recognizer):
        raise InstantIDError(
            f"The reference faces were analysed with the recogniser {reference.recognizer.name} and the pictures with "
            f"{candidates.recognizer.name}: their embeddings live in different spaces, so a similarity between them "
            "means nothing. Analyse both with the same face models.",
            "recognizer_mismatch",
        )


PAIRINGS = ("all references", "picture i to reference i")
"""How pictures meet references: each against the references' combined identity, or picture i against reference i
(a batch generated with one identity per picture)."""


def score_images(reference: InstantIDFaces, candidates: InstantIDFaces, per_picture: bool = False) -> list[ImageScore]:
    """Each candidate picture's score: the best of its faces against the references' combined identity, or, with
    `per_picture`, against reference i for picture i (one reference face per picture, or an error)."""
    check_comparable(reference, candidates)
    references = unit(reference.embeddings())
    if per_picture:
        pictures = len(candidates.results)
        if reference.skipped_indices or len(references) != pictures:
            raise InstantIDError(
                f"'{PAIRINGS[1]}' scores each picture against its own reference, but there are "
                f"{len(references)} reference face(s) for {pictures} picture(s): give one reference face per picture, "
                f"in the order of the batch (as 'per picture' generated it), or score against '{PAIRINGS[0]}'.",
                "batch_mismatch",
            )
        targets = references
    else:
        targets = np.repeat(unit(references.mean(axis=0))[None], len(candidates.results), axis=0)
    scores = []
    for result, target in zip(candidates.results, targets, strict=True):
        if result.skipped or not result.faces:
            scores.append(ImageScore(result.batch_index, None))
            continue
        faces = unit(np.stack([face.embedding for face in result.faces]))
        combined = faces @ target
        best = int(np.argmax(combined))
        per_reference = (float(combined[best]),) if per_picture else tuple(float(v) for v in references @ faces[best])
        scores.append(ImageScore(result.batch_index, float(combined[best]), best, per_reference))
    return scores


def ranking(scores: list[ImageScore]) -> list[ImageScore]:
    """The scores best first; pictures without a face last, in their batch order."""
    return sorted(scores, key=lambda s: (s.score is None, -(s.score or 0.0), s.index))


def summary(scores: list[ImageScore], references: int, per_picture: bool = False) -> str:
    """A text report, best first: each picture's score, its face, and the per-reference scores (with
    `per_picture`, each picture against its own reference)."""
    if per_picture:
        lines = ["Face similarity of each picture to its own reference (image i to reference i), best first:"]
        references = 1  # one score per picture: no per-reference breakdown
    else:
        lines = [f"Face similarity to the reference ({references} photo{'s' if references != 1 else ''}), best first:"]
    for rank, s in enumerate(ranking(scores)):
        if s.score is None:
            lines.append(f"{rank + 1}. image {s.index}: no face found")
            continue
        each = f"; per reference: {', '.join(f'{v:.3f}' for v in s.per_reference)}" if references > 1 else ""
        lines.append(f"{rank + 1}. image {s.index}: {s.score:.3f} (face {s.face}){each}")
    return "\n".join(lines)


def draw_score(picture: np.ndarray, score: ImageScore) -> np.ndarray:
    """A copy of an H×W×3 uint8 picture with its score (or 'no face') written in its top-left corner."""
    canvas = np.array(picture[..., :3], dtype=np.uint8, copy=True, order="C")
    scale = max(0.5, max(canvas.shape[:2]) / 700)
    thickness = max(1, round(scale * 2))
    text = score.label
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = 2 * thickness
    cv2.rectangle(canvas, (0, 0), (width + 2 * pad, height + baseline + 2 * pad), (0, 0, 0), -1)
    colour = (230, 40, 40) if score.score is None else (0, 220, 0)
    cv2.putText(canvas, text, (pad, height + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return canvas

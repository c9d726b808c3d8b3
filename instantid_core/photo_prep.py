"""The photo preparation InstantID's reference pipeline applies before face analysis.

The reference scales every photo so that its long side is 1280 px (after first rounding the size as if the short side
were 1024 px) with PIL's bilinear filter, then resizes it once more so that both sides are whole multiples of 64. Face
detection and the recogniser's aligned crop then see that picture, whatever size the photo arrived at. This module
reproduces those two resizes step for step; the analysis maps what it finds back to the photo's own pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LONG_SIDE = 1280
"""The long side, in pixels, the reference scales every photo to."""
SHORT_SIDE = 1024
"""The short side the reference's size arithmetic passes through before scaling to LONG_SIDE."""
MULTIPLE = 64
"""Both sides end as whole multiples of this many pixels."""


def reference_sizes(width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The (width, height) of the reference's two resizes of a width×height photo: long side LONG_SIDE, then both
    sides floored to multiples of MULTIPLE (never below MULTIPLE, where the reference would fail on a sliver)."""
    ratio = SHORT_SIDE / min(width, height)
    width, height = round(ratio * width), round(ratio * height)
    ratio = LONG_SIDE / max(width, height)
    scaled = (round(ratio * width), round(ratio * height))
    return scaled, tuple(max(MULTIPLE, side // MULTIPLE * MULTIPLE) for side in scaled)


def prepare_like_reference(rgb: np.ndarray) -> np.ndarray:
    """An H×W×3 uint8 RGB photo resized as the reference pipeline does before analysing it."""
    height, width = rgb.shape[:2]
    scaled, final = reference_sizes(width, height)
    picture = Image.fromarray(rgb).resize(scaled, Image.BILINEAR).resize(final, Image.BILINEAR)
    return np.asarray(picture)

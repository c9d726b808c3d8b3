"""An angle sheet: one keypoint layout per named view of the head, all placed alike in one frame, for a batch that
shows one person from several angles with one seed.

The views are the Keypoints Editor's presets (web/keypoint_presets.json, the mean head of head_model seen from each
preset's angles). They are made for a square frame; in a frame of another aspect the square of the shorter side is
centred in it (letterboxed), so a view keeps its angles at every size.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import InstantIDError, problem_of
from .head_model import PRESET_DECIMALS
from .keypoint_editor import presets
from .keypoints import KeypointLayout, PlacedKeypoints, estimated_face_box

MIRRORED_ORDER = (1, 0, 2, 4, 3)
"""A mirror image swaps the eyes and the mouth corners (as the editor's mirror does)."""

SEPARATORS = re.compile(r"[\n,;]+")
"""What may separate view names: new lines, commas or semicolons."""


def view_names() -> tuple[str, ...]:
    """The names of the views, in the presets' order."""
    return tuple(presets())


def default_views() -> str:
    """The node's default list of views: every preset, one per line."""
    return "\n".join(view_names())


def parse_views(text: str) -> tuple[str, ...]:
    """The view names in `text` (one per line, or separated by commas), each a preset; an InstantIDError naming the
    unknown ones and listing the known ones otherwise."""
    names = tuple(name.strip() for name in SEPARATORS.split(text or "") if name.strip())
    known = view_names()
    if not names:
        raise InstantIDError(
            f"The angle sheet lists no views: write one per line, from: {', '.join(known)}.", "bad_views"
        )
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InstantIDError(
            f"Unknown view(s) {', '.join(map(repr, unknown))}: the views are {', '.join(known)}.", "bad_views"
        )
    return names


def views_problem(text: str) -> str | None:
    """What is wrong with a list of views, or None."""
    return problem_of(parse_views, text)


def mirrored(points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    """Frame-fraction keypoints seen in a mirror (x to 1 - x, left and right swapped), to the presets' precision: the
    mirror of a preset is exactly its mirrored preset (three-quarter left of three-quarter right, and so on)."""
    return tuple((round(1.0 - points[i][0], PRESET_DECIMALS), points[i][1]) for i in MIRRORED_ORDER)


def letterboxed(points, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """Square-frame fractions placed in a (width, height) frame: in the centred square of its shorter side, scaled
    by `scale` about the frame's centre; (5, 2) float64 pixels."""
    width, height = size
    if not (width >= 1 and height >= 1 and scale > 0):
        raise InstantIDError(
            f"An angle sheet needs a frame of at least 1×1 and a scale above 0, got {width}×{height}, scale {scale:g}",
            "bad_setting",
        )
    side = min(width, height)
    centre = np.array([width / 2, height / 2])
    return centre + (np.asarray(points, dtype=np.float64) - 0.5) * side * scale


def angle_sheet(views: tuple[str, ...], size: tuple[int, int], mirror: bool = False, scale: float = 1.0):
    """One layout per view (mirrored if asked), each placed alike in a frame of this (width, height)."""
    layouts = []
    for name in views:
        points = presets()[name]
        kps = letterboxed(mirrored(points) if mirror else points, size, scale)
        layout = KeypointLayout(
            kps=(kps,), boxes=(estimated_face_box(kps),), source_size=size, placement="as in source"
        )
        layouts.append(layout)
    return PlacedKeypoints(tuple(layouts), size)

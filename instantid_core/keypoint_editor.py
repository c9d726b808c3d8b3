"""The value of the InstantID Keypoints Editor: five frame-normalised keypoints and their opacities, as versioned JSON.

    {"version": 1, "points": [[x, y], ... five ...], "opacity": [1, 1, 1, 1, 1]}

x and y are fractions of the frame's width and height ((0, 0) its top-left corner, (1, 1) its bottom-right), in
insightface's order: left eye, right eye, nose, left and right mouth corner, as seen. "opacity" may be left out (all
ones). A point may lie somewhat outside the frame (FRAME_LIMITS), for a face cut by the border. The value is the node's
STRING input, so it stays editable without the web editor and in API prompts. The presets the editor offers are in
web/keypoint_presets.json, beside the editor; the node's default is its "frontal" preset.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InstantIDError, problem_of
from .keypoints import FULL_OPACITY, KeypointLayout, as_opacity

VALUE_VERSION = 1
"""The version of the editor's value this pack reads and writes."""

FRAME_LIMITS = (-0.5, 1.5)
"""The range of a frame-normalised coordinate: up to half the frame beyond each border."""

PRESETS_FILE = Path(__file__).resolve().parent.parent / "web" / "keypoint_presets.json"
"""The editor's presets, read by the web editor and here (for the default)."""

EXAMPLE = '{"version": 1, "points": [[0.42, 0.37], [0.58, 0.37], [0.5, 0.46], [0.43, 0.55], [0.57, 0.55]]}'


@dataclass(frozen=True)
class EditorKeypoints:
    """A checked editor value: five frame-normalised points and one opacity per point."""

    points: tuple[tuple[float, float], ...]
    opacity: tuple[float, ...] = FULL_OPACITY

    def layout(self, size: tuple[int, int]) -> KeypointLayout:
        """The face these points place in a frame of this (width, height)."""
        return KeypointLayout.in_frame(self.points, size, self.opacity)

    def to_json(self) -> str:
        """The value as the node stores it."""
        return json.dumps({"version": VALUE_VERSION, "points": [list(p) for p in self.points], "opacity": self.opacity})


@functools.cache
def presets() -> dict[str, tuple[tuple[float, float], ...]]:
    """The editor's presets by name (frame-normalised points)."""
    document = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))
    return {name: parse_points(points, f"preset {name!r}") for name, points in document["presets"].items()}


def default_value() -> str:
    """The node's default value: the frontal preset, every point opaque."""
    return EditorKeypoints(presets()["frontal"]).to_json()


def parse_points(points, what: str = "points") -> tuple[tuple[float, float], ...]:
    """Five frame-normalised (x, y) pairs within FRAME_LIMITS, not all on one spot; an InstantIDError naming `what`
    otherwise."""
    if not (isinstance(points, list) and len(points) == 5):
        raise InstantIDError(
            f"{what} must be a list of five [x, y] pairs, got {json.dumps(points)[:200]}", "bad_keypoints_value"
        )
    pairs = []
    for number, point in enumerate(points):
        if not (
            isinstance(point, list)
            and len(point) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point)
        ):
            raise InstantIDError(
                f"{what}: point {number} must be two finite numbers [x, y], got {json.dumps(point)}",
                "bad_keypoints_value",
            )
        low, high = FRAME_LIMITS
        if not all(low <= v <= high for v in point):
            raise InstantIDError(
                f"{what}: point {number} ({point[0]:g}, {point[1]:g}) is too far outside the frame: x and y are "
                f"fractions of the frame's width and height, from {low:g} to {high:g}.",
                "bad_keypoints_value",
            )
        pairs.append((float(point[0]), float(point[1])))
    if len(set(pairs)) == 1:
        raise InstantIDError(
            f"{what}: the five points all lie on one spot, so they draw no face.", "bad_keypoints_value"
        )
    return tuple(pairs)


def parse_editor_value(text: str) -> EditorKeypoints:
    """The editor value in `text`, checked; an InstantIDError that says what is wrong and what a good value is like."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise InstantIDError(
            f"The keypoints value is not JSON ({e}). Use the editor, press its Reset, or write a value like {EXAMPLE}",
            "bad_keypoints_value",
        ) from None
    if not isinstance(value, dict) or "points" not in value:
        raise InstantIDError(
            f'The keypoints value must be a JSON object with "points", like {EXAMPLE}', "bad_keypoints_value"
        )
    if value.get("version") != VALUE_VERSION:
        raise InstantIDError(
            f"The keypoints value has version {value.get('version')!r}; this pack reads version {VALUE_VERSION}. "
            'A value from a newer pack needs that pack; otherwise add "version": 1.',
            "bad_keypoints_value",
        )
    unknown = sorted(set(value) - {"version", "points", "opacity"})
    if unknown:
        raise InstantIDError(
            f"The keypoints value has unknown keys {unknown}: only version, points and opacity.", "bad_keypoints_value"
        )
    points = parse_points(value["points"], "The keypoints value's points")
    opacity = value.get("opacity", list(FULL_OPACITY))
    if not (
        isinstance(opacity, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in opacity)
    ):
        raise InstantIDError(
            f"The keypoints value's opacity must be five numbers from 0 to 1, got {opacity!r}", "bad_keypoints_value"
        )
    try:
        return EditorKeypoints(points, as_opacity(opacity))
    except InstantIDError as e:  # the count or range of the opacities: a fault of the value, not of drawn keypoints
        raise InstantIDError(str(e), "bad_keypoints_value") from None


def editor_value_problem(text: str) -> str | None:
    """What is wrong with an editor value, or None."""
    return problem_of(parse_editor_value, text)


def frame_points(layout: KeypointLayout, size: tuple[int, int]) -> list[list[float]]:
    """The chosen face of a layout, placed in a frame of this (width, height), as frame-normalised points (what the
    editor's "load from face" takes)."""
    placed = layout.placed(size)[layout.chosen].astype(np.float64) / np.array(size, dtype=np.float64)
    return [[round(float(x), 5), round(float(y), 5)] for x, y in placed]

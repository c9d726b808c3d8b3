"""A mean head for the five face keypoints: where a face of ArcFace-template proportions puts its eyes, nose tip and
mouth corners when it turns, and the inverse that places the mouth corners when only the eyes and nose are known.

Coordinates are in eye distances, origin midway between the eyes, x to the right and y down as seen, z toward the
camera. The nose tip stands 0.55 eye distances in front of the eyes and the mouth corners 0.12 (NOSE, MOUTH): the
depths that make the editor's turned presets (web/keypoint_presets.json, each listed with its angles there) this head seen from those
angles. A head nods first (pitch, positive: looking up), then turns (yaw, positive: looking to the right as seen); the
view is orthographic, scaled. Nodding before turning keeps the eyes level, so the roll of a face is the tilt of its
eye line.

How well the mouth estimate fits real faces (tests/realface/test_pose_real.py: the 62 faces SCRFD finds in the
real-face tier's photos, each put on a body): the estimated corners are a median 12 % of the eye distance from the
detector's, nine in ten within 17 %, the worst 28 %. People's mouths differ that much from the mean head (width,
height under the nose, expression), so no rule from eyes and nose alone does much better: a straight-line fit of the
mouth's height to the nose's on those very faces still leaves 9 %. On heads of the model's proportions the estimate
is exact to float rounding, at any turn, nod, roll and size.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InstantIDError

NOSE = np.array([0.0, 0.575, 0.55])
"""The nose tip: under the eyes' midpoint, 0.575 eye distances down and 0.55 toward the camera."""
MOUTH = np.array([[-0.415, 1.155, 0.12], [0.415, 1.155, 0.12]])
"""The mouth corners, left and right as seen: 0.83 eye distances apart, 1.155 under the eyes, 0.12 toward the
camera (the ArcFace template's proportions, made symmetric)."""
EYES = np.array([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
"""The eyes, left and right as seen."""

PRESET_EYE_DISTANCE = 0.16
"""The frontal preset's eye distance, as a fraction of the (square) preset frame."""
PRESET_CENTRE = (0.5, 0.46)
"""Where the presets put the centre of the keypoints' bounding box, as fractions of the frame."""
PRESET_DECIMALS = 4
"""The presets' precision: frame fractions to four decimals (a tenth of a pixel at 1024)."""

PITCH_LIMIT = 35.0
"""The largest nod (degrees) the mouth estimate considers, either way: beyond it a nodded nose tip no longer stands
out toward the camera enough to tell the turn; a nose further up or down is taken at the nearest nod that fits."""


def turned(points: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """3D head points nodded by `pitch` and then turned by `yaw` degrees, seen from the front: (N, 2) x, y."""
    p, y = math.radians(pitch), math.radians(yaw)
    pts = np.asarray(points, dtype=np.float64)
    nod_y = pts[:, 1] * math.cos(p) - pts[:, 2] * math.sin(p)
    nod_z = pts[:, 1] * math.sin(p) + pts[:, 2] * math.cos(p)
    return np.stack([pts[:, 0] * math.cos(y) + nod_z * math.sin(y), nod_y], axis=1)


def five_points(yaw: float, pitch: float) -> np.ndarray:
    """The head's five keypoints (insightface's order) turned by yaw and pitch, in eye distances about the eyes'
    midpoint."""
    return turned(np.concatenate([EYES, NOSE[None], MOUTH]), yaw, pitch)


def preset_points(yaw: float, pitch: float) -> tuple[tuple[float, float], ...]:
    """A keypoint preset: the head turned by yaw and pitch, scaled to PRESET_EYE_DISTANCE of the frame and centred on
    PRESET_CENTRE, as frame fractions to PRESET_DECIMALS."""
    points = five_points(yaw, pitch) * PRESET_EYE_DISTANCE
    points += np.array(PRESET_CENTRE) - (points.max(axis=0) + points.min(axis=0)) / 2
    return tuple((round(float(x), PRESET_DECIMALS), round(float(y), PRESET_DECIMALS)) for x, y in points)


def mouth_corners(left_eye, right_eye, nose) -> np.ndarray:
    """The mouth corners (2, 2), left and right as seen, of the mean head whose eyes and nose tip are seen at these
    pixel positions: its roll from the eye line, its turn and nod from where the nose stands against the eyes, its
    size from the eye distance."""
    left, right, tip = (np.asarray(p, dtype=np.float64) for p in (left_eye, right_eye, nose))
    across = right - left
    distance = float(np.hypot(*across))
    if distance == 0:
        raise InstantIDError("The two eyes lie on one spot, so the mouth cannot be placed from them.", "bad_keypoints")
    cos_r, sin_r = across / distance
    unroll = np.array([[cos_r, sin_r], [-sin_r, cos_r]])
    mid = (left + right) / 2
    nose_x, nose_y = unroll @ (tip - mid) / distance  # in seen eye distances, along and across the eye line
    pitch = _pitch(nose_x, nose_y)
    yaw = math.degrees(math.atan(nose_x / _nose_reach(pitch)))
    scale = distance / math.cos(math.radians(yaw))  # pixels per eye distance of the head itself
    mouth = turned(MOUTH, yaw, pitch) * scale
    return mid + mouth @ unroll  # rolled back (unroll is orthogonal: its transpose turns the other way)


def _nose_reach(pitch: float) -> float:
    """How far the nose tip stands out toward the camera after a nod of `pitch` degrees (what a turn moves sideways)."""
    p = math.radians(pitch)
    return NOSE[1] * math.sin(p) + NOSE[2] * math.cos(p)


def _nose_drop(nose_x: float, pitch: float) -> float:
    """How far under the eye line the nose tip is seen, in seen eye distances, for a head nodded by `pitch` and
    turned as far as a nose seen `nose_x` along the eye line says."""
    p = math.radians(pitch)
    turn = math.atan(nose_x / _nose_reach(pitch))
    return (NOSE[1] * math.cos(p) - NOSE[2] * math.sin(p)) / math.cos(turn)


def _pitch(nose_x: float, nose_y: float) -> float:
    """The nod (degrees, within PITCH_LIMIT) under which the mean head shows its nose where it is seen: the root of
    drop - nose_y nearest to no nod (a grid of whole degrees, then bisection), or the grid's best fit when there is
    none."""
    grid = np.arange(-PITCH_LIMIT, PITCH_LIMIT + 1.0)
    miss = np.array([_nose_drop(nose_x, p) - nose_y for p in grid])
    crossings = np.flatnonzero(np.sign(miss[:-1]) != np.sign(miss[1:]))
    if crossings.size == 0:
        return float(grid[np.argmin(np.abs(miss))])
    first = crossings[np.argmin(np.abs(grid[crossings] + 0.5))]
    low, high = float(grid[first]), float(grid[first + 1])
    low_sign = np.sign(miss[first])
    for _ in range(50):
        middle = (low + high) / 2
        if np.sign(_nose_drop(nose_x, middle) - nose_y) == low_sign:
            low = middle
        else:
            high = middle
    return (low + high) / 2

"""Body poses in the exact shape comfyui_controlnet_aux's estimators give them (POSE_KEYPOINT: OpenPose's JSON
layout, flat [x, y, confidence] lists, missing points as [0, 0, 0]), built round known face keypoints.

The body is a plausible upright one sized by the eye distance: ears outside the eyes, neck, shoulders, elbows,
wrists, hips, knees and ankles below the head. The face points (68, or 70 with the pupils) put each eye's six contour
points round the eye symmetrically (so their mean is the eye), the nose tip on the nose and the mouth corners on the
mouth; the jaw, brows, bridge and lips go round them.
"""

from __future__ import annotations

import numpy as np

BODY_BELOW_HEAD = {  # OpenPose body index: (across, down) from the eyes' midpoint, in eye distances
    1: (0.0, 2.6),
    2: (-1.9, 2.9),
    3: (-2.3, 5.0),
    4: (-2.4, 7.0),
    5: (1.9, 2.9),
    6: (2.3, 5.0),
    7: (2.4, 7.0),
    8: (-1.0, 7.6),
    9: (-1.1, 10.6),
    10: (-1.1, 13.4),
    11: (1.0, 7.6),
    12: (1.1, 10.6),
    13: (1.1, 13.4),
}


def body_points(kps: np.ndarray) -> np.ndarray:
    """(18, 2) OpenPose body points round five face keypoints (insightface's order): nose, eyes and ears from the face,
    the rest of the body below it."""
    kps = np.asarray(kps, dtype=np.float64)
    across = kps[1] - kps[0]
    down = np.array([-across[1], across[0]])
    mid = (kps[0] + kps[1]) / 2
    points = np.zeros((18, 2))
    points[0], points[14], points[15] = kps[2], kps[0], kps[1]
    points[16] = mid - 0.95 * across + 0.25 * down  # the person's right ear: left as seen
    points[17] = mid + 0.95 * across + 0.25 * down
    for index, (a, d) in BODY_BELOW_HEAD.items():
        points[index] = mid + a * across + d * down
    return points


def face_points(kps: np.ndarray, pupils: bool) -> np.ndarray:
    """(68 or 70, 2) face points in the 68-point order round five face keypoints."""
    kps = np.asarray(kps, dtype=np.float64)
    across = kps[1] - kps[0]
    down = np.array([-across[1], across[0]])
    mid = (kps[0] + kps[1]) / 2
    points = np.zeros((70 if pupils else 68, 2))
    jaw = np.linspace(-np.pi * 0.9, -np.pi * 0.1, 17)
    points[0:17] = mid + 0.5 * down + np.outer(np.cos(jaw), across) * 0.85 - np.outer(np.sin(jaw), down) * 1.1
    points[17:22] = mid - 0.3 * down + np.outer(np.linspace(-0.8, -0.2, 5), across)
    points[22:27] = mid - 0.3 * down + np.outer(np.linspace(0.2, 0.8, 5), across)
    points[27:31] = np.linspace(mid, kps[2], 5)[1:]
    points[31:36] = kps[2] + 0.1 * down + np.outer(np.linspace(-0.2, 0.2, 5), across)
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    for start, eye in ((36, kps[0]), (42, kps[1])):
        offsets = np.outer(np.cos(ring), across) * 0.15 + np.outer(np.sin(ring), down) * 0.06
        points[start : start + 6] = eye + offsets - offsets.mean(axis=0)
    lips = np.linspace(kps[3], kps[4], 7)
    points[48:55] = lips
    points[55:60] = lips[5:0:-1] + 0.1 * down
    points[60:68] = np.concatenate([lips[1:6], lips[4:1:-1]]) + 0.02 * down
    if pupils:
        points[68], points[69] = kps[0], kps[1]
    return points


def flat(points: np.ndarray, missing: tuple[int, ...] = (), scale=(1.0, 1.0)) -> list[float]:
    """[x, y, c, ...] as the estimators write it: confidence 1, a missing point [0, 0, 0]; positions divided by
    `scale` (the canvas size, for the OpenPose estimator's fractions)."""
    out = []
    for index, (x, y) in enumerate(points):
        out += [0.0, 0.0, 0.0] if index in missing else [float(x / scale[0]), float(y / scale[1]), 1.0]
    return out


def person(
    kps,
    face: str | None = None,
    missing_body: tuple[int, ...] = (),
    missing_face: tuple[int, ...] = (),
    scale=(1.0, 1.0),
) -> dict:
    """One person of a pose round these face keypoints: face None (body only), "68" or "70" points."""
    entry = {
        "pose_keypoints_2d": flat(body_points(kps), missing_body, scale),
        "face_keypoints_2d": None,
        "hand_left_keypoints_2d": None,
        "hand_right_keypoints_2d": None,
    }
    if face is not None:
        entry["face_keypoints_2d"] = flat(face_points(kps, pupils=face == "70"), missing_face, scale)
    return entry


def pose(people: list[dict], size: tuple[int, int]) -> dict:
    """One picture of a POSE_KEYPOINT value."""
    return {"people": people, "canvas_height": size[1], "canvas_width": size[0]}

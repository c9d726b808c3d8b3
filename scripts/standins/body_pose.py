"""The body pose of the body-pose workflow: one standing person on a 768×1024 canvas as a DWPose estimator gives it
(POSE_KEYPOINT, positions in canvas pixels, no face points), and the skeleton picture of it that the workflow's
OpenPose ControlNet reads. Both come from BODY_POINTS, so the face IdentityNet places sits on the skeleton's head.

The skeleton is drawn the way OpenPose pictures look (coloured limbs on black, a dot per joint); it is test input,
not a reimplementation of any estimator's drawing.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

CANVAS = (768, 1024)
"""The pose's canvas (width, height): a full-body portrait."""

BODY_POINTS = (  # OpenPose's 18 body points: nose, neck, right arm, left arm, right leg, left leg, eyes, ears
    (398, 178), (384, 262), (318, 268), (294, 384), (284, 492), (450, 266), (474, 382), (486, 490),
    (340, 500), (334, 680), (330, 860), (428, 500), (434, 680), (440, 860), (372, 160), (408, 158),
    (350, 170), (428, 166),
)  # fmt: skip
"""The person's body points in canvas pixels: the head turned a little to the right as seen."""

LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
"""The body point pairs the skeleton joins."""

PICTURE = "instantid_body_pose.png"
"""The skeleton picture's name in the input folder."""


def body_pose() -> list[dict]:
    """The pose as POSE_KEYPOINT (one picture, one person, body points only, confidence 1)."""
    flat = [float(v) for x, y in BODY_POINTS for v in (x, y, 1.0)]
    person = {
        "pose_keypoints_2d": flat,
        "face_keypoints_2d": None,
        "hand_left_keypoints_2d": None,
        "hand_right_keypoints_2d": None,
    }
    return [{"people": [person], "canvas_width": CANVAS[0], "canvas_height": CANVAS[1]}]


def body_pose_json() -> str:
    """The pose as the JSON text the workflow's 'InstantID Pose from JSON' holds."""
    return json.dumps(body_pose())


def skeleton_picture() -> np.ndarray:
    """The skeleton of BODY_POINTS on black, H×W×3 uint8 RGB: each limb in its own hue, a dot on each joint."""
    width, height = CANVAS
    picture = np.zeros((height, width, 3), dtype=np.uint8)
    for number, (a, b) in enumerate(LIMBS):
        hue = round(180 * number / len(LIMBS))
        colour = cv2.cvtColor(np.uint8([[[hue, 255, 200]]]), cv2.COLOR_HSV2RGB)[0, 0].tolist()
        cv2.line(picture, BODY_POINTS[a], BODY_POINTS[b], colour, 8, cv2.LINE_AA)
    for point in BODY_POINTS:
        cv2.circle(picture, point, 5, (255, 255, 255), -1, cv2.LINE_AA)
    return picture


def write_skeleton_picture(input_dir: Path) -> Path:
    """Write the skeleton picture into input_dir (cheap: done on every stand-in run)."""
    path = Path(input_dir) / PICTURE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(skeleton_picture(), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path

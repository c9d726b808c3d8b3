"""Face keypoints from a body pose: the POSE_KEYPOINT value of comfyui_controlnet_aux's pose estimators (OpenPose's
JSON layout) as placed keypoint layouts, one per picture.

A POSE_KEYPOINT value is a list with one entry per picture:

    {"people": [{"pose_keypoints_2d": [x, y, c, ...18 points], "face_keypoints_2d": [x, y, c, ...68 or 70] or null,
                 "hand_left_keypoints_2d": ..., "hand_right_keypoints_2d": ...}, ...],
     "canvas_width": W, "canvas_height": H}

Body points are in OpenPose's 18-point order (0 nose, 14 and 15 the person's right and left eye, 16 and 17 their
ears); face points in the 68-point order (36-41 and 42-47 the person's right and left eye, 30 the nose tip, 48 and 54
the mouth corners), with the pupils as points 68 and 69 when there are 70. A point is missing when its confidence is
under MIN_CONFIDENCE or it lies left of or above the canvas (the estimators write [0, 0, 0] for a missing point, a
face estimator may write a negative position with confidence 1). The OpenPose estimator gives positions as fractions
of the canvas, the DWPose estimator in canvas pixels: as the estimators' own drawing decides, a picture whose points
all lie within 0..1 is read as fractions. A person's right eye is the left one as seen when they face the camera:
insightface's first keypoint.

Each face takes its eyes from the face points (the pupils, else each eye's six contour points' mean), else from the
body; its nose tip likewise; its mouth corners from the face points, else from the mean head (head_model), whose
turn, nod, roll and size the eyes and nose fix. The ears are not used: given the eyes and nose they add nothing the
mean head could use, and estimators often miss them under hair.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import numpy as np

from .errors import InstantIDError
from .face_analysis import ERROR, NO_FACE_POLICIES
from .faces import sort_reading_order
from .head_model import mouth_corners
from .keypoints import KeypointLayout, estimated_face_box

logger = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.05
"""Confidence under which a pose point counts as missing."""

BODY_POINTS = 18
NOSE, RIGHT_EYE, LEFT_EYE = 0, 14, 15
FACE_POINTS = (68, 70)
FACE_RIGHT_EYE, FACE_LEFT_EYE = range(36, 42), range(42, 48)
FACE_NOSE_TIP, FACE_MOUTH = 30, (48, 54)
FACE_PUPILS = (68, 69)


@dataclass(frozen=True, eq=False)
class PoseHead:
    """One person's face in a pose picture: the five keypoints (insightface's order, canvas pixels), the face box
    round them (what reading order sorts by) and whether the mouth corners were estimated."""

    person: int  # the person's place in the picture's "people" list, from 0
    kps: np.ndarray
    bbox: np.ndarray
    estimated_mouth: bool


@dataclass(frozen=True)
class PosePicture:
    """One picture of a pose: its canvas size (width, height), the faces found in reading order, and the people
    without one (their place in the list and what they miss)."""

    size: tuple[int, int]
    heads: tuple[PoseHead, ...]
    missing: tuple[tuple[int, str], ...]


def pose_pictures(pose) -> list[PosePicture]:
    """Every picture of a POSE_KEYPOINT value (a list of pictures, or one picture's dict), checked; an InstantIDError
    that names the picture, person and field for anything malformed."""
    pictures = [pose] if isinstance(pose, dict) else pose
    if not isinstance(pictures, list) or not pictures:
        raise InstantIDError(
            "The pose must be a POSE_KEYPOINT value: a list with one entry per picture, each with 'people', "
            f"'canvas_width' and 'canvas_height' (as the DWPose and OpenPose estimators give it), got {_shown(pose)}",
            "bad_pose",
        )
    return [_picture(entry, number) for number, entry in enumerate(pictures, 1)]


def pose_layouts(pose, person: int, all_people: bool, on_no_face: str) -> tuple[KeypointLayout, ...]:
    """One keypoint layout per picture of the pose: the face of person `person` (reading order, from 0), or every
    face; people without eyes and nose raise (ERROR) or are left out with a warning (SKIP)."""
    if on_no_face not in NO_FACE_POLICIES:
        raise InstantIDError(
            f"Unknown no-face policy {on_no_face!r}: use one of {', '.join(NO_FACE_POLICIES)}.", "bad_setting"
        )
    layouts = []
    for number, picture in enumerate(pose_pictures(pose), 1):
        count = len(picture.heads) + len(picture.missing)
        for index, missing in picture.missing:
            where = f"Pose picture {number}: person {index + 1} of the {count} it lists has no {missing}"
            if on_no_face == ERROR:
                raise InstantIDError(
                    f"{where}, so their face cannot be placed. Use a pose where their face shows, or set no_face "
                    "to 'skip' to leave them out.",
                    "bad_pose",
                )
            logger.warning("%s: left out.", where)
        if not picture.heads:
            raise InstantIDError(f"Pose picture {number}: none of its {count} people has a face to place.", "bad_pose")
        heads = picture.heads if all_people else (_chosen(picture, person, number),)
        for head in heads:
            if head.estimated_mouth:
                logger.info(
                    "Pose picture %d: no face points for the person it lists as number %d, so their mouth corners "
                    "are estimated from the eyes and nose.",
                    number,
                    head.person + 1,
                )
        layouts.append(
            KeypointLayout(
                kps=tuple(head.kps for head in heads),
                boxes=tuple(head.bbox for head in heads),
                source_size=picture.size,
                placement="as in source",
            )
        )
    return tuple(layouts)


def parse_pose_json(text: str):
    """The POSE_KEYPOINT value written as JSON text (what the estimators show and 'Save Pose Keypoints' saves),
    checked."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise InstantIDError(
            f"The pose is not JSON ({e}); paste the pose estimator's JSON output.", "bad_pose"
        ) from None
    pose_pictures(value)
    return value if isinstance(value, list) else [value]


def _chosen(picture: PosePicture, person: int, number: int) -> PoseHead:
    """The face of the person at reading-order index `person`, or an error saying how many there are."""
    if not 0 <= person < len(picture.heads):
        raise InstantIDError(
            f"Pose picture {number} has {len(picture.heads)} people with a face (0 to {len(picture.heads) - 1} in "
            f"reading order), so there is no person {person}.",
            "index_out_of_range",
        )
    return picture.heads[person]


def _picture(entry, number: int) -> PosePicture:
    """One picture's entry, checked and read."""
    where = f"Pose picture {number}"
    if not isinstance(entry, dict):
        raise InstantIDError(
            f"{where} must be an object with 'people' and the canvas size, got {_shown(entry)}", "bad_pose"
        )
    if "animals" in entry and "people" not in entry:
        raise InstantIDError(
            f"{where} is an animal pose: this node reads people's poses (DWPose or OpenPose).", "bad_pose"
        )
    size = tuple(entry.get(key) for key in ("canvas_width", "canvas_height"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size):
        raise InstantIDError(
            f"{where}: canvas_width and canvas_height must be whole numbers of pixels, got {size}", "bad_pose"
        )
    people = entry.get("people")
    if not isinstance(people, list):
        raise InstantIDError(f"{where}: 'people' must be a list of people, got {_shown(people)}", "bad_pose")
    if not people:
        raise InstantIDError(f"{where} has no people: the pose estimator found nobody in that picture.", "bad_pose")
    points = [_person_points(person, f"{where}, person {index + 1}") for index, person in enumerate(people)]
    scale = np.array(size, dtype=np.float64) if _as_fractions(points) else np.ones(2)
    heads, missing = [], []
    for index, (body, face) in enumerate(points):
        head = _head(index, body, face, scale)
        if isinstance(head, PoseHead):
            heads.append(head)
        else:
            missing.append((index, head))
    return PosePicture(size, sort_reading_order(heads), tuple(missing))


def _person_points(person, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A person's body points (18, 3) and face points (68 or 70, 3; None without a face estimate)."""
    if not isinstance(person, dict):
        raise InstantIDError(f"{where} must be an object with 'pose_keypoints_2d', got {_shown(person)}", "bad_pose")
    body = _points(person.get("pose_keypoints_2d"), (BODY_POINTS,), f"{where}: pose_keypoints_2d")
    face = person.get("face_keypoints_2d")
    return body, (_points(face, FACE_POINTS, f"{where}: face_keypoints_2d") if face else None)


def _points(values, counts: tuple[int, ...], where: str) -> np.ndarray:
    """A flat [x, y, c, ...] list (or a list of [x, y, c]) of one of these point counts, as an (N, 3) array."""
    if isinstance(values, list) and values and all(isinstance(v, list) for v in values):
        values = [number for point in values for number in point]
    expected = " or ".join(f"{3 * n} numbers ({n} points of x, y, confidence)" for n in counts)
    if not isinstance(values, list) or len(values) not in [3 * n for n in counts]:
        length = len(values) if isinstance(values, list) else _shown(values)
        raise InstantIDError(f"{where} must be {expected}, got {length}", "bad_pose")
    bad = next((i for i, v in enumerate(values) if not _finite_number(v)), None)
    if bad is not None:
        raise InstantIDError(f"{where}: point {bad // 3} has {_shown(values[bad])}, not a finite number", "bad_pose")
    return np.asarray(values, dtype=np.float64).reshape(-1, 3)


def _finite_number(value) -> bool:
    """Whether a JSON value is a finite number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _found(points: np.ndarray) -> np.ndarray:
    """Which points are there: confident and not left of or above the canvas."""
    return (points[:, 2] >= MIN_CONFIDENCE) & (points[:, 0] >= 0) & (points[:, 1] >= 0)


def _as_fractions(points: list[tuple[np.ndarray, np.ndarray | None]]) -> bool:
    """Whether a picture's positions are fractions of the canvas: every found point within 0..1."""
    found = [part[_found(part), :2] for pair in points for part in pair if part is not None]
    positions = np.concatenate(found) if found else np.zeros((0, 2))
    return positions.size > 0 and bool((positions <= 1.0).all())


def _head(index: int, body: np.ndarray, face: np.ndarray | None, scale: np.ndarray) -> PoseHead | str:
    """A person's face, or what is missing for one."""
    body_found = _found(body)
    face_found = _found(face) if face is not None else np.zeros(0, dtype=bool)

    def face_point(*indices: int) -> np.ndarray | None:
        if face is None or not all(i < len(face) and face_found[i] for i in indices):
            return None
        return face[list(indices), :2].mean(axis=0)

    def body_point(i: int) -> np.ndarray | None:
        return body[i, :2] if body_found[i] else None

    def eye(pupil: int, contour: range, body_index: int) -> np.ndarray | None:
        for point in (face_point(pupil), face_point(*contour), body_point(body_index)):
            if point is not None:
                return point
        return None

    right_eye = eye(FACE_PUPILS[0], FACE_RIGHT_EYE, RIGHT_EYE)
    left_eye = eye(FACE_PUPILS[1], FACE_LEFT_EYE, LEFT_EYE)
    nose = face_point(FACE_NOSE_TIP)
    nose = nose if nose is not None else body_point(NOSE)
    absent = [name for name, p in (("right eye", right_eye), ("left eye", left_eye), ("nose", nose)) if p is None]
    if absent:
        return " or ".join(absent) + " in the pose"
    eyes_nose = np.stack([right_eye, left_eye, nose]) * scale
    corners = [face_point(i) for i in FACE_MOUTH]
    estimated = any(c is None for c in corners)
    mouth = mouth_corners(*eyes_nose) if estimated else np.stack(corners) * scale
    kps = np.concatenate([eyes_nose, mouth])
    return PoseHead(index, kps, estimated_face_box(kps), estimated)


def _shown(value) -> str:
    """A value as messages show it: its JSON, cut to 120 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."

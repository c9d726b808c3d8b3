"""The mean head behind the keypoint presets and the mouth estimate of a body pose."""

import json

import numpy as np
import pytest

from instantid_core.errors import InstantIDError
from instantid_core.head_model import five_points, mouth_corners, preset_points
from instantid_core.keypoint_editor import PRESETS_FILE, presets

pytestmark = pytest.mark.unit


def test_every_preset_is_the_mean_head_seen_from_its_listed_angles():
    angles = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))["angles"]

    assert set(angles) == set(presets())
    for name, (yaw, pitch) in angles.items():
        assert preset_points(yaw, pitch) == presets()[name], name


def rolled(points: np.ndarray, roll: float, scale: float, shift) -> np.ndarray:
    """Points turned by `roll` degrees in the picture, scaled and moved."""
    c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    return points @ np.array([[c, s], [-s, c]]) * scale + np.asarray(shift)


def test_the_mouth_of_a_head_of_the_models_proportions_is_found_from_eyes_and_nose_at_any_turn_nod_roll_and_size():
    rng = np.random.default_rng(0)
    for _ in range(300):
        yaw, pitch, roll = rng.uniform(-50, 50), rng.uniform(-30, 30), rng.uniform(-60, 60)
        kps = rolled(five_points(yaw, pitch), roll, rng.uniform(8, 400), rng.uniform(-50, 2000, 2))

        mouth = mouth_corners(*kps[:3])

        eye_distance = np.linalg.norm(kps[1] - kps[0])
        assert np.abs(mouth - kps[3:]).max() < 1e-9 * eye_distance, (yaw, pitch, roll)


def test_a_nose_beyond_any_nod_of_the_mean_head_still_gives_a_mouth_under_the_eyes():
    mouth = mouth_corners([100, 100], [140, 100], [120, 180])  # nose two eye distances down

    assert np.isfinite(mouth).all() and (mouth[:, 1] > 100).all() and mouth[0, 0] < 120 < mouth[1, 0]


def test_eyes_on_one_spot_are_an_error():
    with pytest.raises(InstantIDError, match="eyes lie on one spot"):
        mouth_corners([10, 10], [10, 10], [10, 20])

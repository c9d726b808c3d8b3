"""Face keypoints from body poses in the exact shape comfyui_controlnet_aux's estimators give them."""

import logging

import numpy as np
import pytest

from helpers.poses import person, pose
from instantid_core.body_pose import parse_pose_json, pose_layouts, pose_pictures
from instantid_core.errors import InstantIDError
from instantid_core.head_model import five_points
from instantid_core.keypoints import place_as_source
from scripts.harness.paths import REPO
from scripts.standins.body_pose import PICTURE, body_pose, skeleton_picture

pytestmark = pytest.mark.unit

SIZE = (768, 1024)


def head(yaw=0.0, pitch=0.0, eye_distance=40.0, at=(384.0, 200.0)) -> np.ndarray:
    """Five keypoints of a head of the mean head's proportions (its body, ankles included, within the canvas)."""
    return five_points(yaw, pitch) * eye_distance + np.array(at)


def only_face(picture_pose) -> np.ndarray:
    """The keypoints of the first face of a one-picture pose, in canvas pixels."""
    (layout,) = pose_layouts([picture_pose], 0, False, "error")
    (kps,) = layout.kps
    return kps


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (-30, 0), (40, 10), (15, -20)])
def test_from_the_body_alone_eyes_and_nose_are_exact_and_the_mouth_is_within_5_percent_of_the_eye_distance(yaw, pitch):
    kps = head(yaw, pitch)

    found = only_face(pose([person(kps)], SIZE))

    assert np.array_equal(found[:3], kps[:3])
    assert np.abs(found[3:] - kps[3:]).max() < 0.05 * np.linalg.norm(kps[1] - kps[0])


@pytest.mark.parametrize("face", ["68", "70"])
def test_with_face_points_all_five_are_the_face_points(face):
    kps = head(25, 5) + np.array([[0, 0], [0, 0], [0, 0], [-4, 3], [6, -2]])  # a mouth the mean head would not have

    found = only_face(pose([person(kps, face=face)], SIZE))

    np.testing.assert_allclose(found, kps, rtol=0, atol=1e-9)


def test_missing_face_points_fall_back_point_by_point():
    kps = head(-20, 0) + np.array([[0, 0], [0, 0], [0, 0], [-4, 3], [6, -2]])
    missing = (30, 54, *range(42, 48))  # the nose tip, one mouth corner, the left eye's contour

    (picture,) = pose_pictures([pose([person(kps, face="68", missing_face=missing)], SIZE)])

    (found,) = picture.heads
    np.testing.assert_allclose(found.kps[:3], kps[:3], atol=1e-9)  # eye and nose from the body
    assert found.estimated_mouth and not np.allclose(found.kps[3:], kps[3:], atol=1)


def test_fractions_of_the_canvas_and_canvas_pixels_give_the_same_face():
    kps = head(10, 5)

    in_pixels = only_face(pose([person(kps, face="70")], SIZE))
    as_fractions = only_face(pose([person(kps, face="70", scale=SIZE)], SIZE))

    np.testing.assert_allclose(as_fractions, in_pixels, rtol=0, atol=1e-9)


def test_openpose_face_points_it_could_not_find_are_missing_though_their_confidence_is_one():
    kps = head()
    entry = person(kps, face="70", scale=SIZE)
    entry["face_keypoints_2d"][48 * 3 : 48 * 3 + 2] = [-1 / SIZE[0], -1 / SIZE[1]]  # as its face estimator writes it

    (picture,) = pose_pictures([pose([entry], SIZE)])

    assert picture.heads[0].estimated_mouth


def test_people_are_numbered_in_reading_order_whatever_order_the_pose_lists_them_in():
    left, middle, right = (head(at=(x, 200.0)) for x in (150.0, 380.0, 600.0))
    picture = pose([person(right), person(left), person(middle)], SIZE)

    chosen = [
        only_face(picture, person=i) if False else pose_layouts([picture], i, False, "error")[0].kps[0]
        for i in range(3)
    ]
    (every,) = pose_layouts([picture], 0, True, "error")

    for found, expected in zip(chosen, (left, middle, right), strict=True):
        assert np.array_equal(found[:3], expected[:3])
    assert [k[2].tolist() for k in every.kps] == [left[2].tolist(), middle[2].tolist(), right[2].tolist()]
    with pytest.raises(
        InstantIDError, match=r"has 3 people with a face \(0 to 2 in reading order\), so there is no person 3"
    ):
        pose_layouts([picture], 3, False, "error")


def test_a_person_without_eyes_or_nose_is_an_error_naming_them_or_left_out_with_a_warning(caplog):
    turned_away = person(head(at=(150.0, 200.0)), missing_body=(0, 14))
    picture = pose([person(head(at=(600.0, 200.0))), turned_away], SIZE)

    with pytest.raises(InstantIDError, match="person 2 of the 2 it lists has no right eye or nose in the pose"):
        pose_layouts([picture], 0, False, "error")
    with caplog.at_level(logging.WARNING):
        (layout,) = pose_layouts([picture], 0, True, "skip")
    assert len(layout.kps) == 1 and "person 2 of the 2 it lists" in caplog.text


def test_a_picture_whose_people_all_lack_a_face_is_an_error_under_skip_too():
    picture = pose([person(head(), missing_body=(14,)), person(head(at=(600.0, 200.0)), missing_body=(0,))], SIZE)

    for all_people in (False, True):
        with pytest.raises(InstantIDError, match="none of its 2 people has a face to place") as raised:
            pose_layouts([picture], 0, all_people, "skip")
        assert raised.value.code == "bad_pose"


def test_one_layout_per_picture_of_the_pose():
    pictures = [pose([person(head(yaw=y))], SIZE) for y in (-30, 0, 30)]

    layouts = pose_layouts(pictures, 0, False, "error")

    assert [layout.kps[0][2, 0] for layout in layouts] == [head(yaw=y)[2, 0] for y in (-30, 0, 30)]


@pytest.mark.parametrize("generation", [(1024, 1024), (512, 768), (1536, 640)])
def test_a_canvas_of_another_size_maps_onto_the_picture_as_comfyui_maps_a_controlnet_image_never_stretched(generation):
    kps = head(20, 0)
    (layout,) = pose_layouts([pose([person(kps)], SIZE)], 0, False, "error")

    (placed,) = layout.placed(generation)

    np.testing.assert_allclose(placed, place_as_source(layout.kps[0], SIZE, generation), atol=1e-9)
    ratio = np.linalg.norm(placed[1:] - placed[0], axis=1) / np.linalg.norm(
        layout.kps[0][1:] - layout.kps[0][0], axis=1
    )
    # one scale for every direction, to the crop's rounding to whole pixels (as ComfyUI crops): under a pixel
    np.testing.assert_allclose(ratio, ratio[0], rtol=1 / min(SIZE))


def good_person() -> dict:
    return person(head())


MALFORMED = [
    ([], "a list with one entry per picture"),
    ("people", "a list with one entry per picture"),
    ([{"people": [], "canvas_width": 512, "canvas_height": 512}], "Pose picture 1 has no people"),
    ([{"people": [good_person()]}], "canvas_width and canvas_height must be whole numbers"),
    ([{"people": [good_person()], "canvas_width": 0, "canvas_height": 512}], "whole numbers of pixels"),
    ([{"people": "x", "canvas_width": 512, "canvas_height": 512}], "'people' must be a list"),
    ([{"animals": [], "canvas_width": 512, "canvas_height": 512}], "is an animal pose"),
    (
        [pose([{"pose_keypoints_2d": [1.0] * 51}], SIZE)],
        r"person 1: pose_keypoints_2d must be 54 numbers \(18 points.*got 51",
    ),
    ([pose([{"pose_keypoints_2d": [1.0] * 75}], SIZE)], "got 75"),
    ([pose([{"pose_keypoints_2d": [1.0] * 54, "face_keypoints_2d": [1.0] * 60}], SIZE)], "204 numbers.*or 210 numbers"),
    (
        [pose([{"pose_keypoints_2d": [1.0] * 3 + [float("nan")] + [1.0] * 50}], SIZE)],
        "point 1 has NaN, not a finite number",
    ),
    ([pose([{"pose_keypoints_2d": [1.0] * 53 + [None]}], SIZE)], "point 17 has null"),
    ([pose([good_person(), 7], SIZE)], "person 2 must be an object"),
]


@pytest.mark.parametrize("value, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_a_malformed_pose_is_an_error_that_says_what_is_wrong(value, message):
    with pytest.raises(InstantIDError, match=message):
        pose_layouts(value, 0, False, "error")


def test_pose_json_text_one_entry_or_a_list_and_text_that_is_not_json():
    import json

    entry = pose([good_person()], SIZE)

    assert parse_pose_json(json.dumps(entry)) == [entry]
    assert parse_pose_json(json.dumps([entry, entry])) == [entry, entry]
    with pytest.raises(InstantIDError, match="not JSON"):
        parse_pose_json('{"people": [')


def test_the_body_pose_workflow_holds_the_pose_its_skeleton_picture_is_drawn_from():
    import json

    workflow = json.loads((REPO / "workflows" / "instantid_body_pose.json").read_text())
    (node,) = [n for n in workflow["nodes"] if n["type"] == "InstantIDPoseFromJSON"]

    assert parse_pose_json(node["widgets_values"][0]) == body_pose()
    (layout,) = pose_layouts(body_pose(), 0, False, "error")
    assert np.array_equal(layout.kps[0][:3], [[372, 160], [408, 158], [398, 178]])  # on the skeleton's head


def test_the_shipped_skeleton_picture_is_the_one_drawn_from_that_pose():
    from PIL import Image

    shipped = np.array(Image.open(REPO / "workflows" / "input" / PICTURE).convert("RGB"))

    assert np.array_equal(shipped, skeleton_picture())

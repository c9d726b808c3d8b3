"""Keypoints placed by hand and moved without a canvas: the editor's value, per-keypoint opacity, transforms and the
seeded jitter."""

import json
import math

import numpy as np
import pytest

from helpers.reference import reference_draw_kps
from instantid_core.errors import InstantIDError
from instantid_core.keypoint_editor import (
    EditorKeypoints,
    default_value,
    editor_value_problem,
    frame_points,
    parse_editor_value,
    presets,
)
from instantid_core.keypoints import (
    KEYPOINT_COLORS,
    LIMB_DIMMING,
    Jitter,
    KeypointLayout,
    KeypointTransform,
    PlacedKeypoints,
    draw_keypoints,
    layouts_of,
    transformed,
)

pytestmark = pytest.mark.unit

KPS = np.array([[40.0, 50.0], [120.0, 50.0], [80.0, 90.0], [50.0, 130.0], [110.0, 130.0]])
SIZE = (160, 180)
FRONTAL = [[0.42, 0.37], [0.58, 0.37], [0.5, 0.46], [0.43, 0.55], [0.57, 0.55]]


def value(points=FRONTAL, **extra) -> str:
    return json.dumps({"version": 1, "points": points, **extra})


def pixel(image: np.ndarray, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(c) for c in image[int(y), int(x)])


def layout() -> KeypointLayout:
    return KeypointLayout.in_frame(KPS / np.array(SIZE), SIZE)


# --- opacity ----------------------------------------------------------------------------------------------------------


def test_full_opacity_is_the_reference_rendering():
    assert np.array_equal(draw_keypoints([KPS], *SIZE, (1, 1, 1, 1, 1)), reference_draw_kps(*SIZE, KPS))


@pytest.mark.parametrize("point", range(5))
def test_a_dimmer_point_is_drawn_in_its_colour_times_the_opacity_and_the_others_are_unchanged(point):
    opacity = [1.0] * 5
    opacity[point] = 0.5

    image = draw_keypoints([KPS], *SIZE, opacity)

    for i, (x, y) in enumerate(KPS):
        expected = tuple(round(c * 0.5) for c in KEYPOINT_COLORS[i]) if i == point else KEYPOINT_COLORS[i]
        assert pixel(image, x, y) == expected


def test_a_dimmer_eye_dims_its_limb_too():
    image = draw_keypoints([KPS], *SIZE, (0.5, 1, 1, 1, 1))
    middle = (KPS[0] + KPS[2]) / 2

    assert pixel(image, *middle) == tuple(int(round(c * 0.5) * LIMB_DIMMING) for c in KEYPOINT_COLORS[0])


@pytest.mark.parametrize("bad", [(1, 1, 1, 1), (1, 1, 1, 1, 1.5), (1, 1, -0.1, 1, 1)])
def test_an_opacity_that_is_not_five_values_in_0_to_1_is_refused(bad):
    with pytest.raises(InstantIDError, match="five numbers from 0 to 1"):
        draw_keypoints([KPS], *SIZE, bad)


# --- transforms -------------------------------------------------------------------------------------------------------


def test_a_layout_in_its_own_frame_places_the_points_where_they_were():
    assert np.allclose(layout().placed(SIZE)[0], KPS)


def test_the_identity_transform_changes_nothing():
    assert np.allclose(layout().transformed(KeypointTransform()).placed(SIZE)[0], KPS)


def test_scale_and_turn_act_about_the_keypoints_centre_in_pixels():
    centre = KPS.mean(axis=0)

    scaled = layout().transformed(KeypointTransform(scale=2.0)).placed(SIZE)[0]
    turned = layout().transformed(KeypointTransform(rotate=90.0)).placed(SIZE)[0]

    assert np.allclose(scaled, centre + 2 * (KPS - centre))
    offsets = KPS - centre  # clockwise as seen (y points down): (x, y) -> (-y, x)
    assert np.allclose(turned, centre + np.stack([-offsets[:, 1], offsets[:, 0]], axis=1))


def test_a_move_is_a_fraction_of_the_frame_and_follows_the_generation_size():
    moved = layout().transformed(KeypointTransform(move_x=0.25, move_y=-0.1))

    assert np.allclose(moved.placed(SIZE)[0], KPS + [0.25 * SIZE[0], -0.1 * SIZE[1]])
    assert np.allclose(moved.placed((320, 360))[0], 2 * KPS + [0.25 * 320, -0.1 * 360])


def test_transforms_compose_in_order():
    twice = layout().transformed(KeypointTransform(rotate=30)).transformed(KeypointTransform(rotate=60))

    assert np.allclose(twice.placed(SIZE)[0], layout().transformed(KeypointTransform(rotate=90)).placed(SIZE)[0])


def test_the_face_box_turns_with_the_keypoints():
    roomy = KeypointLayout.in_frame((KPS + 160) / 480, (480, 480))  # the box stays inside the frame
    ys, xs = np.nonzero(roomy.box_mask((480, 480)))
    ys2, xs2 = np.nonzero(roomy.transformed(KeypointTransform(rotate=90)).box_mask((480, 480)))

    assert xs.max() - xs.min() < ys.max() - ys.min()  # taller than wide

    assert abs((xs.max() - xs.min()) - (ys2.max() - ys2.min())) <= 2  # the width became the height
    assert abs((ys.max() - ys.min()) - (xs2.max() - xs2.min())) <= 2


def test_a_transformed_layout_draws_the_reference_rendering_of_its_moved_keypoints():
    moved = layout().transformed(KeypointTransform(scale=0.8, rotate=-15, move_x=0.05))

    assert np.array_equal(moved.draw(SIZE), reference_draw_kps(*SIZE, moved.placed(SIZE)[0]))


@pytest.mark.parametrize("bad", [dict(scale=0), dict(scale=-1), dict(rotate=math.inf), dict(move_x=math.nan)], ids=str)
def test_a_transform_with_no_size_or_a_non_finite_value_is_refused(bad):
    with pytest.raises(InstantIDError, match="keypoint transform"):
        KeypointTransform(**bad)


# --- jitter and variants ----------------------------------------------------------------------------------------------


def test_variants_without_jitter_repeat_the_transformed_pose():
    out = transformed(PlacedKeypoints((layout(),), SIZE), KeypointTransform(rotate=10), 3, Jitter())

    assert len(out.layouts) == 3 and out.size == SIZE
    poses = [lay.placed(SIZE)[0] for lay in out.layouts]
    assert all(np.allclose(p, poses[0]) for p in poses) and not np.allclose(poses[0], KPS)


def test_jitter_stays_within_its_limits_and_differs_between_variants():
    jitter = Jitter(scale=0.1, rotate=5.0, move=0.02, seed=7)

    out = transformed(PlacedKeypoints((layout(),), SIZE), KeypointTransform(), 32, jitter)

    transforms = [lay.transforms[-1] for lay in out.layouts]
    assert all(0.9 <= t.scale <= 1.1 and abs(t.rotate) <= 5 for t in transforms)
    assert all(abs(t.move_x) <= 0.02 and abs(t.move_y) <= 0.02 for t in transforms)
    assert len({t.rotate for t in transforms}) == 32


def test_the_same_seed_gives_the_same_poses_and_another_seed_others():
    placed = PlacedKeypoints((layout(),), SIZE)

    def poses(seed):
        out = transformed(placed, KeypointTransform(), 4, Jitter(0.1, 10, 0.05, seed))
        return np.stack([lay.placed(SIZE)[0] for lay in out.layouts])

    assert np.array_equal(poses(1), poses(1))
    assert not np.allclose(poses(1), poses(2))


@pytest.mark.parametrize("bad", [dict(scale=1.0), dict(rotate=-1), dict(move=math.nan)], ids=str)
def test_jitter_limits_below_zero_or_a_scale_of_one_are_refused(bad):
    with pytest.raises(InstantIDError, match="Jitter limits"):
        Jitter(**bad)


def test_the_images_of_placed_keypoints_carry_their_layouts_for_identitynet():
    placed = transformed(PlacedKeypoints((layout(),), SIZE), KeypointTransform(move_x=0.1), 2, Jitter(rotate=5))

    images = placed.images()

    assert tuple(images.shape) == (2, SIZE[1], SIZE[0], 3)
    assert layouts_of(images) == placed.layouts
    assert placed.box_masks().shape == (2, SIZE[1], SIZE[0])


# --- the editor's value -----------------------------------------------------------------------------------------------


def test_the_default_value_is_the_frontal_preset_fully_opaque_and_parses():
    parsed = parse_editor_value(default_value())

    assert parsed.points == presets()["frontal"] and parsed.opacity == (1.0,) * 5


def test_a_value_round_trips_and_draws_its_points_at_their_place_in_the_frame():
    parsed = parse_editor_value(value(opacity=[1, 0.5, 1, 1, 1]))
    assert parse_editor_value(parsed.to_json()) == parsed

    image = parsed.layout((1000, 800)).draw((1000, 800))

    assert pixel(image, 420, 0.37 * 800) == KEYPOINT_COLORS[0]
    assert pixel(image, 580, 0.37 * 800) == tuple(round(c * 0.5) for c in KEYPOINT_COLORS[1])


def test_every_preset_is_a_plausible_face_inside_the_frame():
    for name, points in presets().items():
        arr = np.array(points)
        assert ((arr > 0.2) & (arr < 0.8)).all(), name
        assert arr[0, 0] < arr[1, 0] and arr[3, 0] < arr[4, 0], name  # left of right, as seen
        assert arr[:2, 1].max() < arr[2, 1] < arr[3:, 1].min(), name  # eyes above the nose above the mouth


def test_the_turned_presets_are_mirror_images_of_each_other():
    p = presets()
    for left, right in [("three-quarter left", "three-quarter right"), ("profile-safe left", "profile-safe right")]:
        mirrored = [[1 - x, y] for x, y in np.array(p[left])[[1, 0, 2, 4, 3]]]
        assert np.allclose(mirrored, p[right], atol=1e-4), left


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not JSON"),
        ("[1, 2]", 'JSON object with "points"'),
        (value().replace('"version": 1', '"version": 2'), "version 2; this pack reads version 1"),
        (value(points=FRONTAL[:4]), "list of five"),
        (value(points=[*FRONTAL[:4], [0.5]]), "point 4 must be two finite numbers"),
        (value(points=[*FRONTAL[:4], [0.5, "a"]]), "point 4 must be two finite numbers"),
        (value(points=[*FRONTAL[:4], [0.5, 2.0]]), "too far outside the frame"),
        (value(points=[[0.5, 0.5]] * 5), "all lie on one spot"),
        (value(opacity=[1, 1, 1]), "five numbers from 0 to 1"),
        (value(opacity=[1, 1, 1, 1, 2]), "five numbers from 0 to 1"),
        (value(color="red"), "unknown keys"),
    ],
)
def test_a_malformed_value_is_refused_with_what_is_wrong(text, message):
    assert message in editor_value_problem(text)
    with pytest.raises(InstantIDError) as raised:
        parse_editor_value(text)
    assert message in str(raised.value)


def test_a_face_loaded_into_the_editor_comes_back_at_its_place():
    points = tuple(map(tuple, (KPS / np.array(SIZE)).tolist()))
    frame_layout = EditorKeypoints(points).layout(SIZE)

    assert np.allclose(frame_points(frame_layout, SIZE), KPS / np.array(SIZE), atol=1e-5)
    assert np.allclose(frame_points(frame_layout, (320, 360)), KPS / np.array(SIZE), atol=1e-5)

"""The five-keypoint image IdentityNet is conditioned on, and the geometry that places keypoints in a frame."""

import math

import numpy as np
import pytest

from helpers.reference import reference_control_mask, reference_draw_kps
from instantid_core.errors import InstantIDError
from instantid_core.faces import DetectedFace, FaceAnalysisResult
from instantid_core.keypoints import (
    KEYPOINT_COLORS,
    SMALL_FACE_WARNING_PX,
    KeypointLayout,
    as_keypoints,
    draw_keypoints,
    face_box_mask,
    face_too_small,
    keypoint_extent,
    layouts_of,
    place_as_source,
    place_centered,
    with_layouts,
)

pytestmark = pytest.mark.unit

# left eye, right eye, nose, left and right mouth corner; every pair of circles (radius 10) at least 40 px apart
KPS = np.array([[40.0, 50.0], [120.0, 50.0], [80.0, 90.0], [50.0, 130.0], [110.0, 130.0]])
WIDTH, HEIGHT = 160, 180


# Random keypoint sets for the comparison with the reference, in a small frame with every point inside it.
SMALL = 128
RANDOM_SETS = 2000


def anywhere(rng: np.random.Generator, dtype) -> np.ndarray:
    """Five points uniformly inside the small frame."""
    return rng.uniform(0.0, SMALL, (5, 2)).astype(dtype)


def on_the_edge(rng: np.random.Generator, dtype) -> np.ndarray:
    """Five points within ~1e-5 px of whole or half pixels: the sums, differences and lengths the rendering truncates
    to whole pixels lie within rounding of a boundary, where float32 and float64 arithmetic often truncate apart."""
    grid = rng.integers(1, SMALL - 1, (5, 2)) + rng.choice([0.0, 0.5, 1.0], (5, 2))
    return (grid + rng.normal(0.0, 1e-5, (5, 2))).astype(dtype)


def first_mismatch(sets: list[np.ndarray]) -> np.ndarray | None:
    """The first keypoint set that the pack draws differently from the reference, or None."""
    for kps in sets:
        if not np.array_equal(draw_keypoints([kps], SMALL, SMALL), reference_draw_kps(SMALL, SMALL, kps)):
            return kps
    return None


def pixel(image: np.ndarray, x: float, y: float) -> tuple[int, ...]:
    return tuple(int(c) for c in image[int(y), int(x)])


def test_the_keypoint_image_is_height_by_width_rgb_uint8():
    image = draw_keypoints([KPS], WIDTH, HEIGHT)

    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8


def test_the_keypoint_image_equals_instantids_reference_rendering():
    kps = KPS + np.array([0.7, 0.3])  # fractional coordinates are truncated the same way

    assert np.array_equal(draw_keypoints([kps], WIDTH, HEIGHT), reference_draw_kps(WIDTH, HEIGHT, kps))


@pytest.mark.parametrize("generate", [anywhere, on_the_edge])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_keypoints_are_drawn_bit_exactly_as_the_reference_draws_them(generate, dtype):
    rng = np.random.default_rng(2024)
    sets = [generate(rng, dtype) for _ in range(RANDOM_SETS)]

    mismatch = first_mismatch(sets)
    assert mismatch is None, f"drawn differently from the reference: {mismatch.tolist()} ({mismatch.dtype})"


def test_insightface_float32_keypoints_reach_the_renderer_unchanged():
    rng = np.random.default_rng(7)
    for _ in range(200):
        kps = on_the_edge(rng, np.float32)
        face = DetectedFace(
            embedding=np.zeros(512), kps=kps, bbox=[0, 0, SMALL, SMALL], det_score=0.9, image_size=(SMALL, SMALL)
        )
        analysed = FaceAnalysisResult(faces=(face,), chosen=0, batch_index=0)

        image = KeypointLayout.of(analysed, "as in source").draw((SMALL, SMALL))

        assert np.array_equal(image, reference_draw_kps(SMALL, SMALL, kps)), kps.tolist()


def test_centering_moves_every_face_of_the_photo_with_the_chosen_one_and_keeps_float32():
    chosen, other = (KPS + 0.37).astype(np.float32), (KPS * 0.5 + 170.11).astype(np.float32)
    faces = tuple(
        DetectedFace(embedding=np.zeros(512), kps=kps, bbox=[0, 0, 1, 1], det_score=0.9, image_size=(400, 300))
        for kps in (chosen, other)
    )
    analysed = FaceAnalysisResult(faces=faces, chosen=0, batch_index=0)
    low, high = chosen.min(axis=0).astype(np.float64), chosen.max(axis=0).astype(np.float64)
    scale = 0.35 * 256 / (high - low).max()  # the chosen face's extent becomes 35 % of the shorter side
    centre = (high + low) / 2
    expected = [((kps - centre) * scale + np.array([160.0, 128.0])).astype(np.float32) for kps in (chosen, other)]

    image = KeypointLayout.of(analysed, "centered", 0.35, all_faces=True).draw((320, 256))

    assert np.array_equal(image, draw_keypoints(expected, 320, 256))


def test_the_background_is_black_away_from_the_face():
    image = draw_keypoints([KPS], WIDTH, HEIGHT)

    for x, y in [(0, 0), (WIDTH - 1, HEIGHT - 1), (150, 10), (5, 170), (80, 160)]:
        assert pixel(image, x, y) == (0, 0, 0)


@pytest.mark.parametrize("point", range(5))
def test_each_keypoint_is_a_filled_circle_of_its_full_colour(point):
    image = draw_keypoints([KPS], WIDTH, HEIGHT)
    x, y = KPS[point]

    assert pixel(image, x, y) == KEYPOINT_COLORS[point]
    assert pixel(image, x, y - 9) == KEYPOINT_COLORS[point]  # inside the radius-10 circle
    assert pixel(image, x, y + 9) == KEYPOINT_COLORS[point]


def test_a_circle_has_radius_10():
    image = draw_keypoints([KPS], WIDTH, HEIGHT)
    x, y = KPS[0]  # the left eye's limb runs down-right to the nose: straight up and left are clear

    assert pixel(image, x, y - 10) == KEYPOINT_COLORS[0] and pixel(image, x, y - 12) == (0, 0, 0)
    assert pixel(image, x - 10, y) == KEYPOINT_COLORS[0] and pixel(image, x - 12, y) == (0, 0, 0)


@pytest.mark.parametrize("first", [0, 1, 3, 4])
def test_each_limb_to_the_nose_has_its_first_points_colour_dimmed_to_60_percent(first):
    image = draw_keypoints([KPS], WIDTH, HEIGHT)
    middle = (KPS[first] + KPS[2]) / 2  # 28+ px from either circle

    expected = np.array(KEYPOINT_COLORS[first]) * 0.6
    assert np.abs(np.array(pixel(image, *middle)) - expected).max() <= 1


def test_a_limb_is_about_nine_pixels_wide():
    image = draw_keypoints([KPS], WIDTH, HEIGHT)
    middle = (KPS[0] + KPS[2]) / 2
    across = np.array([1.0, -1.0]) / math.sqrt(2)  # perpendicular to the eye-nose limb

    assert pixel(image, *(middle + 3 * across)) != (0, 0, 0)
    assert pixel(image, *(middle + 7 * across)) == (0, 0, 0)


def test_two_faces_are_both_drawn():
    second = KPS * 0.5 + np.array([300.0, 20.0])
    image = draw_keypoints([KPS, second], 400, HEIGHT)

    for kps in (KPS, second):
        assert [pixel(image, x, y) for x, y in kps] == list(KEYPOINT_COLORS)


def test_no_face_gives_an_all_black_image():
    assert not draw_keypoints([], 8, 6).any()


@pytest.mark.parametrize("width, height", [(0, 10), (10, 0), (-1, 5)])
def test_an_empty_image_size_is_refused(width, height):
    with pytest.raises(InstantIDError, match=rf"at least 1×1 pixels, got {width}×{height}"):
        draw_keypoints([KPS], width, height)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 2)), r"five \(x, y\) points, got an array of shape \(4, 2\)"),
        (np.zeros((5, 3)), r"shape \(5, 3\)"),
        (np.array([[0, 0], [1, 1], [2, np.nan], [3, 3], [4, 4]]), "non-finite coordinate"),
        (np.array([[0, 0], [1, 1], [2, np.inf], [3, 3], [4, 4]]), "non-finite coordinate"),
    ],
)
def test_keypoints_that_are_not_five_finite_points_are_refused(bad, message):
    with pytest.raises(InstantIDError, match=message):
        as_keypoints(bad)


def test_as_keypoints_accepts_nested_lists_and_returns_float64():
    arr = as_keypoints(KPS.astype(np.float32).tolist())

    assert arr.dtype == np.float64 and np.array_equal(arr, KPS)


@pytest.mark.parametrize("dtype, kept", [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64)])
def test_as_keypoints_keeps_float32_and_makes_anything_else_float64(dtype, kept):
    arr = as_keypoints(KPS.astype(dtype))

    assert arr.dtype == kept and np.array_equal(arr, KPS)


def test_the_extent_is_the_larger_side_of_the_keypoints_bounding_box():
    assert keypoint_extent(KPS * np.array([1.0, 1.5])) == 120.0  # x spans 40..120, y spans 75..195
    assert keypoint_extent(KPS * np.array([2.0, 1.0])) == 160.0  # x spans 80..240, y spans 50..130


@pytest.mark.parametrize(
    "extent, threshold, small",
    [
        (SMALL_FACE_WARNING_PX - 0.5, SMALL_FACE_WARNING_PX, True),
        (SMALL_FACE_WARNING_PX, SMALL_FACE_WARNING_PX, False),
        (100.0, 120.0, True),
        (130.0, 120.0, False),
    ],
)
def test_a_face_is_too_small_below_the_threshold_extent(extent, threshold, small):
    kps = KPS / keypoint_extent(KPS) * extent

    assert face_too_small(kps, threshold) is small


@pytest.mark.parametrize("size", [(512, 512), (100, 300)])
def test_placing_as_source_into_the_same_size_changes_nothing(size):
    assert np.allclose(place_as_source(KPS, size, size), KPS, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_placing_as_source_into_the_same_size_keeps_the_dtype_and_every_bit(dtype):
    kps = (KPS + np.array([0.1234567, 0.7654321])).astype(dtype)

    placed = place_as_source(kps, (512, 512), (512, 512))

    assert placed.dtype == dtype and np.array_equal(placed, kps)


@pytest.mark.parametrize(
    "place",
    [
        lambda kps: place_as_source(kps, (640, 480), (512, 512)),
        lambda kps: place_centered(kps, (1024, 640), 0.4),
    ],
    ids=["as source", "centered"],
)
def test_placing_float32_keypoints_gives_float32_within_float32_rounding_of_the_float64_placement(place):
    kps = (KPS * 1.7 + 3.3).astype(np.float32)

    placed = place(kps)

    assert placed.dtype == np.float32
    assert np.allclose(placed, place(kps.astype(np.float64)), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "src, dst, points, expected",
    [
        # 2:1 -> 1:1: 50 px cut from the left and right, then 100 -> 50 px (scale 0.5)
        (
            (200, 100),
            (50, 50),
            [[50, 0], [150, 100], [100, 50], [20, 50], [60, 10]],
            [[0, 0], [50, 50], [25, 25], [-15, 25], [5, 5]],
        ),
        # 1:2 -> 1:1: 50 px cut from the top and bottom, no scaling
        (
            (100, 200),
            (100, 100),
            [[0, 50], [100, 150], [50, 100], [10, 20], [30, 60]],
            [[0, 0], [100, 100], [50, 50], [10, -30], [30, 10]],
        ),
        # same aspect: a plain scale by 2
        (
            (100, 50),
            (200, 100),
            [[0, 0], [100, 50], [10, 20], [30, 40], [50, 25]],
            [[0, 0], [200, 100], [20, 40], [60, 80], [100, 50]],
        ),
    ],
    ids=["wide to square", "tall to square", "same aspect"],
)
def test_placing_as_source_follows_a_centre_cropped_resize(src, dst, points, expected):
    assert np.allclose(place_as_source(points, src, dst), expected, atol=1e-9)


@pytest.mark.parametrize("size, fraction", [((512, 512), 0.35), ((1024, 640), 0.5), ((300, 900), 1.0)])
def test_placing_centered_puts_the_bbox_centre_at_the_frame_centre_with_the_asked_extent(size, fraction):
    kps = KPS * np.array([1.0, 1.5]) + 7  # bounding box 80 wide, 120 high

    placed = place_centered(kps, size, fraction)

    centre = (placed.max(axis=0) + placed.min(axis=0)) / 2
    assert np.allclose(centre, [size[0] / 2, size[1] / 2])
    assert math.isclose(keypoint_extent(placed), fraction * min(size))
    spans = placed.max(axis=0) - placed.min(axis=0)
    assert math.isclose(spans[0] / spans[1], 80 / 120)  # scaled uniformly


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01])
def test_placing_centered_refuses_a_fraction_outside_0_to_1(fraction):
    with pytest.raises(InstantIDError, match=r"face_fraction must be in \(0, 1\]"):
        place_centered(KPS, (512, 512), fraction)


def test_placing_centered_refuses_keypoints_that_all_coincide():
    with pytest.raises(InstantIDError, match="all lie on one spot"):
        place_centered(np.full((5, 2), 33.0), (512, 512), 0.5)


@pytest.mark.parametrize(
    "place",
    [
        lambda size: place_as_source(KPS, size, (64, 64)),
        lambda size: place_as_source(KPS, (64, 64), size),
        lambda size: place_centered(KPS, size, 0.5),
    ],
    ids=["as source: source size", "as source: target size", "centered: target size"],
)
@pytest.mark.parametrize("size", [(0, 64), (64, 0)])
def test_placing_refuses_an_empty_frame(place, size):
    with pytest.raises(InstantIDError, match=rf"size must be at least 1×1 pixels, got {size[0]}×{size[1]}"):
        place(size)


def one_face(kps, bbox, image_size) -> FaceAnalysisResult:
    """An analysed photo with one face."""
    face = DetectedFace(embedding=np.zeros(512), kps=kps, bbox=bbox, det_score=0.9, image_size=image_size)
    return FaceAnalysisResult(faces=(face,), chosen=0, batch_index=0)


GENERATION_SIZES = [(1024, 1024), (832, 1216), (1216, 832), (640, 1536), (512, 512)]


@pytest.mark.parametrize("photo_size", [(256, 256), (640, 480), (1500, 2000), (4000, 3000)])
@pytest.mark.parametrize("size", GENERATION_SIZES)
def test_a_layout_drawn_at_any_size_is_the_reference_drawing_of_its_placed_keypoints(photo_size, size):
    rng = np.random.default_rng(sum(photo_size) + sum(size))
    width, height = photo_size
    kps = (rng.uniform(0.3, 0.7, (5, 2)) * [width, height]).astype(np.float32)
    layout = KeypointLayout.of(one_face(kps, [0, 0, 1, 1], photo_size), "as in source")

    expected = reference_draw_kps(*size, place_as_source(kps, photo_size, size))

    assert np.array_equal(layout.draw(size), expected)


def test_a_centered_layout_drawn_at_any_size_is_the_reference_drawing_of_its_placed_keypoints():
    layout = KeypointLayout.of(one_face(KPS.astype(np.float32), [0, 0, 1, 1], (400, 300)), "centered", 0.4)

    for size in GENERATION_SIZES:
        placed = place_centered(KPS.astype(np.float32), size, 0.4)
        assert np.array_equal(layout.draw(size), reference_draw_kps(*size, placed)), size


@pytest.mark.parametrize("size", GENERATION_SIZES)
def test_the_face_box_mask_is_the_reference_demos_face_region_of_the_placed_box(size):
    bbox = np.array([310.4, 95.7, 490.2, 480.9], np.float32)  # inside every crop (the reference wraps outside)
    layout = KeypointLayout.of(one_face(KPS.astype(np.float32) + 250, bbox, (800, 600)), "as in source")
    corners = place_as_source(np.vstack([bbox.reshape(2, 2), np.zeros((3, 2))]), (800, 600), size)[:2]

    assert np.array_equal(layout.box_mask(size), reference_control_mask(*size, corners.reshape(4)))


def test_a_face_box_reaching_past_the_frame_is_clipped_to_it():
    mask = face_box_mask([[-20.5, -3.2, 50.9, 40.1]], 64, 32)

    assert mask[:32, :50].all() and not mask[:, 50:].any() and mask.dtype == np.float32


def test_a_keypoint_image_carries_its_layouts_until_a_new_tensor_is_made_from_it():
    import torch

    layout = KeypointLayout.of(one_face(KPS, [0, 0, 1, 1], (WIDTH, HEIGHT)), "as in source")
    image = with_layouts(torch.zeros(1, HEIGHT, WIDTH, 3), [layout])

    assert layouts_of(image) == (layout,)
    assert layouts_of(image[:1]) is None and layouts_of(image * 1.0) is None
    with pytest.raises(InstantIDError, match="1 keypoint layouts for a batch of 2"):
        with_layouts(torch.zeros(2, HEIGHT, WIDTH, 3), [layout])

"""Face crop and paste-back: level crops at a generation size, and a paste that gives the photo back exactly where
the generation changed nothing."""

import math

import numpy as np
import pytest

from instantid_core.errors import InstantIDError
from instantid_core.face_crop import crop_face, crop_keypoints, crop_size_for, eye_angle, paste_face
from instantid_core.faces import DetectedFace

pytestmark = pytest.mark.unit

PHOTO = (640, 480)
UPRIGHT = np.array([[-20, -15], [20, -15], [0, 5], [-15, 25], [15, 25]], dtype=np.float64)
"""An upright face's keypoints round its centre: 40 px between the eyes."""


def textured_photo(seed: int = 0, size=PHOTO) -> np.ndarray:
    """A photo with detail at every scale (smooth gradients plus pixel noise), H×W×3 float32 in 0..1."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    smooth = np.stack([xs / width, ys / height, 0.5 + 0.3 * np.sin(xs / 17.0) * np.cos(ys / 23.0)], axis=-1)
    return np.clip(0.8 * smooth + 0.2 * rng.random((height, width, 3)), 0, 1).astype(np.float32)


def face_at(centre, angle: float = 0.0, size=PHOTO, half_box: float = 40.0) -> DetectedFace:
    """A face centred at `centre`, turned by `angle` degrees (counter-clockwise as seen), with an axis-aligned box
    round the turned face, as a detector reports it."""
    theta = math.radians(angle)
    turn = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    kps = UPRIGHT @ turn.T + centre
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half_box @ turn.T + centre
    bbox = np.concatenate([square.min(axis=0), square.max(axis=0)])
    return DetectedFace(embedding=np.ones(512), kps=kps, bbox=bbox, det_score=0.9, image_size=size)


def same_angle(a: float, b: float) -> bool:
    """Whether two angles in degrees are the same direction (to 1e-4°)."""
    return abs((a - b + 180) % 360 - 180) < 1e-4


def footprint_mask(photo, stitch) -> np.ndarray:
    """Where a paste may change the photo: the pixels a completely different crop changes."""
    other = 1.0 - stitch.taken
    changed = paste_face(photo, other, stitch, "replace") != photo
    return changed.any(axis=-1)


ANGLES = [0, 15, 45, 90, 180]


@pytest.mark.parametrize("angle", ANGLES)
def test_an_unchanged_crop_pastes_back_to_the_photo_exactly(angle):
    photo = textured_photo()
    crop, stitch = crop_face(photo, face_at((320, 240), angle), padding=0.5, long_side=256)

    pasted = paste_face(photo, crop, stitch)

    assert np.array_equal(pasted, photo)


@pytest.mark.parametrize("angle", ANGLES)
def test_an_aligned_crop_has_level_eyes_in_their_order_and_a_plain_crop_keeps_the_angle(angle):
    face = face_at((320, 240), angle)
    assert same_angle(eye_angle(face.kps), -angle)

    _, aligned = crop_face(textured_photo(), face, long_side=256)
    kps = aligned.to_crop(face.kps)
    assert abs(kps[1, 1] - kps[0, 1]) < 1e-6 and kps[1, 0] > kps[0, 0]  # left eye on the left, level
    assert kps[2, 1] > kps[0, 1]  # the nose below the eyes
    _, plain = crop_face(textured_photo(), face, align=False, long_side=256)
    assert plain.angle == 0 and same_angle(eye_angle(plain.to_crop(face.kps)), -angle)


@pytest.mark.parametrize("angle", ANGLES)
def test_the_crop_centres_the_face_at_the_padding_asked(angle):
    face = face_at((300, 200), angle)
    _, stitch = crop_face(textured_photo(), face, padding=0.5, long_side=256)

    np.testing.assert_allclose(stitch.to_crop([[300, 200]])[0], [128, 128], atol=1e-9)
    side = 80 * (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle))))  # the box round the face
    assert stitch.scale == pytest.approx(256 / (side * 2), rel=1e-6)


BORDERS = {"left": (15, 240), "right": (625, 240), "top": (320, 10), "bottom": (320, 470), "corner": (5, 475)}


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("angle", [0, 15])
def test_a_face_at_the_border_crops_with_the_edge_repeated_and_pastes_back_exactly(border, angle):
    photo = textured_photo(seed=1)
    photo[:, 0] = photo[:, -1] = photo[0] = photo[-1] = (0.2, 0.6, 0.9)  # a frame of one colour
    crop, stitch = crop_face(photo, face_at(BORDERS[border], angle), padding=0.5, long_side=256)

    beyond = np.ones(crop.shape[:2], dtype=bool)
    ys, xs = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]] + 0.5
    back = np.linalg.inv(np.vstack([stitch.matrix, [0, 0, 1]]))[:2]
    photo_x = back[0, 0] * xs + back[0, 1] * ys + back[0, 2]
    photo_y = back[1, 0] * xs + back[1, 1] * ys + back[1, 2]
    beyond = (photo_x < -2) | (photo_y < -2) | (photo_x > PHOTO[0] + 2) | (photo_y > PHOTO[1] + 2)
    assert beyond.any()
    np.testing.assert_allclose(crop[beyond], np.broadcast_to([0.2, 0.6, 0.9], crop[beyond].shape), atol=1e-5)
    assert np.array_equal(paste_face(photo, crop, stitch), photo)


@pytest.mark.parametrize("angle", [0, 45])
def test_a_swapped_face_changes_only_the_feathered_region(angle):
    photo = textured_photo()
    crop, stitch = crop_face(photo, face_at((320, 240), angle), long_side=256, grow=0.1, feather=16)
    generated = textured_photo(seed=9, size=(256, 256))

    for mode in ("changes", "replace"):
        pasted = paste_face(photo, generated, stitch, mode)
        changed = (pasted != photo).any(axis=-1)
        assert changed[240, 320]  # the face itself
        ys, xs = np.nonzero(changed)
        reach = np.hypot(xs + 0.5 - 320, ys + 0.5 - 240).max()  # box 80 px, ellipse grown by 0.1, 16 crop px feather
        limit = (40 * (1.2) * (abs(math.cos(math.radians(angle))) + abs(math.sin(math.radians(angle))))) * 1.0
        assert reach <= limit + 16 / stitch.scale + 2, mode


def test_colour_match_removes_a_colour_drift_of_the_whole_crop():
    photo = textured_photo()
    crop, stitch = crop_face(photo, face_at((320, 240)), long_side=256)
    drifted = crop + np.float32([0.05, -0.03, 0.02])

    assert not np.array_equal(paste_face(photo, drifted, stitch), photo)
    np.testing.assert_allclose(paste_face(photo, drifted, stitch, colour_match=True), photo, atol=1e-4)


def test_auto_adds_the_changes_to_a_crop_at_the_photos_resolution_and_replaces_from_a_coarser_one():
    photo = textured_photo()
    face = face_at((320, 240), half_box=100)
    fine_crop, fine = crop_face(photo, face, padding=0.2, long_side=512)
    coarse_crop, coarse = crop_face(photo, face, padding=0.2, long_side=128)
    assert fine.scale > 1 > coarse.scale

    assert np.array_equal(paste_face(photo, fine_crop, fine, "auto"), paste_face(photo, fine_crop, fine, "changes"))
    assert np.array_equal(
        paste_face(photo, coarse_crop, coarse, "auto"), paste_face(photo, coarse_crop, coarse, "replace")
    )
    assert np.array_equal(paste_face(photo, coarse_crop, coarse, "changes"), photo)
    inside = footprint_mask(photo, coarse)
    assert np.abs(paste_face(photo, coarse_crop, coarse, "replace") - photo)[inside].max() > 0.05  # coarser: blurred


def test_several_crops_of_one_photo_paste_in_turn():
    photo = textured_photo()
    left_crop, left = crop_face(photo, face_at((160, 240)), long_side=256)
    right_crop, right = crop_face(photo, face_at((480, 240), 15), long_side=256)

    once = paste_face(photo, 1 - left_crop, left)
    twice = paste_face(once, 1 - right_crop, right)

    assert (twice[240, 160] != photo[240, 160]).all() and (twice[240, 480] != photo[240, 480]).all()
    np.testing.assert_array_equal(
        twice[:, :320][~footprint_mask(photo, right)[:, :320]], once[:, :320][~footprint_mask(photo, right)[:, :320]]
    )


@pytest.mark.parametrize(
    "shape, region, expected",
    [
        ("square", (300, 200), (1024, 1024)),
        ("face box", (300, 200), (1024, 704)),
        ("face box", (200, 300), (704, 1024)),
        ("face box", (1000, 10), (1024, 64)),
    ],
)
def test_the_crop_size_is_the_long_side_and_the_aspect_rounded_to_multiples_of_64(shape, region, expected):
    assert crop_size_for(region, 1024, shape) == expected


def test_the_crops_keypoint_layout_places_the_face_in_crop_pixels():
    face = face_at((300, 200), 30)
    _, stitch = crop_face(textured_photo(), face, long_side=512)
    layout = crop_keypoints(stitch)

    (placed,) = layout.placed(stitch.crop_size)
    np.testing.assert_allclose(placed, stitch.to_crop(face.kps), atol=1e-4)
    (twice,) = layout.placed((1024, 1024))  # drawn at another generation size: scaled with the crop
    np.testing.assert_allclose(twice, stitch.to_crop(face.kps) * 2, atol=1e-3)


def test_bad_inputs_are_refused_with_what_to_do():
    photo = textured_photo()
    face = face_at((320, 240))
    crop, stitch = crop_face(photo, face, long_side=256)

    with pytest.raises(InstantIDError, match="found in a 640×480 picture but the photo to crop is 320×240"):
        crop_face(photo[:240, :320], face)
    with pytest.raises(InstantIDError, match="multiple of 64"):
        crop_face(photo, face, long_side=1000)
    with pytest.raises(InstantIDError, match="padding must be 0 or more"):
        crop_face(photo, face, padding=-1)
    with pytest.raises(InstantIDError, match="Unknown crop shape"):
        crop_face(photo, face, shape="round")
    with pytest.raises(InstantIDError, match="photo to paste into is 320×240 but the crop was taken from a 640×480"):
        paste_face(photo[:240, :320], crop, stitch)
    with pytest.raises(InstantIDError, match="generated crop is 128×128 but the crop was 256×256"):
        paste_face(photo, crop[:128, :128], stitch)
    with pytest.raises(InstantIDError, match="Unknown paste mode"):
        paste_face(photo, crop, stitch, "add")


@pytest.mark.parametrize(
    "angle, long_side, atol",
    # half a crop pixel off would be 6e-4 (scale 1.3, the first two) and 3e-3 (scale 0.24, area-averaged first)
    [(0, 256, 2e-4), (15, 256, 2e-4), (90, 512, 2e-4), (30, 64, 5e-4)],
)
def test_each_crop_pixel_shows_the_photo_at_the_point_the_transform_maps_it_to(angle, long_side, atol):
    ys, xs = np.mgrid[0 : PHOTO[1], 0 : PHOTO[0]]
    ramp = np.stack([xs / PHOTO[0], ys / PHOTO[1], np.full(xs.shape, 0.5)], axis=-1).astype(np.float32)
    crop, stitch = crop_face(ramp, face_at((320, 240), angle, half_box=60), padding=0.3, long_side=long_side)

    v, u = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]] + 0.5
    back = np.linalg.inv(np.vstack([stitch.matrix, [0, 0, 1]]))[:2]
    x = back[0, 0] * u + back[0, 1] * v + back[0, 2]
    y = back[1, 0] * u + back[1, 1] * v + back[1, 2]
    # pixel i of the ramp holds i / width at its centre i + 0.5: the ramp is linear, so interpolation is exact
    np.testing.assert_allclose(crop[..., 0], (x - 0.5) / PHOTO[0], atol=atol)
    np.testing.assert_allclose(crop[..., 1], (y - 0.5) / PHOTO[1], atol=atol)

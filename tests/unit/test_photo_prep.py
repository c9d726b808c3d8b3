"""The photo preparation of InstantID's reference pipeline (long side 1280, sides multiples of 64), and face analysis
with and without it."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from helpers.reference import reference_resize_img
from instantid_core.face_analysis import FaceModels
from instantid_core.photo_prep import MULTIPLE, prepare_like_reference, reference_sizes
from scripts.standins.face_pack import write_face_pack
from scripts.standins.images import standin_photo

pytestmark = pytest.mark.unit

SIZES = [(256, 256), (233, 287), (640, 480), (1280, 886), (777, 555), (3024, 4032), (4000, 3000), (1024, 64)]


@pytest.fixture(scope="module")
def faces_pack(tmp_path_factory):
    """The stand-in antelopev2 pack, loaded with the reference resize (the default)."""
    folder = tmp_path_factory.mktemp("face_pack") / "antelopev2"
    write_face_pack(folder)
    return FaceModels.load(folder, "CPU", 640)


@pytest.mark.parametrize("size", SIZES)
def test_the_preparation_equals_the_reference_resize_pixel_for_pixel(size):
    photo = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)

    expected = np.asarray(reference_resize_img(Image.fromarray(photo)))

    assert np.array_equal(prepare_like_reference(photo), expected)


@pytest.mark.parametrize("size", SIZES)
def test_the_prepared_size_has_a_long_side_near_1280_and_sides_in_multiples_of_64(size):
    scaled, final = reference_sizes(*size)

    assert max(scaled) == 1280 and all(side % MULTIPLE == 0 and 0 < side <= 1280 for side in final)
    assert all(0 <= s - f < MULTIPLE for s, f in zip(scaled, final, strict=True))


def test_a_sliver_of_a_photo_keeps_at_least_64_pixels_where_the_reference_would_make_an_empty_picture():
    assert reference_sizes(4000, 100) == ((1280, 32), (1280, 64))


@pytest.mark.parametrize("width, height", [(256, 320), (777, 555), (3000, 2000)])
def test_faces_are_found_in_the_prepared_photo_and_reported_in_the_photos_own_pixels(faces_pack, width, height):
    photo = standin_photo(width, height, [(width * 0.45, height * 0.4, min(width, height) * 0.4, 2)])
    prepared = prepare_like_reference(photo)
    as_it_arrives = dataclasses.replace(faces_pack, reference_resize=False)
    scale = np.array([width / prepared.shape[1], height / prepared.shape[0]])

    (with_prep,) = faces_pack.analyze([photo]).results
    (in_prepared,) = as_it_arrives.analyze([prepared]).results  # what the reference analyses

    assert with_prep.face.image_size == (width, height)
    assert np.array_equal(with_prep.face.embedding, in_prepared.face.embedding)
    assert with_prep.face.kps.dtype == np.float32
    assert np.allclose(with_prep.face.kps, in_prepared.face.kps * scale, rtol=1e-6, atol=1e-3)
    assert np.allclose(with_prep.face.bbox, in_prepared.face.bbox * np.tile(scale, 2), rtol=1e-6, atol=1e-3)


def test_without_the_preparation_the_photo_is_analysed_as_it_arrives(faces_pack):
    photo = standin_photo(777, 555, [(390, 260, 200, 2)])
    as_it_arrives = dataclasses.replace(faces_pack, reference_resize=False)

    (result,) = as_it_arrives.analyze([photo]).results
    direct = as_it_arrives.find_faces(photo)

    assert np.array_equal(result.face.embedding, direct[0].embedding) and result.face.image_size == (777, 555)

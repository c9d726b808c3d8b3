"""Face crop and paste on the real six-person photo (real InsightFace models): a swap touches one face only, the crop's
keypoint image puts each dot where the face's keypoint lands in the crop, and the real detector finds the cropped
face upright where the crop says it is."""

import numpy as np
import pytest
from PIL import Image

from instantid_core.face_analysis import FaceModels
from instantid_core.face_crop import crop_face, crop_keypoints, eye_angle, paste_face
from instantid_core.keypoints import KEYPOINT_COLORS
from scripts.harness.real_faces import real_faces

pytestmark = pytest.mark.realface


@pytest.fixture(scope="module")
def group():
    """The real face models, the six-person photo (H×W×3 float32) and its six faces, left to right."""
    real = real_faces(fetch=False)
    models = FaceModels.load(real.pack_dir, "CPU", 640)
    picture = np.array(Image.open(real.photos["t1.jpg"]).convert("RGB"))
    (result,) = models.analyze(picture[None]).results
    assert len(result.faces) == 6
    return models, picture.astype(np.float32) / 255, result.faces


@pytest.mark.parametrize("person", range(6))
def test_swapping_one_face_leaves_the_other_five_faces_unchanged(group, person):
    _, photo, faces = group
    crop, stitch = crop_face(photo, faces[person])
    generated = np.ascontiguousarray(crop[::-1, ::-1])  # another picture altogether

    swapped = paste_face(photo, generated, stitch)

    x1, y1, x2, y2 = faces[person].bbox.astype(int)
    assert (swapped[y1:y2, x1:x2] != photo[y1:y2, x1:x2]).mean() > 0.9
    for other, face in enumerate(faces):
        if other != person:
            x1, y1, x2, y2 = np.round(face.bbox).astype(int)
            assert np.array_equal(swapped[y1:y2, x1:x2], photo[y1:y2, x1:x2]), other
    assert np.array_equal(paste_face(photo, crop, stitch), photo)  # and the crop as taken gives the photo back


@pytest.mark.parametrize("person", range(6))
def test_the_crops_keypoint_image_has_each_dot_where_the_keypoint_lands_in_the_crop(group, person):
    _, photo, faces = group
    _, stitch = crop_face(photo, faces[person])
    layout = crop_keypoints(stitch)

    picture = layout.draw(stitch.crop_size)
    expected = stitch.to_crop(faces[person].kps)
    for colour, point in zip(KEYPOINT_COLORS, expected, strict=True):
        ys, xs = np.nonzero((picture == colour).all(axis=-1))
        centre = np.array([xs.mean(), ys.mean()]) + 0.5  # pixel centres
        assert np.abs(centre - point).max() <= 1.0, (colour, centre, point)


def test_the_detector_finds_each_cropped_face_upright_where_the_crop_says(group):
    models, photo, faces = group
    assert max(abs(eye_angle(face.kps)) for face in faces) > 30  # heads tilted up to 34° in the photo
    for person, face in enumerate(faces):
        crop, stitch = crop_face(photo, face)
        (found,) = models.analyze((crop[None] * 255).round().astype(np.uint8), "largest").chosen_faces
        expected = stitch.to_crop(face.kps)
        eyes = np.linalg.norm(expected[1] - expected[0])
        # SCRFD-500M's keypoints move by up to 15 % of the eye distance between two views of a face
        assert abs(eye_angle(found.kps)) < 10, person
        assert np.abs(found.kps - expected).max() < 0.2 * eyes, person

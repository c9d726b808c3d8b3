"""Face keypoints from body poses built round real detected faces (the real-face tier's detector on its photos): the
eyes and nose come through exactly, the face points' mouth exactly, and the mean head's estimated mouth is as far from
the detector's as head_model says. They are not antelopev2 faces; nothing here is about identity."""

import numpy as np
import pytest
from PIL import Image

from helpers.poses import person, pose
from instantid_core.body_pose import pose_layouts
from instantid_core.face_analysis import FaceModels
from instantid_core.keypoints import KeypointLayout
from scripts.harness.real_faces import real_faces

pytestmark = pytest.mark.realface

PHOTOS = ("t1.jpg", "solvay_conference_1927.jpg", "players.jpg", "gdp.jpg", "yaoming.jpg")


@pytest.fixture(scope="module")
def analysed():
    """(photo name, its analysis) for every photo with faces."""
    real = real_faces(fetch=False)
    models = FaceModels.load(real.pack_dir, "CPU", 640)
    results = []
    for name in PHOTOS:
        picture = np.array(Image.open(real.photos[name]).convert("RGB"))
        (result,) = models.analyze(picture[None]).results
        results.append((name, result))
    return results


def faces_as_pose(result, face=None) -> dict:
    """A pose picture of the photo's size with every detected face on a body."""
    return pose([person(np.asarray(f.kps, dtype=np.float64), face=face) for f in result.faces], result.face.image_size)


def same_face(found: np.ndarray, result) -> np.ndarray:
    """The detected keypoints of the face whose nose is at the found face's nose (reading order goes by face boxes,
    which a pose estimates round its keypoints, so it may number a crowd otherwise than the detector's boxes do)."""
    return next(np.asarray(f.kps, dtype=np.float64) for f in result.faces if np.array_equal(f.kps[2], found[2]))


def test_eyes_and_nose_come_from_the_body_exactly_and_the_face_points_give_all_five_exactly(analysed):
    for name, result in analysed:
        (from_body,) = pose_layouts([faces_as_pose(result)], 0, True, "error")
        (from_face,) = pose_layouts([faces_as_pose(result, face="70")], 0, True, "error")

        assert len(from_body.kps) == len(from_face.kps) == len(result.faces), name
        for found in from_body.kps:
            assert np.array_equal(found[:3], same_face(found, result)[:3]), name
        for found in from_face.kps:
            assert np.array_equal(found, same_face(found, result)), name


def test_the_estimated_mouth_is_as_far_from_the_detectors_as_the_head_model_documents(analysed):
    errors = []
    for _, result in analysed:
        (layout,) = pose_layouts([faces_as_pose(result)], 0, True, "error")
        for found in layout.kps:
            detected = next(
                np.asarray(f.kps, dtype=np.float64) for f in result.faces if np.array_equal(f.kps[2], found[2])
            )
            eye_distance = np.linalg.norm(detected[1] - detected[0])
            errors.append(np.linalg.norm(found[3:] - detected[3:], axis=1).max() / eye_distance)

    assert len(errors) >= 40
    assert np.median(errors) < 0.13 and np.percentile(errors, 90) < 0.19 and max(errors) < 0.3, sorted(errors)


def test_a_group_photos_pose_is_drawn_as_the_keypoints_node_draws_its_faces(analysed):
    name, result = analysed[0]
    size = (1024, 704)

    (layout,) = pose_layouts([faces_as_pose(result, face="70")], 0, True, "error")
    from_faces = KeypointLayout.of(result, "as in source", all_faces=True)

    assert np.array_equal(layout.draw(size), from_faces.draw(size)), name

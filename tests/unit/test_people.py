"""Several people in one picture: where each person goes and the regions their identities keep to."""

import numpy as np
import pytest

from instantid_core.errors import InstantIDError
from instantid_core.faces import DetectedFace, FaceAnalysisResult, InstantIDFaces
from instantid_core.keypoints import keypoint_extent
from instantid_core.people import PEOPLE_LAYOUTS, PeopleRegions, person_layouts

pytestmark = pytest.mark.unit

FACE_KPS = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], dtype=np.float32)
"""A frontal face's keypoints, 40 px wide and tall, in a 100×100 box at the photo's origin."""


def face(dx: float = 0.0, dy: float = 0.0, seed: int = 0, photo=(640, 480)) -> DetectedFace:
    """FACE_KPS moved by (dx, dy), with its box and a random embedding."""
    return DetectedFace(
        embedding=np.random.default_rng(seed).normal(size=512),
        kps=FACE_KPS + [dx, dy],
        bbox=[dx, dy, dx + 100, dy + 100],
        det_score=0.9,
        image_size=photo,
    )


def person(*faces: DetectedFace, chosen: int = 0) -> InstantIDFaces:
    """The INSTANTID_FACE of one photo with these faces (in reading order) and that choice."""
    return InstantIDFaces((FaceAnalysisResult(faces, chosen, 0),))


def no_face() -> InstantIDFaces:
    """The INSTANTID_FACE of one photo without a face, skipped."""
    return InstantIDFaces((FaceAnalysisResult((), None, 0),))


@pytest.mark.parametrize("count", [2, 3, 4])
def test_left_to_right_centres_person_k_in_column_k_at_the_face_fraction(count):
    people = [person(face(dx=37 * k, dy=11 * k, seed=k)) for k in range(count)]
    regions = PeopleRegions(person_layouts(people, "left to right", 0.35))

    for size in [(1024, 1024), (1216, 832)]:
        column = size[0] / count
        for k, kps in enumerate(regions.keypoints(size)):
            centre = (kps.max(axis=0) + kps.min(axis=0)) / 2
            np.testing.assert_allclose(centre, [column * (k + 0.5), size[1] / 2], atol=1e-3)
            assert keypoint_extent(kps) == pytest.approx(0.35 * min(column, size[1]), rel=1e-5)
        regions.check(size)  # neighbours apart at the default margin


def test_as_in_their_photos_keeps_each_face_where_it_is_in_its_photo():
    people = [person(face(dx=100, dy=50)), person(face(dx=400, dy=200, seed=1))]
    regions = PeopleRegions(person_layouts(people, "as in their photos"))

    placed = regions.keypoints((640, 480))
    np.testing.assert_allclose(placed[0], FACE_KPS + [100, 50])
    np.testing.assert_allclose(placed[1], FACE_KPS + [400, 200])


def test_pose_photo_puts_person_k_on_face_k_of_the_pose_photo_with_that_faces_keypoints():
    group = person(face(dx=20), face(dx=220, seed=1), face(dx=420, seed=2))
    people = [person(face(dx=300, seed=5)), person(face(dx=10, seed=6))]
    regions = PeopleRegions(person_layouts(people, "pose photo", pose=group))

    placed = regions.keypoints((640, 480))
    np.testing.assert_allclose(placed[0], FACE_KPS + [20, 0])
    np.testing.assert_allclose(placed[1], FACE_KPS + [220, 0])


def test_pose_photo_needs_a_pose_with_enough_faces():
    people = [person(face()), person(face(seed=1)), person(face(seed=2))]

    with pytest.raises(InstantIDError, match="none is connected"):
        person_layouts(people, "pose photo")
    with pytest.raises(InstantIDError, match=r"shows 2 face\(s\) for 3 people"):
        person_layouts(people, "pose photo", pose=person(face(), face(dx=300)))
    with pytest.raises(InstantIDError, match=r"shows 0 face\(s\) for 3 people"):
        person_layouts(people, "pose photo", pose=no_face())


@pytest.mark.parametrize("layout", [layout for layout in PEOPLE_LAYOUTS if layout != "pose photo"])
def test_a_person_without_a_face_is_named(layout):
    with pytest.raises(InstantIDError, match="Person 2: no face in any of their 1 photo"):
        person_layouts([person(face()), no_face()], layout)


def test_an_unknown_layout_is_refused():
    with pytest.raises(InstantIDError, match="Unknown people layout 'grid'"):
        person_layouts([person(face()), person(face())], "grid")


def two_apart(margin=0.5, feather=0.25) -> PeopleRegions:
    """Two people side by side in a 640×480 photo, 300 px apart."""
    return PeopleRegions(
        person_layouts([person(face(dx=100, dy=150)), person(face(dx=400, dy=150))], "as in their photos"),
        margin,
        feather,
    )


def test_a_core_is_the_keypoints_box_grown_by_the_margin_in_face_sizes():
    cores = two_apart(margin=0.5).cores((640, 480))

    # keypoints span x 130..170, y 190..230: extent 40, grown by 20 on every side
    np.testing.assert_allclose(cores[0], [110, 170, 190, 250])
    np.testing.assert_allclose(cores[1], [410, 170, 490, 250])


def test_a_region_is_one_in_its_core_ramps_over_the_feather_and_is_zero_beyond():
    masks = two_apart(margin=0.5, feather=0.25).masks((640, 480))

    assert masks.shape == (2, 480, 640) and masks.dtype == np.float32
    assert np.all(masks[0, 170:250, 110:190] == 1)
    # the ramp is 10 px wide (0.25 × 40) to the right of x = 190: pixel centres 190.5 .. 199.5
    np.testing.assert_allclose(masks[0, 200, 190:200], 1 - (np.arange(190, 200) + 0.5 - 190) / 10, atol=1e-6)
    assert masks[0, 200, 200:].max() == 0 and masks[0, :160].max() == 0
    assert masks[1, :, :400].max() == 0


def test_no_person_reaches_into_another_persons_core_even_where_feathers_overlap():
    regions = PeopleRegions(
        person_layouts([person(face(dx=100)), person(face(dx=190, seed=1))], "as in their photos"), 0.2, 2.0
    )
    size = (640, 480)
    regions.check(size)  # cores apart (x 122..178 and 212..268) though the feathers (80 px) overlap
    masks = regions.masks(size)
    cores = masks == 1

    assert cores[0].any() and cores[1].any()
    assert masks[0][cores[1]].max() == 0 and masks[1][cores[0]].max() == 0
    between = masks[:, 40, 180:212]
    assert np.all(between > 0)  # both identities fade in the gap between the cores


def test_overlapping_cores_are_refused_naming_the_people_and_the_fix():
    regions = PeopleRegions(
        person_layouts([person(face(dx=100)), person(face(dx=150, seed=1))], "as in their photos"), 0.6
    )

    with pytest.raises(InstantIDError, match="person 1 and person 2 overlap at margin 0.6.*Lower the margin"):
        regions.check((640, 480))
    PeopleRegions(regions.layouts, margin=0.0).check((640, 480))


def test_a_person_cropped_away_by_the_pictures_aspect_ratio_is_refused():
    people = [person(face(dx=10, photo=(1600, 480))), person(face(dx=750, seed=1, photo=(1600, 480)))]
    regions = PeopleRegions(person_layouts(people, "as in their photos"))

    with pytest.raises(InstantIDError, match="Person 1 lies outside the 512×512 picture"):
        regions.check((512, 512))


@pytest.mark.parametrize("margin, feather", [(-0.1, 0.3), (0.6, -1.0), (float("nan"), 0.3)])
def test_a_negative_margin_or_feather_is_refused(margin, feather):
    layouts = person_layouts([person(face()), person(face(dx=300))], "as in their photos")

    with pytest.raises(InstantIDError, match="must be 0 or more"):
        PeopleRegions(layouts, margin, feather)


def test_one_person_is_not_several():
    layouts = person_layouts([person(face()), person(face(dx=300))], "as in their photos")

    with pytest.raises(InstantIDError, match="at least two faces"):
        PeopleRegions(layouts[:1])


def test_the_keypoint_image_shows_every_person_and_each_region_is_drawn_at_the_size_asked():
    regions = two_apart()

    picture = regions.draw((640, 480))
    assert picture.shape == (480, 640, 3)
    for kps in regions.keypoints((640, 480)):
        x, y = kps[0].astype(int)
        assert tuple(picture[y, x]) == (255, 0, 0)  # each left eye in IdentityNet's red
    assert regions.region(1)((320, 240)).shape == (1, 240, 320)
    np.testing.assert_array_equal(regions.region(1)((640, 480))[0], regions.masks((640, 480))[1])

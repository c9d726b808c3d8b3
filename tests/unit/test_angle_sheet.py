"""The angle sheet's views: presets placed alike in any frame, mirrors exact."""

import numpy as np
import pytest

from instantid_core.angle_sheet import angle_sheet, default_views, letterboxed, mirrored, parse_views, view_names
from instantid_core.errors import InstantIDError
from instantid_core.head_model import PRESET_CENTRE
from instantid_core.keypoint_editor import presets

pytestmark = pytest.mark.unit

MIRROR_PAIRS = [("three-quarter left", "three-quarter right"), ("profile-safe left", "profile-safe right")]
SYMMETRIC = ["frontal", "slightly up", "slightly down"]


def test_every_view_is_its_preset_placed_in_the_frame():
    sheet = angle_sheet(view_names(), (1024, 1024))

    assert len(sheet.layouts) == len(presets()) and sheet.size == (1024, 1024)
    for layout, name in zip(sheet.layouts, view_names(), strict=True):
        (kps,) = layout.placed((1024, 1024))
        np.testing.assert_allclose(kps, np.array(presets()[name]) * 1024, rtol=0, atol=1e-9)


@pytest.mark.parametrize("left, right", MIRROR_PAIRS)
def test_the_mirror_of_a_view_is_exactly_its_mirrored_preset(left, right):
    assert mirrored(presets()[left]) == presets()[right]
    assert mirrored(presets()[right]) == presets()[left]

    mirrored_sheet = angle_sheet((left, right), (768, 512), mirror=True)
    sheet = angle_sheet((right, left), (768, 512))
    for a, b in zip(mirrored_sheet.layouts, sheet.layouts, strict=True):
        assert np.array_equal(a.kps[0], b.kps[0])


@pytest.mark.parametrize("name", SYMMETRIC)
def test_a_symmetric_view_is_its_own_mirror(name):
    assert mirrored(presets()[name]) == presets()[name]


@pytest.mark.parametrize("size", [(1024, 640), (640, 1024), (1216, 832)])
def test_a_frame_of_another_aspect_letterboxes_the_views_so_each_keeps_its_angles(size):
    side, centre = min(size), np.array(size) / 2
    for layout, name in zip(angle_sheet(view_names(), size).layouts, view_names(), strict=True):
        (kps,) = layout.placed(size)
        np.testing.assert_allclose((kps - centre) / side + 0.5, presets()[name], rtol=0, atol=1e-12)


def test_every_view_is_placed_alike_its_box_centred_in_the_same_spot():
    for size in ((1024, 1024), (1280, 768)):
        centres = [
            (k.max(axis=0) + k.min(axis=0)) / 2 for (k,) in (la.kps for la in angle_sheet(view_names(), size).layouts)
        ]
        expected = letterboxed([PRESET_CENTRE], size)[0]
        np.testing.assert_allclose(centres, [expected] * len(centres), rtol=0, atol=1e-6 * max(size))


def test_scale_grows_the_faces_about_the_frames_centre():
    (small,), (large,) = (angle_sheet(("frontal",), (512, 512), scale=s).layouts[0].kps for s in (1.0, 2.0))

    np.testing.assert_allclose(large - 256, (small - 256) * 2, atol=1e-9)


def test_views_are_read_one_per_line_or_separated_by_commas_and_unknown_names_are_named():
    assert parse_views(default_views()) == view_names()
    assert parse_views(" frontal,three-quarter left\n\nfrontal ") == ("frontal", "three-quarter left", "frontal")
    with pytest.raises(InstantIDError, match=r"'side left'.*the views are frontal"):
        parse_views("frontal\nside left")
    with pytest.raises(InstantIDError, match="lists no views"):
        parse_views(" \n, ")

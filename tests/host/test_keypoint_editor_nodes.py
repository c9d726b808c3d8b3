"""InstantID Keypoints Editor and Transform Keypoints as ComfyUI runs them: the editor's points drawn as InstantID
Keypoints draws a face, a malformed value refused before the prompt runs, the connected face handed to the canvas,
and transforms of either node's keypoints."""

import json

import numpy as np
import pytest

from helpers.host_runs import face_photo
from helpers.reference import reference_draw_kps

pytestmark = pytest.mark.host

POINTS = [[0.3, 0.4], [0.45, 0.38], [0.4, 0.5], [0.33, 0.6], [0.44, 0.59]]


def editor_value(points=POINTS, opacity=(1, 1, 1, 1, 1)) -> str:
    return json.dumps({"version": 1, "points": points, "opacity": list(opacity)})


def uint8(image) -> np.ndarray:
    return (image[0].numpy() * 255).round().astype(np.uint8)


def test_the_editor_draws_its_points_as_the_reference_rendering_in_its_frame(comfy_host):
    editor = comfy_host.node("InstantIDKeypointsEditor")

    image, mask, kps = editor.execute(640, 480, editor_value()).result

    expected = reference_draw_kps(640, 480, np.array(POINTS) * [640, 480])
    assert np.array_equal(uint8(image), expected)
    assert tuple(mask.shape) == (1, 480, 640) and mask.sum() > 0
    assert kps.size == (640, 480) and len(kps.layouts) == 1


def test_the_editor_image_is_drawn_again_at_the_generation_size_with_dots_of_the_trained_size(comfy_host):
    layouts_of = comfy_host.pack_module("instantid_core.keypoints").layouts_of
    image = comfy_host.node("InstantIDKeypointsEditor").execute(512, 512, editor_value()).result[0]

    (layout,) = layouts_of(image)

    assert np.array_equal(layout.draw((1024, 1024)), reference_draw_kps(1024, 1024, np.array(POINTS) * 1024))


def test_points_loaded_from_a_face_draw_what_instantid_keypoints_draws_for_it(comfy_host, face_pack, standins):
    faces = face_pack.analyze(face_photo(standins).numpy())
    editor = comfy_host.node("InstantIDKeypointsEditor")

    output = editor.execute(512, 512, editor_value(), faces)
    (loaded,) = output.ui["instantid_face_kps"]
    from_editor = uint8(editor.execute(512, 512, editor_value(loaded)).result[0])
    from_keypoints = uint8(
        comfy_host.node("InstantIDKeypoints").execute(faces, 512, 512, "as in source", 0.35, 0, False).result[0]
    )

    # the value keeps 5 decimals (0.005 px here): a dot may move by one pixel where a coordinate sits on a boundary
    assert (from_editor != from_keypoints).any(axis=-1).mean() < 0.002


def test_a_dimmed_keypoint_reaches_the_image(comfy_host):
    image = comfy_host.node("InstantIDKeypointsEditor").execute(512, 512, editor_value(opacity=(1, 0.4, 1, 1, 1)))
    x, y = (np.array(POINTS[1]) * 512).astype(int)

    assert tuple(uint8(image.result[0])[y, x]) == (0, round(255 * 0.4), 0)


@pytest.mark.parametrize(
    "value, message",
    [
        ("{", "not JSON"),
        (editor_value(points=POINTS[:3]), "list of five"),
        (editor_value(opacity=(1, 1, 1, 1, 3)), "five numbers from 0 to 1"),
    ],
)
def test_a_malformed_value_is_refused_before_the_prompt_runs_and_when_it_runs(comfy_host, value, message):
    editor = comfy_host.node("InstantIDKeypointsEditor")
    errors = comfy_host.pack_module("instantid_core.errors")

    problem = editor.validate_inputs(keypoints=value)

    assert problem.startswith("InstantID Keypoints Editor: ") and message in problem
    assert problem.endswith(" [instantid.bad_keypoints_value]")
    assert editor.validate_inputs(keypoints=editor_value()) is True
    with pytest.raises(errors.KINDS["bad_keypoints_value"], match="InstantID Keypoints Editor"):
        editor.execute(512, 512, value)


def test_transforms_apply_to_the_keypoints_of_the_keypoints_node_and_of_the_editor(comfy_host, face_pack, standins):
    faces = face_pack.analyze(face_photo(standins).numpy())
    transform = comfy_host.node("InstantIDTransformKeypoints")
    from_face = comfy_host.node("InstantIDKeypoints").execute(faces, 512, 512, "as in source", 0.35, 0, False).result
    from_editor = comfy_host.node("InstantIDKeypointsEditor").execute(512, 512, editor_value()).result

    for image, _, kps in (from_face, from_editor):
        unchanged = transform.execute(kps, 1.0, 0.0, 0.0, 0.0, 1, 0.0, 0.0, 0.0, 0).result[0]
        moved, masks, moved_kps = transform.execute(kps, 1.0, 0.0, 0.25, 0.0, 1, 0.0, 0.0, 0.0, 0).result
        assert np.array_equal(uint8(unchanged), uint8(image))
        (before,), (after,) = (kps.layouts[0].placed((512, 512)), moved_kps.layouts[0].placed((512, 512)))
        assert np.allclose(after[kps.layouts[0].chosen], before[kps.layouts[0].chosen] + [128, 0])
        assert not np.array_equal(uint8(moved), uint8(image)) and masks.shape == (1, 512, 512)


def test_variants_with_jitter_give_a_batch_of_different_poses_the_same_for_the_same_seed(comfy_host):
    kps = comfy_host.node("InstantIDKeypointsEditor").execute(512, 512, editor_value()).result[2]
    transform = comfy_host.node("InstantIDTransformKeypoints")

    images = transform.execute(kps, 1.0, 0.0, 0.0, 0.0, 4, 0.1, 10.0, 0.05, 3).result[0]
    again = transform.execute(kps, 1.0, 0.0, 0.0, 0.0, 4, 0.1, 10.0, 0.05, 3).result[0]

    assert tuple(images.shape) == (4, 512, 512, 3) and (images == again).all()
    assert len({images[i].numpy().tobytes() for i in range(4)}) == 4

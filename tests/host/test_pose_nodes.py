"""Keypoints from a body pose and the angle sheet, as ComfyUI runs them: drawn as the Keypoints node draws a face,
and an angle sheet's batch gives picture i view i."""

import json

import numpy as np
import pytest
import torch

from helpers.host_runs import hint_received, make_faces
from helpers.poses import person, pose
from helpers.tiny_models import tiny_controlnet
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

VIEWS = ("three-quarter left", "frontal", "profile-safe right")


def test_a_pose_of_a_face_is_drawn_bit_for_bit_as_the_keypoints_node_draws_that_face(comfy_host, pack):
    faces = make_faces(pack, seeds=(1,))
    (face,) = faces.chosen_faces
    body_pose = [pose([person(np.asarray(face.kps), face="70")], face.image_size)]

    from_face = comfy_host.node("InstantIDKeypoints").execute(faces, 320, 256, "as in source", 0.35, 0, False).result
    from_pose = comfy_host.node("InstantIDKeypointsFromPose").execute(body_pose, 320, 256, 0, False, "error").result

    assert torch.equal(from_pose[0], from_face[0])
    assert from_pose[0].shape == (1, 256, 320, 3) and from_pose[0].max() > 0
    (placed,) = from_pose[2].layouts[0].placed((320, 256))
    x, y = placed.astype(int).T
    assert from_pose[1][0, y, x].min() == 1  # the face box (estimated round the keypoints: a pose has no detector box)


def test_pose_from_json_checks_the_text_before_the_prompt_runs_and_gives_the_pose(comfy_host):
    node = comfy_host.node("InstantIDPoseFromJSON")
    entry = pose([person(np.array([[40, 50], [80, 50], [60, 70], [45, 95], [75, 95]]))], (128, 128))

    assert node.validate_inputs(pose_json=json.dumps(entry)) is True
    problem = node.validate_inputs(pose_json=json.dumps(pose([{"pose_keypoints_2d": [1.0] * 6}], (128, 128))))
    assert "pose_keypoints_2d must be 54 numbers" in problem and problem.endswith(" [instantid.bad_pose]")
    (value,) = node.execute(json.dumps(entry)).result
    assert value == [entry]


def test_the_angle_sheet_gives_one_view_per_picture_and_its_count(comfy_host):
    node = comfy_host.node("InstantIDAngleSheet")

    images, masks, kps, count = node.execute(320, 256, "\n".join(VIEWS), False, 1.0).result

    assert count == 3 and images.shape == (3, 256, 320, 3) and masks.shape == (3, 256, 320)
    assert len({images[i].numpy().tobytes() for i in range(3)}) == 3
    problem = node.validate_inputs(views="frontal\nside")
    assert "Unknown view(s) 'side'" in problem and problem.endswith(" [instantid.bad_views]")


def test_an_angle_sheet_generated_as_one_batch_gives_picture_i_view_i(comfy_host, pack, adapter, model):
    (_, _, placed, count) = (
        comfy_host.node("InstantIDAngleSheet").execute(256, 256, "\n".join(VIEWS), False, 1.0).result
    )
    tokens = adapter.tokens(make_faces(pack, (1,)).embeddings(), "average")  # one identity for every picture
    positive, negative = pack.controlnet.apply_identitynet(
        sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), tokens, placed.images(), 0.9, 0.0, 1.0,
        layouts=placed.layouts,
    )  # fmt: skip

    hint = hint_received(model, positive, negative, (256, 256), pictures=count)

    drawn = [torch.from_numpy(layout.draw((256, 256))).movedim(-1, 0).float() / 255 for layout in placed.layouts]
    assert hint.shape[0] == 2 * count
    for row, picture in zip(hint, (0, 1, 2, 0, 1, 2), strict=True):  # the cond half, then the uncond half
        assert torch.equal(row, drawn[picture])

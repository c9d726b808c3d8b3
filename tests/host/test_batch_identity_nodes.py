"""The nodes around one identity per picture: Join Faces, Keypoints with each_photo, Apply InstantID Advanced with
combine_embeds 'per picture' (its identities and poses), as ComfyUI runs them."""

import numpy as np
import pytest
import torch

from helpers.host_runs import as_image, hint_received, make_faces
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host


def pose_photos(standins) -> torch.Tensor:
    """Two stand-in photos of the same size, each with one face: the pose photo and its mirror image."""
    from PIL import Image

    picture = np.array(Image.open(standins / "input" / "instantid_pose.png").convert("RGB"))
    return torch.cat([as_image(picture), as_image(picture[:, ::-1])])


def test_join_faces_gives_every_photo_of_its_inputs_in_order(comfy_host, pack):
    first, second = make_faces(pack, seeds=(1, 2)), make_faces(pack, seeds=(3,))

    (joined,) = comfy_host.node("InstantIDJoinFaces").execute(face_1=first, face_3=second).result

    assert [r.batch_index for r in joined.results] == [0, 1, 2]
    assert joined.chosen_faces == first.chosen_faces + second.chosen_faces


def test_keypoints_of_each_photo_give_one_set_per_picture(comfy_host, pack):
    faces = make_faces(pack, seeds=(1, 2, 3))
    node = comfy_host.node("InstantIDKeypoints")

    images, masks, kps = node.execute(faces, 256, 256, "centered", 0.35, 1, False, each_photo=True).result
    _, _, one = node.execute(faces, 256, 256, "centered", 0.35, 1, False).result

    assert len(kps.layouts) == 3 and images.shape[0] == 3 and masks.shape[0] == 3
    assert len(one.layouts) == 1


@pytest.mark.parametrize("with_pose_photos", [False, True])
def test_apply_advanced_per_picture_gives_each_picture_its_photos_identity_and_pose(
    comfy_host, pack, adapter, face_pack, standins, with_pose_photos
):
    photos = pose_photos(standins)
    settings = (0.8, 0.8, 0.0, 1.0, "linear", "per picture", 0.0, "largest", 0, "error")
    graph = (adapter, face_pack, tiny_controlnet(seed=4), tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))
    pose = {"image_kps": photos.flip(0)} if with_pose_photos else {}

    model, positive, _ = (
        comfy_host.node("InstantIDApplyAdvanced").execute(*graph, *settings, image=photos, **pose).result
    )

    control = positive[0][1]["control"]
    faces = face_pack.analyze((photos.numpy() * 255).round().astype(np.uint8))
    expected = adapter.tokens(faces.embeddings(), "per picture")
    assert torch.equal(control.identity_tokens, expected.stacked())  # identity i is photo i's face
    (patch, *_) = model.model_options["transformer_options"]["patches_replace"]["attn2"].values()
    assert patch.shared.kv.identities == 2
    poses = [layout.kps[0] for layout in control.keypoints]
    chosen = [face.kps for face in faces.chosen_faces]
    assert np.allclose(poses[0], chosen[1 if with_pose_photos else 0])  # picture 0: its pose photo's pose
    assert np.allclose(poses[1], chosen[0 if with_pose_photos else 1])
    assert not np.allclose(poses[0], poses[1])
    regions = control.region.faces((1024, 768))  # face_region (on by default): each picture its own face's box
    assert regions.shape[0] == 2 and not np.array_equal(regions[0], regions[1])


def test_per_picture_with_a_photo_without_a_face_names_the_photo(comfy_host, adapter, face_pack, standins):
    photos = pose_photos(standins)
    (face,) = face_pack.analyze((photos[1:].numpy() * 255).round().astype(np.uint8)).chosen_faces
    x1, y1, x2, y2 = (int(v) for v in face.bbox)
    photos[1, max(y1 - 10, 0) : y2 + 10, max(x1 - 10, 0) : x2 + 10] = 0.5  # the second photo's face painted over
    settings = (0.8, 0.8, 0.0, 1.0, "linear", "per picture", 0.0, "largest", 0, "pass through")
    graph = (adapter, face_pack, tiny_controlnet(seed=4), tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))

    with pytest.raises(Exception, match=r"photo\(s\) 2 of 2 have no face"):
        comfy_host.node("InstantIDApplyAdvanced").execute(*graph, *settings, image=photos)


def test_apply_advanced_takes_joined_faces_in_place_of_photos(comfy_host, pack, adapter, face_pack):
    faces = (
        comfy_host.node("InstantIDJoinFaces").execute(make_faces(pack, (1,)), face_2=make_faces(pack, (2,))).result[0]
    )
    settings = (0.8, 0.8, 0.0, 1.0, "linear", "per picture", 0.0, "largest", 0, "error")
    graph = (adapter, face_pack, tiny_controlnet(seed=4), tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))
    node = comfy_host.node("InstantIDApplyAdvanced")

    _, positive, _ = node.execute(*graph, *settings, face=faces).result

    control = positive[0][1]["control"]
    assert torch.equal(control.identity_tokens, adapter.tokens(faces.embeddings(), "per picture").stacked())
    assert [layout.kps[0].tolist() for layout in control.keypoints] == [f.kps.tolist() for f in faces.chosen_faces]
    for both_or_neither in ({"face": faces, "image": torch.rand(1, 64, 64, 3)}, {}):
        with pytest.raises(pack.errors.InstantIDError, match="one of the two"):
            node.execute(*graph, *settings, **both_or_neither)


def test_identitynet_draws_each_pictures_keypoints_at_the_generation_size(comfy_host, pack, adapter, model):
    keypoints = comfy_host.pack_module("instantid_core.keypoints")
    frames = ([[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.42, 0.6], [0.58, 0.6]], [[0.2, 0.3], [0.35, 0.3], [0.3, 0.4]])
    frames = (frames[0], [*frames[1], [0.22, 0.5], [0.34, 0.5]])  # two faces: centred, and small at the top left
    layouts = [keypoints.KeypointLayout.in_frame(points, (128, 128)) for points in frames]
    placed = keypoints.PlacedKeypoints(tuple(layouts), (128, 128))
    tokens = adapter.tokens(make_faces(pack, (1, 2)).embeddings(), "per picture")
    positive, negative = pack.controlnet.apply_identitynet(
        sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), tokens, placed.images(), 0.9, 0.0, 1.0,
        layouts=placed.layouts,
    )  # fmt: skip

    hint = hint_received(model, positive, negative, (256, 256), pictures=2)

    drawn = [torch.from_numpy(layout.draw((256, 256))).movedim(-1, 0).float() / 255 for layout in layouts]
    assert hint.shape[0] == 4 and not torch.equal(drawn[0], drawn[1])
    for row, picture in zip(hint, (0, 1, 0, 1), strict=True):  # the cond half, then the uncond half
        assert torch.equal(row, drawn[picture])


def test_a_windows_pictures_of_a_given_hint_do_not_outlive_the_window(pack, adapter):
    hint = torch.rand(2, 64, 64, 3)
    tokens = adapter.tokens(make_faces(pack, (1, 2)).embeddings(), "per picture")
    positive, _ = pack.controlnet.apply_identitynet(
        sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), tokens, hint, 0.9, 0.0, 1.0
    )
    net = positive[0][1]["control"]

    net.use_hint(64, 64, (1,))  # a context window holding picture 1
    assert torch.equal(net.cond_hint_original, hint.movedim(-1, 1)[1:2])
    net.use_hint(64, 64, None)  # a later sampling of the whole batch
    assert torch.equal(net.cond_hint_original, hint.movedim(-1, 1))

"""InstantID Face Crop and Face Paste as ComfyUI runs them, on the stand-in two-people photo and face pack."""

import numpy as np
import pytest
import torch

from helpers.host_runs import (
    as_image,
    assert_every_row_is,
    check_residuals_in_region,
    denoise,
    hint_received,
    record_identitynet_residuals,
)
from helpers.reference import reference_box_mask, reference_hint
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning
from scripts.standins.images import input_image

pytestmark = pytest.mark.host

CROP = ("largest", 0, 0, 0.5, True, 512, "square", 0.1, 32.0)
"""Face Crop's settings after its inputs: the largest face of photo 0, padding 0.5, aligned, 512 px square, mask
grown by 0.1 with a 32-px feather."""
GENERATION_SIZE = (256, 256)
"""The size IdentityNet runs at on the crop: not the crop's, so its hint must be drawn anew (a 32×32 latent)."""


@pytest.fixture(scope="module")
def photo():
    """The stand-in photo of two people, as an IMAGE."""
    return as_image(input_image("instantid_two_people.png"))


@pytest.fixture(scope="module")
def faces(face_pack, photo):
    """Its faces, as InstantID Face Analysis gives them."""
    return face_pack.analyze(photo.numpy())


def crop(comfy_host, photo, faces, *settings):
    """Face Crop's (crop, keypoints, mask, stitch)."""
    return comfy_host.node("InstantIDFaceCrop").execute(photo, faces, *(settings or CROP)).result


def paste(comfy_host, generated, stitch, photo, mode="auto", colour_match=False):
    """Face Paste's image."""
    return comfy_host.node("InstantIDFacePaste").execute(generated, stitch, photo, mode, colour_match).result[0]


def test_face_crop_gives_a_crop_its_keypoints_and_mask_at_the_generation_size(comfy_host, photo, faces):
    picture, keypoints, mask, stitch = crop(comfy_host, photo, faces)

    assert picture.shape == (1, 512, 512, 3) and keypoints.shape == (1, 512, 512, 3) and mask.shape == (1, 512, 512)
    assert mask[0, 256, 256] == 1 and mask[0, 0, 0] == 0
    (layout,) = comfy_host.pack_module("instantid_core.keypoints").layouts_of(keypoints)
    np.testing.assert_allclose(layout.placed((512, 512))[0], stitch.to_crop(stitch.face.kps), atol=1e-3)


def test_the_unchanged_crop_pastes_back_to_the_photo_and_a_batch_pastes_each(comfy_host, photo, faces):
    picture, _, _, stitch = crop(comfy_host, photo, faces)

    assert torch.equal(paste(comfy_host, picture, stitch, photo), photo)
    both = paste(comfy_host, torch.cat([picture, 1 - picture]), stitch, photo)
    assert both.shape == (2, *photo.shape[1:]) and torch.equal(both[0], photo[0]) and not torch.equal(both[1], photo[0])


def test_several_faces_of_one_photo_are_cropped_and_pasted_in_turn(comfy_host, photo, faces):
    left = crop(comfy_host, photo, faces, "index", 0, *CROP[2:])
    right = crop(comfy_host, photo, faces, "index", 1, *CROP[2:])

    once = paste(comfy_host, 1 - left[0], left[3], photo)
    twice = paste(comfy_host, 1 - right[0], right[3], once)

    for stitch in (left[3], right[3]):
        x1, y1, x2, y2 = np.round(stitch.face.bbox).astype(int)
        assert (twice[0, y1:y2, x1:x2] != photo[0, y1:y2, x1:x2]).any()
    assert torch.equal(twice[0, :, :5], photo[0, :, :5])  # far from both faces, the photo's own pixels


def test_the_crops_keypoints_are_identitynets_hint_at_the_generation_size_and_its_face_box_limits_the_residuals(
    comfy_host, pack, adapter, photo, faces, monkeypatch
):
    _, keypoints, _, stitch = crop(comfy_host, photo, faces)
    conditioning = (sdxl_conditioning(1), sdxl_conditioning(2))
    settings = (0.8, 0.0, 1.0, "average", 0.0)
    positive, negative = (
        comfy_host.node("InstantIDApplyIdentityNet")
        .execute(*conditioning, tiny_controlnet(seed=4), adapter, faces, *settings, image=keypoints, face_region=True)
        .result
    )
    x1, y1, x2, y2 = stitch.face.bbox
    corners = stitch.to_crop([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    box = np.concatenate([corners.min(axis=0), corners.max(axis=0)])  # the turned face box, in the crop
    kps = stitch.to_crop(stitch.face.kps)

    for size in GENERATION_SIZE, (256, 384):
        hint = hint_received(tiny_sdxl(), positive, negative, size)
        assert_every_row_is(hint, reference_hint(kps, stitch.crop_size, size))
    residuals = record_identitynet_residuals(monkeypatch, pack)
    denoise(tiny_sdxl(), positive, negative, latent=(1, 4, GENERATION_SIZE[1] // 8, GENERATION_SIZE[0] // 8))

    ((limited, unlimited),) = residuals
    check_residuals_in_region(limited, unlimited, reference_box_mask(box, stitch.crop_size, GENERATION_SIZE))


def test_bad_inputs_name_what_to_connect(comfy_host, pack, photo, faces):
    picture, _, _, stitch = crop(comfy_host, photo, faces)
    error = pack.errors.InstantIDError

    with pytest.raises(error, match="not the stitch of 'InstantID Face Crop'"):
        paste(comfy_host, picture, {"matrix": None}, photo)
    with pytest.raises(error, match="3 generated crop\\(s\\) for a batch of 2 photos"):
        paste(comfy_host, picture.repeat(3, 1, 1, 1), stitch, photo.repeat(2, 1, 1, 1))
    with pytest.raises(error, match="photo to paste into is 512×512"):
        paste(comfy_host, picture, stitch, picture)
    with pytest.raises(error, match="Reference image 3 was requested"):
        crop(comfy_host, photo, faces, "largest", 0, 3, *CROP[3:])
    with pytest.raises(error, match="Face index 5 was requested but 2 face"):
        crop(comfy_host, photo, faces, "index", 5, *CROP[2:])

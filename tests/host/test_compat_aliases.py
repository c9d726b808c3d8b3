"""The ComfyUI_InstantID aliases that no workflow runs (Face Keypoints Preprocessor, Apply InstantID Advanced, and the
split pair InstantID Patch Attention → Apply ControlNet) run on tiny models and the stand-in face pack."""

import pytest
import torch

from helpers.host_runs import denoise, face_photo
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

KEYPOINT_RED = (1.0, 0.0, 0.0)  # the right eye's dot in the reference drawing (RGB)


def test_face_keypoints_preprocessor_draws_the_photos_keypoints_at_its_size(comfy_host, face_pack, standins):
    photo = face_photo(standins)

    (kps,) = comfy_host.node("FaceKeypointsPreprocessor").execute(face_pack, photo).result

    assert kps.shape == photo.shape
    colours = {tuple(round(float(c), 2) for c in px) for px in kps.reshape(-1, 3)[kps.reshape(-1, 3).sum(-1) > 0]}
    assert KEYPOINT_RED in colours and len(colours) > 5  # dots and limbs on a black background


def test_apply_instantid_advanced_patches_every_layer_and_attaches_identitynet_with_its_strength(
    comfy_host, pack, face_pack, adapter, standins
):
    model, positive, negative = tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2)

    def apply(ip_weight: float):
        node = comfy_host.node("ApplyInstantIDAdvanced")
        graph = (adapter, face_pack, tiny_controlnet(seed=4), face_photo(standins), model, positive, negative)
        return node.execute(*graph, ip_weight, 1.5, 0.0, 1.0, 0.2, "average").result

    patched, positive_out, negative_out = apply(0.6)

    patches = patched.model_options["transformer_options"]["patches_replace"]["attn2"]
    assert len(patches) == 70 and all(
        isinstance(p, pack.attn2_protocol.IdentityAttentionPatch) for p in patches.values()
    )
    at_one = apply(1.0)[0].model_options["transformer_options"]["patches_replace"]["attn2"]
    for key, patch in patches.items():  # the identity weight is in each layer's V: 0.6 of the same apply at 1.0
        index = patch.shared.adapter_index[key]
        torch.testing.assert_close(
            patch.shared.kv.layer(index)[1], 0.6 * at_one[key].shared.kv.layer(index)[1], rtol=1e-5, atol=1e-7
        )
    for conditioning in (positive_out, negative_out):
        control = conditioning[0][1]["control"]
        assert type(control).__name__ == "IdentityNetControl" and control.strength == 1.5
    assert "patches_replace" not in model.model_options.get("transformer_options", {})  # the input is untouched


def test_the_split_pair_patches_the_model_and_hands_its_face_tokens_to_identitynet(
    comfy_host, face_pack, adapter, base_model_output, standins
):
    photo = face_photo(standins)
    patched, face_embeds = (
        comfy_host.node("InstantIDAttentionPatch")
        .execute(adapter, face_pack, photo, tiny_sdxl(), 1.0, 0.0, 1.0, 0.0)
        .result
    )
    (kps,) = comfy_host.node("FaceKeypointsPreprocessor").execute(face_pack, photo).result

    positive, negative = (
        comfy_host.node("ApplyInstantIDControlNet")
        .execute(face_embeds, tiny_controlnet(seed=4), kps, sdxl_conditioning(1), sdxl_conditioning(2), 1.0, 0.0, 1.0)
        .result
    )

    control = positive[0][1]["control"]
    assert torch.equal(control.identity_tokens, face_embeds.stacked())
    out = denoise(patched, positive, negative)
    assert torch.isfinite(out).all() and not torch.allclose(out, base_model_output, atol=1e-4)


@pytest.fixture(scope="module")
def base_model_output():
    """One step of the tiny model without InstantID."""
    return denoise(tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))

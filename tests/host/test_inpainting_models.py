"""SDXL inpainting checkpoints (9 input channels: the latent, the mask and the masked picture's latent) take the
identity attention and IdentityNet as the plain SDXL does, on a tiny 9-channel SDXL-topology model that ComfyUI makes
an inpainting model of (its `set_inpaint`), with the conditioning ComfyUI's InpaintModelConditioning gives."""

import pytest
import torch

from helpers.host_runs import denoise, make_faces, record_identity_calls, record_identitynet_residuals
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host


def inpainting(conditioning, seed: int):
    """The conditioning with InpaintModelConditioning's values: the masked picture's latent and the mask."""
    import node_helpers

    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 32:96, 40:88] = 1.0
    values = {"concat_latent_image": torch.randn(1, 4, 16, 16, generator=generator), "concat_mask": mask}
    return node_helpers.conditioning_set_values(conditioning, values)


def test_a_9_channel_inpainting_model_takes_the_identity_attention_at_every_layer_and_identitynet(
    comfy_host, pack, adapter, monkeypatch
):
    keypoints = comfy_host.pack_module("instantid_core.keypoints")
    model = tiny_sdxl(seed=0, in_channels=9)
    assert model.model.concat_keys == ("mask", "masked_image")  # ComfyUI made it an inpainting model
    tokens = adapter.tokens(make_faces(pack, (1,)).embeddings(), "average")
    placed = keypoints.PlacedKeypoints((keypoints.KeypointLayout.in_frame(
        [[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.42, 0.6], [0.58, 0.6]], (128, 128)),), (128, 128))  # fmt: skip
    patched = pack.unet_patching.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0)
    positive, negative = pack.controlnet.apply_identitynet(
        sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), tokens, placed.images(), 0.9, 0.0, 1.0,
        layouts=placed.layouts,
    )  # fmt: skip
    channels = []
    unet = model.model.diffusion_model
    monkeypatch.setattr(
        unet, "forward", lambda x, *a, _f=unet.forward, **k: channels.append(x.shape[1]) or _f(x, *a, **k)
    )
    calls = record_identity_calls(monkeypatch, pack)
    residuals = record_identitynet_residuals(monkeypatch, pack)

    with_identity = denoise(patched, inpainting(positive, 5), inpainting(negative, 5))
    calls_with_identity = list(calls)
    plain = denoise(model, inpainting(sdxl_conditioning(1), 5), inpainting(sdxl_conditioning(2), 5))

    assert channels and set(channels) == {9}  # the UNet saw the latent, the mask and the masked picture
    assert len({call.key for call in calls_with_identity}) == 70
    assert all(call.term is not None and call.term.abs().sum() > 0 for call in calls_with_identity)
    assert residuals and all(any(r.abs().sum() > 0 for r in own["output"] if r is not None) for own, _ in residuals)
    assert not torch.equal(with_identity, plain)

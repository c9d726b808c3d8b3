"""Precision: InstantID on tiny SDXL-topology models stored in float32, float16, bfloat16 and ComfyUI's fp8 weight
storage (float8_e4m3fn weights computed in bfloat16, as ComfyUI's manual cast does), UNet and IdentityNet alike: one
step gives a finite picture close to float32's, and the identity K/V come in the dtype the UNet computes in.

The full-size stand-ins get one precision pass in the e2e lane (tests/e2e/test_precision_fullsize.py: ComfyUI's fp8
weight storage against bfloat16, on one server); a second full-size server in another precision does not fit beside
the first in this machine's 24 GiB (float32 alone needs about 19 GB)."""

import pytest
import torch

from helpers.host_runs import denoise, face_photo
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

PRECISIONS = {  # name -> (weight storage, compute dtype for manual cast, largest relative difference from float32)
    "float32": (torch.float32, None, 0.0),
    "float16": (torch.float16, None, 0.05),
    "bfloat16": (torch.bfloat16, None, 0.1),
    "fp8 storage": (torch.float8_e4m3fn, torch.bfloat16, 0.5),
}
LATENT = (1, 4, 32, 32)


def run(comfy_host, adapter, face_pack, standins, storage, compute):
    """Apply InstantID to the tiny models in this precision and denoise one step; the latent and the patch's K/V."""
    model = tiny_sdxl(seed=0, dtype=storage, manual_cast=compute)
    control_net = tiny_controlnet(seed=4, dtype=storage, manual_cast=compute)
    graph = (adapter, face_pack, control_net, model)
    conditioning = (sdxl_conditioning(1), sdxl_conditioning(2))
    patched, positive, negative = (
        comfy_host.node("InstantIDApply")
        .execute(*graph, *conditioning, 0.8, 0.0, 1.0, "error", image=face_photo(standins))
        .result
    )
    (patch, *_) = patched.model_options["transformer_options"]["patches_replace"]["attn2"].values()
    latent = denoise(patched, positive, negative, latent=LATENT)
    return latent.float(), patch.shared.kv.layer(next(iter(patch.shared.adapter_index.values())))


@pytest.fixture(scope="module")
def float32(comfy_host, adapter, face_pack, standins):
    """The float32 run everything is compared with."""
    return run(comfy_host, adapter, face_pack, standins, torch.float32, None)[0]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_one_step_in_each_precision_is_finite_and_close_to_float32(
    comfy_host, adapter, face_pack, standins, float32, precision
):
    storage, compute, tolerance = PRECISIONS[precision]

    latent, (keys, values) = run(comfy_host, adapter, face_pack, standins, storage, compute)

    assert torch.isfinite(latent).all() and latent.abs().max() > 0
    assert keys.dtype == values.dtype == (compute or storage)  # the UNet's compute dtype
    difference = float((latent - float32).abs().mean() / float32.abs().mean())
    assert difference <= tolerance, f"{precision}: mean relative difference {difference:.4f}"

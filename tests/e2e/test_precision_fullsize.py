"""Precision on the full-size stand-ins, on the session's server alone: the all-in-one pipeline (Apply InstantID, one
step at 128×128) with the UNet stored in bf16 (CheckpointLoaderSimple on a `--bf16-unet` server) and in ComfyUI's fp8
e4m3fn (its UNETLoader with weight_dtype fp8_e4m3fn, on the same checkpoint file) gives finite latents and pictures
that are not blank, the fp8 latent close to the bf16 one.

UNETLoader reads a full checkpoint: comfy.sd.load_diffusion_model_state_dict finds the `model.diffusion_model.` prefix
(model_detection.unet_prefix_from_state_dict) and keeps only the keys under it, stripped; the harness lists
checkpoints/ as ComfyUI's diffusion_models folder (scripts/harness/comfy_server.py). On CPU the computation is cast to
fp32 either way (`unet_manual_cast`), so the difference is the storage's. All four storage dtypes (fp32, fp16, bf16,
fp8), UNet and IdentityNet alike, are covered on tiny models by tests/host/test_precision.py.
"""

import logging
import re

import pytest
import safetensors.torch
import torch

from helpers.server_prompts import good_prompt

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)

LOGGED_DTYPE = re.compile(r"model weight dtype torch\.(\w+), manual cast")
"""The line ComfyUI logs when it builds a UNet: the dtype its weights are stored in."""

FP8_LATENT_TOLERANCE = 0.12
"""Largest relative difference (norm of the difference over the norm of bf16's) of the fp8 run's sampled latent from
the bf16 run's. Measured: 0.0249; the bound leaves about five times that."""


def precision_prompt(weight_dtype: str | None = None) -> dict:
    """The all-in-one pipeline, also saving the sampled latent (the picture alone would hide NaNs as black); given
    `weight_dtype`, the UNet comes from UNETLoader with that weight dtype on the same checkpoint file (the checkpoint
    loader still gives the text encoders and the VAE)."""
    prompt = good_prompt()
    prompt["save_latent"] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": ["sampler", 0], "filename_prefix": "precision"},
    }
    if weight_dtype is not None:
        unet_name = prompt["ckpt"]["inputs"]["ckpt_name"]
        prompt["unet"] = {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": weight_dtype}}
        prompt["apply"]["inputs"]["model"] = ["unet", 0]
    return prompt


def last_logged_dtype(server) -> str:
    """The weight dtype of the UNet ComfyUI built last (the one a prompt used, whether it built it or found the
    checkpoint loader's output in its cache)."""
    found = LOGGED_DTYPE.findall(server.log_path.read_text())
    assert found, server.log_tail()
    return found[-1]


def sampled_latent(server, run) -> torch.Tensor:
    """The latent the SaveLatent node wrote for a finished prompt, as float32."""
    (saved,) = run.entry["outputs"]["save_latent"]["latents"]
    path = server.base_dir / "output" / saved["subfolder"] / saved["filename"]
    return safetensors.torch.load_file(str(path))["latent_tensor"].float()


@pytest.fixture(scope="module")
def results(runner, comfy_server):
    """{storage: (sampled latent, saved picture, UNet weight dtype ComfyUI logged)} for "bf16" and "fp8_e4m3fn", run
    in that order."""
    out = {}
    for storage, weight_dtype in (("bf16", None), ("fp8_e4m3fn", "fp8_e4m3fn")):
        run = runner.run(precision_prompt(weight_dtype))
        out[storage] = (sampled_latent(comfy_server, run), run.picture("save"), last_logged_dtype(comfy_server))
    return out


@pytest.mark.parametrize("storage", ["bf16", "fp8_e4m3fn"])
def test_one_step_gives_a_finite_latent_and_a_picture_that_is_not_blank(results, storage):
    latent, picture, _dtypes = results[storage]

    assert torch.isfinite(latent).all()
    assert latent.abs().max() > 0
    assert picture.std() > 1.0  # NaNs or zeros decode to one flat colour


@pytest.mark.parametrize("storage, logged", [("bf16", "bfloat16"), ("fp8_e4m3fn", "float8_e4m3fn")])
def test_comfyui_stores_the_unets_weights_in_the_dtype_asked_for(results, storage, logged):
    assert results[storage][2] == logged


def test_the_fp8_latent_is_close_to_the_bf16_one_and_not_identical(results):
    reference, latent = results["bf16"][0], results["fp8_e4m3fn"][0]

    relative = float((latent - reference).norm() / reference.norm())

    logger.info("fp8 e4m3fn latent vs bf16: relative difference %.4f (bound %.2f)", relative, FP8_LATENT_TOLERANCE)
    assert 0 < relative <= FP8_LATENT_TOLERANCE  # > 0: the server really stored the weights in fp8

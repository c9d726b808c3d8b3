"""Precision through real servers: the whole pipeline (full-size stand-ins, Apply InstantID, one step) with the UNet
and IdentityNet weights stored in fp32, fp16, bf16 and ComfyUI's fp8 (e4m3fn) gives a finite latent and a picture
that is not blank, close to the fp32 one.

ComfyUI chooses the weight dtype per server (`--fp32-unet`, `--fp16-unet`, `--bf16-unet`, `--fp8_e4m3fn-unet`): its
`model_management.unet_dtype` decides both the UNet's dtype and the ControlNet loader's, and on CPU the computation is
cast to fp32 (`unet_manual_cast`). The session's server is the bf16 one. The others start one at a time while the
session's server is stopped, so that two full-size models never share the machine's memory.
"""

import io
import logging
import re

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from helpers.server_prompts import good_prompt
from scripts.harness.comfy_server import DEFAULT_FLAGS, start_server

pytestmark = pytest.mark.server
logger = logging.getLogger(__name__)

STORAGE_FLAGS = {
    "fp32": ("--fp32-unet", "float32"),
    "fp16": ("--fp16-unet", "float16"),
    "fp8_e4m3fn": ("--fp8_e4m3fn-unet", "float8_e4m3fn"),
}
"""The servers started here, by the weight dtype they store (bf16 is the session's server): the flag, and the torch
dtype ComfyUI then logs for the UNet's weights."""

LATENT_TOLERANCE = {"fp16": 0.001, "bf16": 0.02, "fp8_e4m3fn": 0.3}
"""Largest relative difference (norm of the difference over the norm of fp32's) of the sampled latent from fp32's.
Measured: fp16 0 (the stand-ins are stored in fp16, so fp16 storage loses nothing, and on CPU the computation is fp32
either way), bf16 0.003, fp8 e4m3 0.057; the bounds leave about five times that."""


def precision_prompt() -> dict:
    """The all-in-one pipeline, also saving the sampled latent (the picture alone would hide NaNs as black)."""
    prompt = good_prompt()
    prompt["save_latent"] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": ["sampler", 0], "filename_prefix": "precision"},
    }
    return prompt


def run_pipeline(server) -> tuple[torch.Tensor, np.ndarray]:
    """Run the pipeline once: the sampled latent (float32) and the saved picture (H×W×3 uint8)."""
    entry = server.run(precision_prompt())
    (png,) = server.output_images(entry, "save")
    (saved,) = entry["outputs"]["save_latent"]["latents"]
    path = server.base_dir / "output" / saved["subfolder"] / saved["filename"]
    latent = safetensors.torch.load_file(str(path))["latent_tensor"].float()
    return latent, np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def weight_dtype_logged(server) -> str:
    """The UNet weight dtype ComfyUI logged when it loaded the checkpoint."""
    found = re.findall(r"model weight dtype torch\.(\w+), manual cast", server.log_path.read_text())
    assert found, server.log_tail()
    return found[-1]


@pytest.fixture(scope="module")
def results(comfy_server, standins, tmp_path_factory):
    """The pipeline's latent and picture for every weight dtype: bf16 on the session's server, the others on a server
    of their own while the session's is stopped (fp32 alone peaks at about 19 GB)."""
    assert "--bf16-unet" in DEFAULT_FLAGS
    out = {"bf16": run_pipeline(comfy_server)}
    assert weight_dtype_logged(comfy_server) == "bfloat16"
    inputs = sorted((standins / "input").iterdir())
    with comfy_server.stopped():
        for name, (flag, logged) in STORAGE_FLAGS.items():
            flags = (*(f for f in DEFAULT_FLAGS if f != "--bf16-unet"), flag)
            server = start_server(tmp_path_factory.mktemp(f"precision_{name}"), standins / "models", inputs, flags)
            try:
                out[name] = run_pipeline(server)
                assert weight_dtype_logged(server) == logged
            finally:
                server.stop()
    return out


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "fp8_e4m3fn"])
def test_one_step_gives_a_finite_latent_and_a_picture_that_is_not_blank(results, dtype):
    latent, picture = results[dtype]

    assert torch.isfinite(latent).all()
    assert latent.abs().max() > 0
    assert picture.std() > 1.0  # NaNs or zeros decode to one flat colour


@pytest.mark.parametrize("dtype", ["fp16", "bf16", "fp8_e4m3fn"])
def test_the_latent_is_close_to_fp32s_within_what_the_dtype_keeps(results, dtype):
    reference, latent = results["fp32"][0], results[dtype][0]

    relative = float((latent - reference).norm() / reference.norm())

    logger.info("%s latent vs fp32: relative difference %.4f", dtype, relative)
    assert relative <= LATENT_TOLERANCE[dtype]
    if dtype != "fp16":  # bf16 and fp8 round the fp16-stored weights: the server really stored them so
        assert relative > 0

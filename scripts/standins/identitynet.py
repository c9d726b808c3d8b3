"""The stand-in IdentityNet: a diffusers-format SDXL ControlNet with InstantID's real config and random fp16 weights.

Key names and shapes come from diffusers' own ControlNetModel built on the `meta` device. Unlike a freshly trained
ControlNet, the "zero convolutions" (controlnet_down_blocks, controlnet_mid_block and the conditioning embedding's
conv_out) get small random weights, so the stand-in visibly changes what the UNet does.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from scripts.standins.random_weights import RESIDUAL_GAIN, Init, fan_in_normal, layer_init, make_tensor
from scripts.standins.safetensors_stream import TensorSpec, write_safetensors
from scripts.standins.sdxl import SDXL_DIFFUSERS_BLOCKS

logger = logging.getLogger(__name__)

METADATA = {"instantid_standin": "stand-in InstantID IdentityNet (SDXL ControlNet) with random weights, "
                                 "not a real model", "format": "pt"}
STORAGE_DTYPE = torch.float16
CONFIG_NAME = "config.json"
# InstantID's published ControlNetModel config (the values that differ from diffusers' defaults, and the key ones).
INSTANTID_CONTROLNET_CONFIG = SDXL_DIFFUSERS_BLOCKS | {
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
}
# The layers a trained-from-scratch ControlNet starts at zero: their outputs are what the UNet receives.
ZERO_CONV_PREFIXES = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out.")
ZERO_CONV_GAIN = RESIDUAL_GAIN


def build_meta_controlnet() -> torch.nn.Module:
    """diffusers' ControlNetModel with InstantID's config, on the meta device (no memory for weights)."""
    from diffusers import ControlNetModel

    with torch.device("meta"):
        return ControlNetModel(**INSTANTID_CONTROLNET_CONFIG)


def identitynet_init(name: str, shape: tuple[int, ...]) -> Init:
    """The fill rule for one IdentityNet tensor, from its diffusers name: zero convs get small random weights."""
    if name.startswith(ZERO_CONV_PREFIXES) and name.endswith("weight"):
        return fan_in_normal(shape, ZERO_CONV_GAIN)
    return layer_init(name, shape)


def write_identitynet(path: Path, seed: int = 1) -> int:
    """Write the stand-in IdentityNet weights to `path` (about 2.5 GB) and its diffusers config.json beside it;
    returns the weights' size in bytes."""
    model = build_meta_controlnet()
    config_path = path.parent / CONFIG_NAME
    partial = config_path.with_name(config_path.name + ".partial")
    partial.write_text(model.to_json_string())
    os.replace(partial, config_path)
    specs = [TensorSpec(name, tuple(t.shape), STORAGE_DTYPE) for name, t in model.state_dict().items()]
    del model
    logger.info("IdentityNet: %d tensors, %.2f G parameters", len(specs), sum(s.numel for s in specs) / 1e9)
    return write_safetensors(path, specs, lambda spec: make_tensor(spec, identitynet_init(spec.name, spec.shape), seed),
                             METADATA)

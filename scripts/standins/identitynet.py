"""The stand-in IdentityNet: a diffusers-format SDXL ControlNet with InstantID's real config and random fp16 weights
(the init rule, hint gains included, is in controlnet.py)."""

from __future__ import annotations

import os
from pathlib import Path

from scripts.standins.controlnet import build_meta_controlnet, controlnet_specs, write_controlnet
from scripts.standins.sdxl import SDXL_DIFFUSERS_BLOCKS

METADATA = {
    "instantid_standin": "stand-in InstantID IdentityNet (SDXL ControlNet) with random weights, not a real model",
    "format": "pt",
}
CONFIG_NAME = "config.json"
# InstantID's published ControlNetModel config (the values that differ from diffusers' defaults, and the key ones).
INSTANTID_CONTROLNET_CONFIG = SDXL_DIFFUSERS_BLOCKS | {
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
}


def write_identitynet(path: Path, seed: int = 1) -> int:
    """Write the stand-in IdentityNet weights to `path` (about 2.5 GB) and its diffusers config.json beside it;
    returns the weights' size in bytes."""
    model = build_meta_controlnet(INSTANTID_CONTROLNET_CONFIG)
    config_path = path.parent / CONFIG_NAME
    partial = config_path.with_name(config_path.name + ".partial")
    partial.write_text(model.to_json_string())
    os.replace(partial, config_path)
    specs = controlnet_specs(model)
    del model
    return write_controlnet(path, specs, seed, METADATA)

"""Stand-in diffusers-format SDXL ControlNets: the tensors of diffusers' own ControlNetModel built on the `meta` device,
filled with random fp16 weights one tensor at a time.

Unlike a freshly trained ControlNet, the "zero convolutions" (controlnet_down_blocks, controlnet_mid_block) get small
random weights, so a stand-in visibly changes what the UNet does. And its hint matters: the conditioning embedding
(hint image -> the 320 channels added to the latent's conv_in) has a gain that keeps a small signal's size through its
conv + SiLU stack, and its conv_out a large gain, so where the hint is drawn it outweighs the latent. With plain
fan-in weights a keypoint image (a few lit pixels on black) came out at most 0.002 against latent features of about 1,
and moving the keypoints changed a 256x256 picture by 0.0004 of 255 on average (now about 11).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from scripts.standins.random_weights import RESIDUAL_GAIN, Init, fan_in_normal, layer_init, make_tensor
from scripts.standins.safetensors_stream import TensorSpec, write_safetensors

logger = logging.getLogger(__name__)

STORAGE_DTYPE = torch.float16
# The layers a trained-from-scratch ControlNet starts at zero: their outputs are what the UNet receives.
ZERO_CONV_PREFIXES = ("controlnet_down_blocks.", "controlnet_mid_block.")
ZERO_CONV_GAIN = RESIDUAL_GAIN
HINT_EMBEDDING_PREFIX = "controlnet_cond_embedding."
HINT_OUTPUT_PREFIX = "controlnet_cond_embedding.conv_out."
HINT_CONV_GAIN = 2.0  # SiLU halves a small signal: gain 2 keeps it through the embedding's 7 conv + SiLU layers
HINT_OUTPUT_GAIN = 30.0  # where a keypoint image is lit, the embedding then peaks at 30-100x the latent features


def build_meta_controlnet(config: dict) -> torch.nn.Module:
    """diffusers' ControlNetModel with this config, on the meta device (no memory for weights)."""
    from diffusers import ControlNetModel

    with torch.device("meta"):
        return ControlNetModel(**config)


def controlnet_init(name: str, shape: tuple[int, ...]) -> Init:
    """The fill rule for one ControlNet tensor, from its diffusers name (hint embedding and zero convs get gains)."""
    if name.endswith("weight") and len(shape) > 1:
        if name.startswith(HINT_OUTPUT_PREFIX):
            return fan_in_normal(shape, HINT_OUTPUT_GAIN)
        if name.startswith(HINT_EMBEDDING_PREFIX):
            return fan_in_normal(shape, HINT_CONV_GAIN)
        if name.startswith(ZERO_CONV_PREFIXES):
            return fan_in_normal(shape, ZERO_CONV_GAIN)
    return layer_init(name, shape)


def controlnet_specs(model: torch.nn.Module) -> list[TensorSpec]:
    """Every tensor of the model's state dict, in order, stored as STORAGE_DTYPE."""
    return [TensorSpec(name, tuple(t.shape), STORAGE_DTYPE) for name, t in model.state_dict().items()]


def write_controlnet(path: Path, specs: list[TensorSpec], seed: int, metadata: dict[str, str]) -> int:
    """Write the stand-in ControlNet tensors `specs` to `path`; returns the file size in bytes."""
    logger.info("%s: %d tensors, %.2f G parameters", path.name, len(specs), sum(s.numel for s in specs) / 1e9)
    return write_safetensors(
        path, specs, lambda spec: make_tensor(spec, controlnet_init(spec.name, spec.shape), seed), metadata
    )

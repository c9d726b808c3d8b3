"""The stand-in "other ControlNet" that the canny example workflow loads as diffusers_xl_canny_mid.safetensors: a
diffusers-format SDXL ControlNet in the layout of diffusers' controlnet-canny-sdxl-1.0-mid, with its own random fp16
weights (the init rule is in controlnet.py).

"Mid" means one transformer block in each attention of the lowest resolution and of the middle block, and none in the
640-channel attentions (which keep only their norm and projections), where a full SDXL ControlNet has 2 and 10: about
273 M parameters, 0.55 GB in fp16. ComfyUI's model detection knows this layout as SDXL_mid_cnet; its loader
skips the 12 norm and projection tensors of the empty attentions with a "leftover keys" warning.
"""

from __future__ import annotations

from pathlib import Path

from scripts.standins.controlnet import build_meta_controlnet, controlnet_specs, write_controlnet
from scripts.standins.sdxl import SDXL_DIFFUSERS_BLOCKS

METADATA = {
    "instantid_standin": "stand-in SDXL canny ControlNet (controlnet-canny-sdxl-1.0-mid layout) with random "
    "weights, not a real model",
    "format": "pt",
}
MID_CONTROLNET_CONFIG = SDXL_DIFFUSERS_BLOCKS | {
    "transformer_layers_per_block": [0, 0, 1],
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
}


def write_mid_controlnet(path: Path, seed: int = 2) -> int:
    """Write the stand-in mid SDXL ControlNet to `path` (about 0.55 GB); returns its size in bytes."""
    return write_controlnet(path, controlnet_specs(build_meta_controlnet(MID_CONTROLNET_CONFIG)), seed, METADATA)

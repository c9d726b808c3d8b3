"""The stand-in SDXL checkpoint: full-size UNet, CLIP-L + OpenCLIP-G text encoders and VAE with random fp16 weights,
in the key layout ComfyUI saves and its CheckpointLoaderSimple detects as SDXL.

Key names and shapes come from ComfyUI's own classes built on the `meta` device and its own saving conversions
(`model_base.state_dict_for_saving`), so nothing is hand-listed; the tensors are then streamed to disk one at a time.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from scripts.harness.comfy_host import comfy_args_on_cpu
from scripts.standins.random_weights import EMBEDDING_STD, Fill, Init, layer_init, make_tensor
from scripts.standins.safetensors_stream import TensorSpec, write_safetensors

logger = logging.getLogger(__name__)

METADATA = {"instantid_standin": "stand-in SDXL checkpoint with random weights, not a real model", "format": "pt"}
STORAGE_DTYPE = torch.float16
UNET_PREFIX = "model.diffusion_model."
# The UNet config ComfyUI's model detection derives from a real SDXL base checkpoint.
SDXL_UNET_CONFIG = {
    "use_checkpoint": False,
    "image_size": 32,
    "use_spatial_transformer": True,
    "legacy": False,
    "num_classes": "sequential",
    "adm_in_channels": 2816,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10],
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10,
    "use_linear_in_transformer": True,
    "context_dim": 2048,
    "use_temporal_resblock": False,
    "use_temporal_attention": False,
}
# SDXL's block layout in diffusers' config terms, shared by the base UNet and by InstantID's IdentityNet.
SDXL_DIFFUSERS_BLOCKS = {
    "in_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
# SDXL's VAE: ComfyUI's default SD AutoencoderKL (comfy/sd.py), 4 latent channels.
SDXL_VAE_DDCONFIG = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}
SDXL_VAE_EMBED_DIM = 4
CLIP_LOGIT_SCALE = math.log(100.0)


def sdxl_checkpoint_specs() -> list[TensorSpec]:
    """Every tensor of an SDXL checkpoint as ComfyUI saves it (names, shapes; floats stored as fp16), in save order."""
    comfy_args_on_cpu()
    import comfy.model_detection
    import comfy.sdxl_clip
    import comfy.supported_models
    from comfy.ldm.models.autoencoder import AutoencoderKL

    meta = torch.device("meta")
    model_config = comfy.supported_models.SDXL(dict(SDXL_UNET_CONFIG))
    model_config.set_inference_dtype(STORAGE_DTYPE, None)
    unet = model_config.get_model({}, device=meta)
    clip = comfy.sdxl_clip.SDXLClipModel(device=meta, dtype=STORAGE_DTYPE)
    with meta:
        vae = AutoencoderKL(ddconfig=dict(SDXL_VAE_DDCONFIG), embed_dim=SDXL_VAE_EMBED_DIM)
    state_dict = unet.state_dict_for_saving(clip.state_dict(), vae.state_dict())
    detected = comfy.model_detection.model_config_from_unet(state_dict, UNET_PREFIX)
    if type(detected) is not comfy.supported_models.SDXL:
        raise RuntimeError(f"ComfyUI detects the stand-in layout as {type(detected).__name__}, not SDXL")
    return [
        TensorSpec(name, tuple(t.shape), STORAGE_DTYPE if t.is_floating_point() else t.dtype)
        for name, t in state_dict.items()
    ]


def sdxl_init(name: str, shape: tuple[int, ...]) -> Init:
    """The fill rule for one checkpoint tensor, from its ComfyUI/ldm name."""
    if name.endswith("position_ids"):
        return Init(Fill.ARANGE)
    if name.endswith("logit_scale"):
        return Init(Fill.CONSTANT, CLIP_LOGIT_SCALE)
    if name.endswith(("token_embedding.weight", "position_embedding.weight", "positional_embedding")):
        return Init(Fill.NORMAL, EMBEDDING_STD)
    if name.endswith("text_projection"):  # OpenCLIP applies it as x @ P, so its fan-in is the first axis
        return Init(Fill.NORMAL, 1.0 / math.sqrt(shape[0]))
    return layer_init(name, shape)


def write_sdxl_checkpoint(path: Path, seed: int = 0) -> int:
    """Write the stand-in SDXL checkpoint to `path` (about 6.9 GB); returns its size in bytes."""
    specs = sdxl_checkpoint_specs()
    logger.info("SDXL checkpoint: %d tensors, %.2f G parameters", len(specs), sum(s.numel for s in specs) / 1e9)
    return write_safetensors(
        path, specs, lambda spec: make_tensor(spec, sdxl_init(spec.name, spec.shape), seed), METADATA
    )

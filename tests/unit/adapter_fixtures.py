"""Small state dicts in memory, and files made from them, for the adapter and model-file unit tests.

The InstantID layout is written out here key by key from docs/design.md ("Adapter file format"), independently of instantid_core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file


@dataclass(frozen=True)
class TinyDims:
    """Dimensions of a small InstantID-layout adapter (the real file: 1280, 4, 20, 16, 512, 2048, 4)."""

    dim: int = 128
    depth: int = 4
    heads: int = 2
    num_queries: int = 4
    embedding_dim: int = 32
    output_dim: int = 48
    ff_mult: int = 4


REAL_DIMS = TinyDims(dim=1280, depth=4, heads=20, num_queries=16, embedding_dim=512, output_dim=2048, ff_mult=4)
TINY_LAYER_WIDTHS = {1: 64, 3: 64, 5: 96, 7: 96, 9: 96}


def _randn(gen: torch.Generator, *shape: int, scale: float = 0.05) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def _norm(gen: torch.Generator, width: int, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + _randn(gen, width, scale=0.1), f"{prefix}.bias": _randn(gen, width, scale=0.1)}


def resampler_state_dict(dims: TinyDims = TinyDims(), seed: int = 0) -> dict[str, torch.Tensor]:
    """An `image_proj` state dict with InstantID's keys and random weights."""
    gen = torch.Generator().manual_seed(seed)
    d, inner, ff = dims.dim, dims.heads * 64, dims.dim * dims.ff_mult
    sd = {
        "latents": torch.randn(1, dims.num_queries, d, generator=gen) / d**0.5,
        "proj_in.weight": _randn(gen, d, dims.embedding_dim),
        "proj_in.bias": _randn(gen, d),
        "proj_out.weight": _randn(gen, dims.output_dim, d),
        "proj_out.bias": _randn(gen, dims.output_dim),
        **_norm(gen, dims.output_dim, "norm_out"),
    }
    for i in range(dims.depth):
        sd.update(_norm(gen, d, f"layers.{i}.0.norm1"))
        sd.update(_norm(gen, d, f"layers.{i}.0.norm2"))
        sd[f"layers.{i}.0.to_q.weight"] = _randn(gen, inner, d)
        sd[f"layers.{i}.0.to_kv.weight"] = _randn(gen, 2 * inner, d)
        sd[f"layers.{i}.0.to_out.weight"] = _randn(gen, d, inner)
        sd.update(_norm(gen, d, f"layers.{i}.1.0"))
        sd[f"layers.{i}.1.1.weight"] = _randn(gen, ff, d)
        sd[f"layers.{i}.1.3.weight"] = _randn(gen, d, ff)
    return sd


def ip_adapter_kv_state_dict(
    token_dim: int, widths: dict[int, int] = TINY_LAYER_WIDTHS, seed: int = 1
) -> dict[str, torch.Tensor]:
    """An `ip_adapter` state dict: to_k_ip/to_v_ip weights of shape (hidden, token_dim) per layer index."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for n, hidden in widths.items():
        sd[f"{n}.to_k_ip.weight"] = _randn(gen, hidden, token_dim)
        sd[f"{n}.to_v_ip.weight"] = _randn(gen, hidden, token_dim)
    return sd


def instantid_nested(dims: TinyDims = TinyDims(), widths: dict[int, int] = TINY_LAYER_WIDTHS) -> dict:
    """The nested {'image_proj': {...}, 'ip_adapter': {...}} form of a tiny InstantID adapter."""
    return {"image_proj": resampler_state_dict(dims), "ip_adapter": ip_adapter_kv_state_dict(dims.output_dim, widths)}


def flatten(nested: dict) -> dict[str, torch.Tensor]:
    """The flattened 'image_proj.*' / 'ip_adapter.*' form of a nested adapter dict."""
    return {f"{group}.{key}": t for group, sd in nested.items() for key, t in sd.items()}


def save_bin(obj: dict, path: Path) -> Path:
    """torch.save obj to path and return the path."""
    torch.save(obj, path)
    return path


def save_legacy_bin(obj: dict, path: Path) -> Path:
    """torch.save obj in the legacy (pre-1.6, non-zip) pickle format to path and return the path."""
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def save_safetensors(flat: dict[str, torch.Tensor], path: Path) -> Path:
    """Save a flat tensor dict as safetensors and return the path."""
    save_file({k: t.contiguous() for k, t in flat.items()}, str(path))
    return path


def plain_ip_adapter(clip_dim: int = 1280, width: int = 2048, tokens: int = 4) -> dict:
    """A plain IP-Adapter (SDXL): image_proj.proj (tokens*width, clip_dim) + norm, and K/V per layer."""
    return {
        "image_proj": {
            "proj.weight": torch.zeros(tokens * width, clip_dim),
            "proj.bias": torch.zeros(tokens * width),
            "norm.weight": torch.ones(width),
            "norm.bias": torch.zeros(width),
        },
        "ip_adapter": ip_adapter_kv_state_dict(width, {1: 8, 3: 8}),
    }


def ip_adapter_plus(clip_dim: int = 1280) -> dict:
    """An IP-Adapter Plus: the Resampler layout fed by CLIP image features of width clip_dim."""
    dims = TinyDims(dim=64, depth=1, heads=1, num_queries=16, embedding_dim=clip_dim, output_dim=48)
    return {"image_proj": resampler_state_dict(dims), "ip_adapter": ip_adapter_kv_state_dict(48, {1: 8})}


def ip_adapter_faceid(width: int = 768, tokens: int = 4) -> dict:
    """An IP-Adapter FaceID (SD1.5): MLP from the 512-d face embedding, plus LoRA weights in ip_adapter."""
    return {
        "image_proj": {
            "proj.0.weight": torch.zeros(1024, 512),
            "proj.0.bias": torch.zeros(1024),
            "proj.2.weight": torch.zeros(tokens * width, 1024),
            "proj.2.bias": torch.zeros(tokens * width),
            "norm.weight": torch.ones(width),
            "norm.bias": torch.zeros(width),
        },
        "ip_adapter": {
            **ip_adapter_kv_state_dict(width, {1: 8}),
            "1.to_q_lora.down.weight": torch.zeros(4, 8),
            "1.to_q_lora.up.weight": torch.zeros(8, 4),
        },
    }


def controlnet_diffusers(context: int = 2048) -> dict[str, torch.Tensor]:
    """Keys of a diffusers-layout ControlNet with cross-attention width context."""
    return {
        "controlnet_cond_embedding.conv_in.weight": torch.zeros(16, 3, 3, 3),
        "conv_in.weight": torch.zeros(320, 4, 3, 3),
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": torch.zeros(640, context),
        "controlnet_down_blocks.0.weight": torch.zeros(320, 320, 1, 1),
    }


def controlnet_ldm(context: int = 768) -> dict[str, torch.Tensor]:
    """Keys of an ldm-layout ControlNet (control_model.*) with cross-attention width context."""
    return {
        "control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3),
        "control_model.zero_convs.0.0.weight": torch.zeros(320, 320, 1, 1),
        "control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, context),
    }


def sd15_checkpoint() -> dict[str, torch.Tensor]:
    """Keys of an SD1.5 checkpoint (context 768, CLIP-L text encoder)."""
    return {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 768),
        "model.diffusion_model.out.2.weight": torch.zeros(4, 320, 3, 3),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(768),
        "first_stage_model.decoder.conv_out.weight": torch.zeros(3, 128, 3, 3),
    }


def sdxl_checkpoint() -> dict[str, torch.Tensor]:
    """Keys of an SDXL checkpoint (context 2048, conditioner.embedders)."""
    return {
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(640, 2048),
        "conditioner.embedders.1.model.ln_final.weight": torch.zeros(1280),
        "first_stage_model.decoder.conv_out.weight": torch.zeros(3, 128, 3, 3),
    }


def flux_model() -> dict[str, torch.Tensor]:
    """Keys of a Flux transformer."""
    return {
        "double_blocks.0.img_attn.qkv.weight": torch.zeros(24, 8),
        "single_blocks.0.linear1.weight": torch.zeros(24, 8),
    }


def lora() -> dict[str, torch.Tensor]:
    """Keys of a kohya-style LoRA with two low-rank pairs."""
    return {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4),
        "lora_unet_down_blocks_0_attentions_0_proj_out.lora_down.weight": torch.zeros(4, 320),
        "lora_unet_down_blocks_0_attentions_0_proj_out.lora_up.weight": torch.zeros(320, 4),
    }


def resampler_shapes(dims: TinyDims = TinyDims()) -> dict[str, tuple[int, ...]]:
    """The key -> shape table of resampler_state_dict(dims), built on the meta device (no memory, even REAL_DIMS)."""
    with torch.device("meta"):
        return {key: tuple(t.shape) for key, t in resampler_state_dict(dims).items()}


def ip_adapter_full_face(clip_dim: int = 1024, width: int = 768) -> dict:
    """An IP-Adapter Full Face (SD1.5): an MLP projection proj.0 -> GELU -> proj.2 -> LayerNorm proj.3."""
    return {
        "image_proj": {
            "proj.0.weight": torch.zeros(clip_dim, clip_dim),
            "proj.0.bias": torch.zeros(clip_dim),
            "proj.2.weight": torch.zeros(width, clip_dim),
            "proj.2.bias": torch.zeros(width),
            "proj.3.weight": torch.ones(width),
            "proj.3.bias": torch.zeros(width),
        },
        "ip_adapter": ip_adapter_kv_state_dict(width, {1: 8}),
    }


def ip_adapter_faceid_plus(width: int = 2048) -> dict:
    """An IP-Adapter FaceID Plus: the FaceID MLP plus a perceiver resampler over CLIP features."""
    return {
        "image_proj": {
            "proj.0.weight": torch.zeros(1024, 512),
            "proj.2.weight": torch.zeros(4 * width, 1024),
            "norm.weight": torch.ones(width),
            "perceiver_resampler.proj_in.weight": torch.zeros(width, 1280),
            "perceiver_resampler.latents": torch.zeros(1, 4, width),
        },
        "ip_adapter": ip_adapter_kv_state_dict(width, {1: 8}),
    }


def sd2_checkpoint() -> dict[str, torch.Tensor]:
    """Keys of an SD2.x checkpoint (context 1024, OpenCLIP-H text encoder)."""
    return {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 1024),
        "cond_stage_model.model.ln_final.weight": torch.zeros(1024),
    }


def diffusers_unet(context: int = 2048) -> dict[str, torch.Tensor]:
    """Keys of a bare diffusers-layout UNet with cross-attention width context."""
    return {
        "conv_in.weight": torch.zeros(320, 4, 3, 3),
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": torch.zeros(640, context),
    }


def clip_vision(width: int = 1280) -> dict[str, torch.Tensor]:
    """Keys of a CLIP vision encoder (transformers layout)."""
    return {
        "vision_model.encoder.layers.0.self_attn.q_proj.weight": torch.zeros(width, width),
        "vision_model.post_layernorm.weight": torch.ones(width),
    }


def vae() -> dict[str, torch.Tensor]:
    """Keys of an ldm-layout VAE."""
    return {"encoder.conv_in.weight": torch.zeros(128, 3, 3, 3), "decoder.conv_out.weight": torch.zeros(3, 128, 3, 3)}


class CodePayload:
    """Unpickling this object runs code (it creates the folder `marker`): what a malicious .bin would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def save_code_pickle(path: Path, marker: Path, legacy: bool = False) -> Path:
    """torch.save an adapter-shaped dict whose 'latents' is a CodePayload (zip format, or the pre-1.6 legacy one)."""
    torch.save({"image_proj": {"latents": CodePayload(marker)}}, path, _use_new_zipfile_serialization=not legacy)
    return path

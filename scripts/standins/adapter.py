"""The stand-in InstantID adapter `ip-adapter.bin`: a torch pickle of {'image_proj': Resampler, 'ip_adapter': per-layer
identity K/V projections} with the real key names, shapes and dtype (fp32) and random weights
(docs/design.md, "Adapter file format").

The per-layer widths of 'ip_adapter' come from diffusers' SDXL UNet2DConditionModel (built on `meta`): entry n is the
n-th attention processor in diffusers order, and only cross-attention processors (attn2) have weights.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from scripts.standins.random_weights import ONES, ZEROS, Fill, Init, fan_in_normal, make_tensor
from scripts.standins.safetensors_stream import TensorSpec
from scripts.standins.sdxl import SDXL_DIFFUSERS_BLOCKS

logger = logging.getLogger(__name__)

STORAGE_DTYPE = torch.float32
# diffusers' config of the SDXL base UNet (stabilityai/stable-diffusion-xl-base-1.0).
SDXL_DIFFUSERS_UNET_CONFIG = SDXL_DIFFUSERS_BLOCKS | {
    "sample_size": 128,
    "out_channels": 4,
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
}
# docs/design.md: the cross-attention layers in diffusers order, as (block, layers, hidden width).
DESIGN_CROSS_ATTENTION_BLOCKS = (
    ("down_blocks.1", 4, 640),
    ("down_blocks.2", 20, 1280),
    ("up_blocks.0", 30, 1280),
    ("up_blocks.1", 6, 640),
    ("mid_block", 10, 1280),
)


@dataclass(frozen=True)
class ResamplerShape:
    """Hyper-parameters of InstantID's perceiver Resampler (the 'image_proj' part)."""

    dim: int = 1280
    depth: int = 4
    heads: int = 20
    dim_head: int = 64
    num_queries: int = 16
    embedding_dim: int = 512
    output_dim: int = 2048
    ff_mult: int = 4


@dataclass(frozen=True)
class CrossAttentionLayer:
    """One UNet cross-attention layer: its index among diffusers' attention processors and its K/V shape."""

    index: int
    processor: str
    hidden: int
    context_dim: int

    @property
    def block(self) -> str:
        """The UNet block it sits in, e.g. 'down_blocks.1' or 'mid_block'."""
        parts = self.processor.split(".")
        return parts[0] if parts[0] == "mid_block" else ".".join(parts[:2])


def image_proj_shapes(shape: ResamplerShape = ResamplerShape()) -> dict[str, tuple[int, ...]]:
    """Key → shape of the Resampler state dict, in the order of the real file."""
    inner = shape.heads * shape.dim_head
    out: dict[str, tuple[int, ...]] = {
        "latents": (1, shape.num_queries, shape.dim),
        "proj_in.weight": (shape.dim, shape.embedding_dim),
        "proj_in.bias": (shape.dim,),
        "proj_out.weight": (shape.output_dim, shape.dim),
        "proj_out.bias": (shape.output_dim,),
        "norm_out.weight": (shape.output_dim,),
        "norm_out.bias": (shape.output_dim,),
    }
    for i in range(shape.depth):
        out |= {
            f"layers.{i}.0.norm1.weight": (shape.dim,),
            f"layers.{i}.0.norm1.bias": (shape.dim,),
            f"layers.{i}.0.norm2.weight": (shape.dim,),
            f"layers.{i}.0.norm2.bias": (shape.dim,),
            f"layers.{i}.0.to_q.weight": (inner, shape.dim),
            f"layers.{i}.0.to_kv.weight": (2 * inner, shape.dim),
            f"layers.{i}.0.to_out.weight": (shape.dim, inner),
            f"layers.{i}.1.0.weight": (shape.dim,),
            f"layers.{i}.1.0.bias": (shape.dim,),
            f"layers.{i}.1.1.weight": (shape.dim * shape.ff_mult, shape.dim),
            f"layers.{i}.1.3.weight": (shape.dim, shape.dim * shape.ff_mult),
        }
    return out


def sdxl_cross_attention_layers() -> list[CrossAttentionLayer]:
    """SDXL's cross-attention layers in diffusers' attn_processors order, read from UNet2DConditionModel on meta;
    checked against the block list of docs/design.md."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_DIFFUSERS_UNET_CONFIG)
    layers = []
    for index, processor in enumerate(unet.attn_processors):
        attention = unet.get_submodule(processor.removesuffix(".processor"))
        if attention.is_cross_attention:
            hidden, context_dim = attention.to_k.weight.shape
            layers.append(CrossAttentionLayer(index, processor, hidden, context_dim))
    found = tuple(
        (block, len(group), group[0].hidden)
        for block, group in ((b, list(g)) for b, g in itertools.groupby(layers, lambda layer: layer.block))
    )
    if found != DESIGN_CROSS_ATTENTION_BLOCKS or any(layer.index % 2 != 1 for layer in layers):
        raise RuntimeError(
            f"diffusers' SDXL UNet gives cross-attention blocks {found}, docs/design.md says "
            f"{DESIGN_CROSS_ATTENTION_BLOCKS} at the odd processor positions"
        )
    return layers


def ip_adapter_shapes() -> dict[str, tuple[int, ...]]:
    """Key → shape of the 'ip_adapter' state dict: '{n}.to_k_ip.weight' and '{n}.to_v_ip.weight' per cross-attention."""
    out: dict[str, tuple[int, ...]] = {}
    for layer in sdxl_cross_attention_layers():
        out[f"{layer.index}.to_k_ip.weight"] = (layer.hidden, layer.context_dim)
        out[f"{layer.index}.to_v_ip.weight"] = (layer.hidden, layer.context_dim)
    return out


def adapter_init(name: str, shape: tuple[int, ...]) -> Init:
    """The fill rule for one adapter tensor: latents N(0, 1/dim), norms 1, biases 0, Linear weights fan-in normal."""
    if name == "latents":
        return Init(Fill.NORMAL, 1.0 / math.sqrt(shape[-1]))
    if len(shape) == 1:
        return ZEROS if name.endswith("bias") else ONES
    return fan_in_normal(shape)


def write_ip_adapter(path: Path, seed: int = 2) -> int:
    """Write the stand-in ip-adapter.bin (about 1.7 GB, built in memory for torch.save); returns its size in bytes."""
    parts = {"image_proj": image_proj_shapes(), "ip_adapter": ip_adapter_shapes()}
    state = {
        part: {
            name: make_tensor(TensorSpec(f"{part}.{name}", shape, STORAGE_DTYPE), adapter_init(name, shape), seed)
            for name, shape in shapes.items()
        }
        for part, shapes in parts.items()
    }
    logger.info(
        "ip-adapter: image_proj %d tensors (%.1f M), ip_adapter %d tensors (%.1f M)",
        len(state["image_proj"]),
        sum(t.numel() for t in state["image_proj"].values()) / 1e6,
        len(state["ip_adapter"]),
        sum(t.numel() for t in state["ip_adapter"].values()) / 1e6,
    )
    torch.save(state, path)
    return path.stat().st_size

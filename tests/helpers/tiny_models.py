"""Tiny models with SDXL's topology (70 cross-attention layers, 2048-wide context) built with ComfyUI's own classes.

Widths are small (32/64/128 channels instead of 320/640/1280) so host-tier tests run in seconds on a CPU; the
transformer depths, the block layout, the context width and the ADM input are SDXL's. ComfyUI's ops skip weight
initialisation, so every tensor is initialised here with a fixed seed. ComfyUI is imported on first use (the host
fixture must set it up first).
"""

import importlib
import math

import torch

MODEL_CHANNELS = 32
TOKEN_DIM = 2048
DEPTHS = [0, 0, 2, 2, 10, 10]


def tiny_unet_config() -> dict:
    """The unet_config ComfyUI's model detection would produce for SDXL, at 32 base channels."""
    return {
        "use_checkpoint": False,
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": MODEL_CHANNELS,
        "num_res_blocks": [2, 2, 2],
        "channel_mult": [1, 2, 4],
        "transformer_depth": list(DEPTHS),
        "transformer_depth_middle": DEPTHS[-1],
        "transformer_depth_output": [DEPTHS[0]] * 3 + [DEPTHS[2]] * 3 + [DEPTHS[4]] * 3,
        "use_spatial_transformer": True,
        "use_linear_in_transformer": True,
        "context_dim": TOKEN_DIM,
        "num_classes": "sequential",
        "adm_in_channels": 2816,
        "legacy": False,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
        "num_head_channels": 16,
        "num_heads": -1,
    }


def _comfy(name: str):
    """A ComfyUI module, imported when a tiny model is first built."""
    return importlib.import_module(name)


def _patcher(base):
    """A ModelPatcher on ComfyUI's devices around a model_base model."""
    mm = _comfy("comfy.model_management")
    return _comfy("comfy.model_patcher").ModelPatcher(
        base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def _controlnet(net, manual_cast: torch.dtype | None = None):
    """A comfy.controlnet.ControlNet around a cldm ControlNet."""
    return _comfy("comfy.controlnet").ControlNet(
        net, load_device=_comfy("comfy.model_management").get_torch_device(), manual_cast_dtype=manual_cast
    )


def _init_weights(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = math.prod(p.shape[1:])
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def tiny_sdxl(
    seed: int = 0, dtype: torch.dtype = torch.float32, manual_cast: torch.dtype | None = None, in_channels: int = 4
):
    """A ModelPatcher around a tiny SDXL-topology model_base.SDXL with random weights, stored in `dtype` (and
    computed in `manual_cast`, as ComfyUI does for fp8 storage, when given); with 9 input channels, an inpainting
    model as ComfyUI makes one of an SDXL inpainting checkpoint (latent, mask and masked picture concatenated)."""
    cfg = _comfy("comfy.supported_models").SDXL(tiny_unet_config() | {"in_channels": in_channels})
    cfg.unet_config.update({"num_heads": -1, "num_head_channels": 16})  # 16-channel heads: 2 heads at 32 channels
    cfg.set_inference_dtype(dtype, manual_cast)
    base = cfg.get_model({})
    _init_weights(base.diffusion_model, seed)
    return _patcher(base)


def tiny_controlnet(
    seed: int = 1,
    depths: list[int] = DEPTHS,
    depth_middle: int = DEPTHS[-1],
    dtype: torch.dtype = torch.float32,
    manual_cast: torch.dtype | None = None,
):
    """A comfy.controlnet.ControlNet with the tiny SDXL topology (IdentityNet's shape at small width), stored in
    `dtype` (computed in `manual_cast` when given); other transformer depths make a "mid" or "small" SDXL ControlNet
    instead."""
    config = tiny_unet_config() | {"transformer_depth": list(depths), "transformer_depth_middle": depth_middle}
    for k in ("out_channels", "transformer_depth_output"):
        config.pop(k)
    ops = _comfy("comfy.ops")
    operations = ops.manual_cast if manual_cast is not None else ops.disable_weight_init
    net = _comfy("comfy.cldm.cldm").ControlNet(
        hint_channels=3, operations=operations, device=None, dtype=dtype, **config
    )
    _init_weights(net, seed)
    return _controlnet(net, manual_cast)


MID_CONTROLNET_DEPTHS = ([0, 0, 0, 0, 1, 1], 1)
"""The transformer depths of a "mid" SDXL ControlNet (e.g. controlnet-canny-sdxl-1.0-mid), as ComfyUI detects them."""


# The tiny UNet's cross-attention layers in diffusers order (SDXL's blocks at 1/10 width, docs/design.md): (layers, width).
TINY_DIFFUSERS_BLOCKS = [
    (4, 2 * MODEL_CHANNELS),
    (20, 4 * MODEL_CHANNELS),
    (30, 4 * MODEL_CHANNELS),
    (6, 2 * MODEL_CHANNELS),
    (10, 4 * MODEL_CHANNELS),
]
TINY_RESAMPLER = {"dim": 64, "depth": 2, "heads": 2, "num_queries": 4, "embedding_dim": 512}


def tiny_adapter_state_dict(seed: int = 2) -> dict:
    """An ip-adapter.bin-layout dict ({'image_proj', 'ip_adapter'}) for the tiny UNet, random weights."""
    gen = torch.Generator().manual_seed(seed)
    d, heads, queries, emb = (TINY_RESAMPLER[k] for k in ("dim", "heads", "num_queries", "embedding_dim"))
    token_dim = TOKEN_DIM
    inner, ff = heads * 64, 4 * d

    def rand(*shape, scale=None):
        return torch.randn(*shape, generator=gen) * (scale if scale is not None else 1 / math.sqrt(shape[-1]))

    proj = {
        "latents": rand(1, queries, d),
        "proj_in.weight": rand(d, emb),
        "proj_in.bias": rand(d, scale=0.02),
        "proj_out.weight": rand(token_dim, d),
        "proj_out.bias": rand(token_dim, scale=0.02),
        "norm_out.weight": torch.ones(token_dim),
        "norm_out.bias": torch.zeros(token_dim),
    }
    for i in range(TINY_RESAMPLER["depth"]):
        proj |= {
            f"layers.{i}.0.norm1.weight": torch.ones(d),
            f"layers.{i}.0.norm1.bias": torch.zeros(d),
            f"layers.{i}.0.norm2.weight": torch.ones(d),
            f"layers.{i}.0.norm2.bias": torch.zeros(d),
            f"layers.{i}.0.to_q.weight": rand(inner, d),
            f"layers.{i}.0.to_kv.weight": rand(2 * inner, d),
            f"layers.{i}.0.to_out.weight": rand(d, inner),
            f"layers.{i}.1.0.weight": torch.ones(d),
            f"layers.{i}.1.0.bias": torch.zeros(d),
            f"layers.{i}.1.1.weight": rand(ff, d),
            f"layers.{i}.1.3.weight": rand(d, ff),
        }
    widths = [width for count, width in TINY_DIFFUSERS_BLOCKS for _ in range(count)]
    ip = {}
    for position, width in enumerate(widths):
        ip[f"{2 * position + 1}.to_k_ip.weight"] = rand(width, token_dim)
        ip[f"{2 * position + 1}.to_v_ip.weight"] = rand(width, token_dim)
    return {"image_proj": proj, "ip_adapter": ip}


def tiny_sd15(seed: int = 0):
    """A ModelPatcher around a tiny SD1.5-topology model (16 cross-attention layers, 768-wide context)."""
    config = {
        "use_checkpoint": False,
        "image_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "model_channels": MODEL_CHANNELS,
        "num_res_blocks": [2, 2, 2, 2],
        "channel_mult": [1, 2, 4, 4],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "use_spatial_transformer": True,
        "use_linear_in_transformer": False,
        "context_dim": 768,
        "legacy": False,
        "adm_in_channels": None,
        "use_temporal_attention": False,
        "use_temporal_resblock": False,
        "num_head_channels": 16,
        "num_heads": -1,
    }
    cfg = _comfy("comfy.supported_models").SD15(config)
    cfg.unet_config.update({"num_heads": -1, "num_head_channels": 16})
    cfg.set_inference_dtype(torch.float32, None)
    base = cfg.get_model({})
    _init_weights(base.diffusion_model, seed)
    return _patcher(base)


def tiny_sd15_controlnet(seed: int = 1):
    """A comfy.controlnet.ControlNet with SD1.5's 768-wide cross-attention (the wrong file for IdentityNet)."""
    config = {
        "image_size": 32,
        "in_channels": 4,
        "model_channels": MODEL_CHANNELS,
        "num_res_blocks": 2,
        "channel_mult": [1, 2],
        "transformer_depth": [1, 1, 1, 1],
        "transformer_depth_middle": 1,
        "use_spatial_transformer": True,
        "context_dim": 768,
        "num_head_channels": 16,
        "num_heads": -1,
        "legacy": False,
        "use_linear_in_transformer": False,
    }
    net = _comfy("comfy.cldm.cldm").ControlNet(
        hint_channels=3, operations=_comfy("comfy.ops").disable_weight_init, device=None, **config
    )
    _init_weights(net, seed)
    return _controlnet(net)

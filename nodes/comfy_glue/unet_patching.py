"""The identity attention put on a ComfyUI model: its cross-attention layers found, the K/V handed to the model
manager, the patches registered on a clone (and forked for that clone's clones)."""

import logging

import comfy.model_management as mm
import comfy.model_patcher
import torch
from comfy.ldm.modules.attention import SpatialTransformer
from comfy.patcher_extension import CallbacksMP

from ...instantid_core.attention import IdentityAttention, IdentityKV, RegionMask, SigmaGate
from ...instantid_core.errors import InstantIDError
from ...instantid_core.identity import IdentityTokens, InstantIDAdapter
from ...instantid_core.keypoints import FaceRegion
from ...instantid_core.unet_layers import CrossAttentionLayer
from .attn2_protocol import IdentityAttentionGuard, IdentityAttentionPatch

log = logging.getLogger(__name__)


def attn2_modules(model) -> dict[tuple[str, int, int], torch.nn.Module]:
    """Every cross-attention module of a ModelPatcher's UNet by block key, in ComfyUI's input → middle → output walk."""
    unet = model.get_model_object("diffusion_model")
    groups = [
        ("input", enumerate(getattr(unet, "input_blocks", []))),
        ("middle", [(0, getattr(unet, "middle_block", None))]),
        ("output", enumerate(getattr(unet, "output_blocks", []))),
    ]
    found = {}
    for name, blocks in groups:
        for number, block in blocks:
            for module in block or []:
                if isinstance(module, SpatialTransformer):
                    for index, transformer_block in enumerate(module.transformer_blocks):
                        if getattr(transformer_block, "attn2", None) is not None:
                            found[(name, number, index)] = transformer_block.attn2
    return found


def cross_attention_layer(key: tuple[str, int, int], attn2: torch.nn.Module) -> CrossAttentionLayer:
    """A cross-attention module's key and widths."""
    return CrossAttentionLayer(key, attn2.to_k.in_features, attn2.to_k.out_features, attn2.heads)


def model_compute_dtype(model) -> torch.dtype:
    """The dtype the UNet computes in (its manual-cast dtype for fp8 storage, else its weight dtype)."""
    base = model.model
    return base.manual_cast_dtype or base.get_dtype()


def sigma_gate(model, start_percent: float, end_percent: float) -> SigmaGate:
    """The start/end percents as sigma bounds of this model's schedule (None where the bound never excludes)."""
    sampling = model.get_model_object("model_sampling")
    return SigmaGate(
        sigma_start=None if start_percent <= 0.0 else float(sampling.percent_to_sigma(start_percent)),
        sigma_end=None if end_percent >= 1.0 else float(sampling.percent_to_sigma(end_percent)),
    )


def kv_patcher_class() -> type:
    """The model-patcher class the host builds its own models with now: `CoreModelPatcher`, which newer ComfyUI
    rebinds at start-up (to its dynamic-VRAM patcher on NVIDIA GPUs), else the plain `ModelPatcher` (0.3.75)."""
    return getattr(comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)


def managed_kv(kv: IdentityKV) -> comfy.model_patcher.ModelPatcher:
    """Put the precomputed K/V under the model manager, so they load and offload with the UNet. Built with the host's
    current patcher class: one plain patcher among dynamic ones makes newer hosts fall back to their old freeing."""
    return kv_patcher_class()(kv, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


FORK_ON_CLONE = "instantid_fork_attention_patches"
"""ModelPatcher ON_CLONE callback key: clones get their own IdentityAttentionPatch objects."""


def _attn2_replace_patches(model) -> dict:
    """The model's attn2 replace patches by block key (the live dict, empty if there are none)."""
    return model.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})


def fork_identity_patches(parent, clone) -> None:
    """ON_CLONE callback: where the host shares our patch objects between a model and its clone (ComfyUI 0.33+
    copies only dicts and lists), give the clone its own, so another pack's `add` on the clone stays there."""
    parent_patches, clone_patches = _attn2_replace_patches(parent), _attn2_replace_patches(clone)
    for key, patch in clone_patches.items():
        if isinstance(patch, IdentityAttentionPatch) and patch is parent_patches.get(key):
            clone_patches[key] = patch.fork()


def patch_cross_attention(model, shared: IdentityAttention, modules: dict, kv_patcher) -> object:
    """A clone of `model` with the identity attention on every layer in `shared`, wrapping patches already there,
    and a guard (over the cross-attention `modules`) that keeps it working if another pack replaces our patches."""
    patched = model.clone()
    if FORK_ON_CLONE not in patched.callbacks.get(CallbacksMP.ON_CLONE, {}):
        patched.add_callback_with_key(CallbacksMP.ON_CLONE, FORK_ON_CLONE, fork_identity_patches)
    existing = _attn2_replace_patches(patched)
    for key in shared.adapter_index:
        patch = IdentityAttentionPatch(
            shared, key, modules[key], previous=existing.get(key, existing.get(key[:2])), models=lambda: [kv_patcher]
        )
        patched.set_model_attn2_replace(patch, *key)
    guard = IdentityAttentionGuard(shared, modules, models=lambda: [kv_patcher])
    patched.set_model_attn2_patch(guard.remember_input)
    patched.set_model_attn2_output_patch(guard)
    return patched


def apply_identity_attention(
    model,
    adapter: InstantIDAdapter,
    tokens: IdentityTokens,
    weight: float,
    start_percent: float,
    end_percent: float,
    weight_type: str = "linear",
    mask=None,
    node: str = "the InstantID node",
    face_region: FaceRegion | None = None,
):
    """A clone of `model` whose every cross-attention layer adds the identity attention; `model` is left untouched.

    The UNet is read once; the core pairs its layers with the adapter's K/V weights (refusing a mismatch before
    anything is built) and computes the identity K/V once, which are handed to the model manager. `node` names the
    calling node in errors about its mask; with a `face_region` (drawn at the size being generated) the identity also
    stays inside it.
    """
    modules = attn2_modules(model)
    if not modules:
        raise InstantIDError(
            f"The model ({type(model.model).__name__}) has no UNet cross-attention layers, so "
            "InstantID cannot patch it: InstantID works with SDXL checkpoints.",
            "not_sdxl",
        )
    layers = [cross_attention_layer(key, attn2) for key, attn2 in modules.items()]
    shared = adapter.identity_attention(
        layers,
        tokens,
        weight,
        weight_type,
        sigma_gate(model, start_percent, end_percent),
        RegionMask.from_mask(mask, node, face_region),
        model_compute_dtype(model),
        node,
    )
    log.info(
        "InstantID: identity attention on %d cross-attention layers (%s, %d identit%s, %.2f MB of K/V)",
        len(layers),
        weight_type,
        tokens.identities,
        "y" if tokens.identities == 1 else "ies",
        sum(p.numel() * p.element_size() for p in shared.kv.parameters()) / 2**20,
    )
    return patch_cross_attention(model, shared, modules, managed_kv(shared.kv))

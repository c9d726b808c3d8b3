"""Host glue: the one place outside the node classes that talks to ComfyUI (folders, devices, model manager, patches).

The ComfyUI internals this pack relies on (beyond the V3 node API), each checked by tests/host/test_comfy_internals.py
on every host the suite runs against:
- folders: `folder_paths.folder_names_and_paths[name]` is a (paths, extensions) pair; `add_model_folder_path`,
  `get_filename_list`, `get_full_path`, `get_folder_paths`, `models_dir`, `supported_pt_extensions`;
- the UNet: `diffusion_model.input_blocks` / `middle_block` / `output_blocks`, whose `SpatialTransformer`s hold
  `transformer_blocks[i].attn2` with `to_q`, `to_k`, `to_out[0]` and `heads`; the block key of a layer is
  `(block name, block number, transformer index)`, the middle block's number is 0;
- attention patches: `ModelPatcher.set_model_attn2_replace(patch, *key)` (a replace patch is called as
  `patch(q, k, v, extra_options)`), `set_model_attn2_patch` and `set_model_attn2_output_patch`, kept in
  `model_options["transformer_options"]["patches_replace"]["attn2"]` and `["patches"]`; a replace patch's `models()`
  are loaded with the UNet and its `to()` is called on moves (possibly with the UNet's storage dtype);
- extra_options of a layer call: `n_heads`, `cond_or_uncond`, `sigmas`, `activations_shape`, `original_shape`,
  `block`, `block_index`, `attn_precision`; `optimized_attention(q, k, v, heads, attn_precision=...,
  transformer_options=...)`;
- `comfy_execution.utils.get_executing_context()` gives the executing node's id (for messages);
- cloning: `ModelPatcher.clone()` copies `model_options` (0.3.x deep-copies patch objects, 0.33+ shares them) and
  calls the `CallbacksMP.ON_CLONE` callbacks registered with `add_callback_with_key`;
- the model manager: `comfy.model_patcher.CoreModelPatcher` (where present) is the patcher class the host uses,
  `model_management.get_torch_device` / `unet_offload_device`, `model.model.manual_cast_dtype` and `get_dtype()`,
  `model_sampling.percent_to_sigma`;
- ControlNets: `comfy.controlnet.ControlNet` with `control_model` (a cldm ControlNet with `input_blocks`,
  `middle_block`, `label_emb`), `copy()` (our subclass takes over by a `__class__` swap), `set_cond_hint(hint,
  strength, (start, end), vae=...)`, `set_previous_controlnet`, `previous_controlnet`, `get_control(x_noisy, t, cond,
  batched_number, transformer_options)` reading the context from `cond["crossattn_controlnet"]` and returning
  `{"input"|"middle"|"output": [residual or None]}`; the conditioning keys `control` and `control_apply_to_uncond`.
"""

import itertools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import comfy.controlnet
import comfy.ldm.modules.attention as comfy_attention
import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy.ldm.modules.attention import BasicTransformerBlock, SpatialTransformer
from comfy.patcher_extension import CallbacksMP
from comfy_execution.utils import get_executing_context

from ..instantid_core import doctor, download
from ..instantid_core.attention import (
    IdentityAttention,
    IdentityAttentionGuard,
    IdentityAttentionPatch,
    IdentityKV,
    RegionMask,
    SigmaGate,
)
from ..instantid_core.doctor import ModelFolders
from ..instantid_core.errors import InstantIDError
from ..instantid_core.identity import IdentityTokens, InstantIDAdapter
from ..instantid_core.keypoints import FaceRegion, KeypointLayout, draw_layouts
from ..instantid_core.model_facts import ADAPTER, IDENTITYNET, IDENTITYNET_SHAPE
from ..instantid_core.unet_layers import CrossAttentionLayer

log = logging.getLogger(__name__)

ADAPTER_FOLDER = ADAPTER.folder
FACE_PACK_FOLDER = "insightface"
SAVED_FACES = "faces"
"""The sub-folder of models/instantid that holds saved faces (not adapters)."""


def _register_folder(name: str, extensions: set[str]) -> None:
    """Add `models/<name>` to ComfyUI's folder table, keeping paths that extra_model_paths.yaml already added."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, known_extensions = folder_paths.folder_names_and_paths[name]
    folder_paths.folder_names_and_paths[name] = (paths, set(extensions) | set(known_extensions))


def register_model_folders() -> None:
    """Register `models/instantid` (adapter files) and `models/insightface` (face model packs)."""
    _register_folder(ADAPTER_FOLDER, set(folder_paths.supported_pt_extensions))
    _register_folder(FACE_PACK_FOLDER, set())


def adapter_files() -> list[str]:
    """Adapter files ComfyUI lists in models/instantid (and extra_model_paths.yaml folders), saved faces left out."""
    return [name for name in folder_paths.get_filename_list(ADAPTER_FOLDER) if not _is_saved_face(name)]


def _is_saved_face(name: str) -> bool:
    """Whether a file name ComfyUI lists in models/instantid lies in its faces/ sub-folder."""
    return name.replace("\\", "/").startswith(f"{SAVED_FACES}/")


def saved_face_files() -> list[str]:
    """Saved faces in models/instantid/faces (of every registered instantid folder), without the folder prefix."""
    return [
        name.replace("\\", "/")[len(SAVED_FACES) + 1 :]
        for name in folder_paths.get_filename_list(ADAPTER_FOLDER)
        if _is_saved_face(name)
    ]


def saved_face_path(name: str) -> str:
    """Full path of a saved face, or an error naming the folders searched."""
    path = folder_paths.get_full_path(ADAPTER_FOLDER, f"{SAVED_FACES}/{name}")
    if path is None:
        folders = [os.path.join(p, SAVED_FACES) for p in folder_paths.get_folder_paths(ADAPTER_FOLDER)]
        raise InstantIDError(f"Saved face '{name}' not found in {folders}: save it with 'InstantID Save Face'.")
    return path


def new_saved_face_path(name: str) -> str:
    """Where 'InstantID Save Face' writes a face called `name`: ComfyUI's own models/instantid/faces/<name>.safetensors
    (not a folder of extra_model_paths.yaml, which may be shared or read-only)."""
    stem = name.strip()
    if not stem or any(c in stem for c in '/\\:*?"<>|') or stem.startswith("."):
        raise InstantIDError(
            f"'{name}' cannot be a file name: use letters, digits, spaces, '-' or '_' (no folders or dots first)."
        )
    return os.path.join(folder_paths.models_dir, ADAPTER_FOLDER, SAVED_FACES, f"{stem}.safetensors")


def adapter_path(name: str) -> str:
    """Full path of an adapter file, or an error naming the folders searched."""
    path = folder_paths.get_full_path(ADAPTER_FOLDER, name)
    if path is None:
        raise InstantIDError(
            f"InstantID adapter '{name}' not found in {folder_paths.get_folder_paths(ADAPTER_FOLDER)}: "
            f"put ip-adapter.bin into models/instantid/."
        )
    return path


def doctor_report() -> tuple[str, int]:
    """InstantID Doctor's report on this ComfyUI (its version and the folders it searches for each kind of model),
    and how many problems it found."""
    try:
        from comfyui_version import __version__ as comfyui
    except ImportError:
        comfyui = "unknown (no comfyui_version module)"
    folders = ModelFolders(
        *(
            tuple(Path(p) for p in folder_paths.get_folder_paths(name))
            for name in (ADAPTER_FOLDER, IDENTITYNET.folder, FACE_PACK_FOLDER)
        )
    )
    return doctor.report(comfyui, torch, folders)


def download_models(models) -> list[str]:
    """Download these ModelDownloads into ComfyUI's own models folder (not a shared extra_model_paths.yaml one), with
    a progress bar on the node and progress lines in the console; what happened to each."""
    said = []
    for model in models:
        destination = Path(folder_paths.models_dir, model.folder, model.relative)
        bar = comfy.utils.ProgressBar(model.size)
        logged = [0]

        def progress(done: int, total: int, model=model, bar=bar, logged=logged) -> None:
            tenth = done * 10 // total
            if tenth > logged[0]:
                logged[0] = tenth
                log.info(
                    "InstantID download: %s %d%% (%s of %s bytes)", model.name, tenth * 10, f"{done:,}", f"{total:,}"
                )
            bar.update_absolute(done, total)

        said.append(download.download(model, destination, progress))
    return said


def face_pack_names() -> list[str]:
    """Face model packs (sub-folders of models/insightface/models/ in every registered insightface folder)."""
    names = set()
    for root in folder_paths.get_folder_paths(FACE_PACK_FOLDER):
        packs = os.path.join(root, "models")
        if os.path.isdir(packs):
            names.update(d for d in os.listdir(packs) if os.path.isdir(os.path.join(packs, d)))
    return sorted(names, key=lambda name: (name != "antelopev2", name)) or ["antelopev2"]


def face_pack_path(name: str) -> str:
    """The folder of a face pack: the first registered insightface folder that has models/<name>, else the first
    candidate (so the pack check names the exact folder it looked in)."""
    candidates = [os.path.join(root, "models", name) for root in folder_paths.get_folder_paths(FACE_PACK_FOLDER)]
    if not candidates:
        raise InstantIDError("No insightface model folder is registered: the InstantID pack did not start properly.")
    return next((c for c in candidates if os.path.isdir(c)), candidates[0])


def comfy_attention_fn(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, extra_options: dict
) -> torch.Tensor:
    """ComfyUI's own attention, exactly as an unpatched cross-attention layer calls it."""
    return comfy_attention.optimized_attention(
        q, k, v, heads, attn_precision=extra_options.get("attn_precision"), transformer_options=extra_options
    )


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
            shared, key, previous=existing.get(key, existing.get(key[:2])), models=lambda: [kv_patcher]
        )
        patched.set_model_attn2_replace(patch, *key)
    guard = IdentityAttentionGuard(shared, modules, models=lambda: [kv_patcher])
    patched.set_model_attn2_patch(guard.remember_input)
    patched.set_model_attn2_output_patch(guard)
    return patched


def node_label(display_name: str) -> str:
    """How messages name the node ComfyUI is executing now: 'display name' (node #id)."""
    context = get_executing_context()
    return f"'{display_name}'" + (f" (node #{context.node_id})" if context is not None else "")


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
            "InstantID cannot patch it: InstantID works with SDXL checkpoints."
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
        comfy_attention_fn,
    )
    log.info(
        "InstantID: identity attention on %d cross-attention layers (%s, %.2f MB of K/V)",
        len(layers),
        weight_type,
        sum(p.numel() * p.element_size() for p in shared.kv.parameters()) / 2**20,
    )
    return patch_cross_attention(model, shared, modules, managed_kv(shared.kv))


class IdentityNetControl(comfy.controlnet.ControlNet):
    """IdentityNet: a ComfyUI ControlNet whose cross-attention context is the face tokens, not the text.

    The tokens travel with the ControlNet object (row 0 conditional, row 1 unconditional, picked per batch half by
    `cond_or_uncond`), so ControlNets chained before or after it keep their own context, and two identities can
    each have their own IdentityNet. An optional region limits its residuals. A keypoint image drawn by an InstantID
    node comes with its layouts: the hint is then drawn anew at the size being generated, as IdentityNet was trained.
    """

    identity_tokens: torch.Tensor
    region: RegionMask | None
    keypoints: tuple[KeypointLayout, ...] | None

    @classmethod
    def from_controlnet(
        cls,
        control_net,
        tokens: torch.Tensor,
        region: RegionMask | None,
        keypoints: tuple[KeypointLayout, ...] | None = None,
    ):
        """A copy of a loaded ControlNet that runs as IdentityNet with these (2, T, D) tokens (and keypoint layouts
        to draw its hint from)."""
        copy = comfy.controlnet.ControlNet.copy(control_net)
        copy.__class__ = cls
        copy.identity_tokens = tokens
        copy.region = region
        copy.keypoints = keypoints
        return copy

    def copy(self):
        """ComfyUI copies ControlNets per sampling; the copy stays an IdentityNet with the same tokens."""
        return IdentityNetControl.from_controlnet(self, self.identity_tokens, self.region, self.keypoints)

    def draw_hint(self, width: int, height: int) -> None:
        """Make the hint the keypoint drawing at width×height (once per size), so ComfyUI's resize of it to the
        generation size leaves it as drawn."""
        if self.keypoints is None or tuple(self.cond_hint_original.shape[-2:]) == (height, width):
            return
        pictures = torch.from_numpy(draw_layouts(self.keypoints, (width, height)))
        self.cond_hint_original = pictures.movedim(-1, 1).float() / 255.0
        self.cond_hint = None

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        """The previous ControlNets' residuals (with the text context) plus ours (with the face tokens)."""
        self.draw_hint(x_noisy.shape[-1] * self.compression_ratio, x_noisy.shape[-2] * self.compression_ratio)
        previous = self.previous_controlnet
        control_prev = previous.get_control(x_noisy, t, cond, batched_number, transformer_options) if previous else None
        chunks = transformer_options["cond_or_uncond"]
        rows = x_noisy.shape[0] // len(chunks)
        context = torch.cat([self.identity_tokens[c : c + 1].expand(rows, -1, -1) for c in chunks])
        self.previous_controlnet = None  # our own residuals only; the previous ones are merged below
        try:
            own = super().get_control(
                x_noisy, t, dict(cond, crossattn_controlnet=context), batched_number, transformer_options
            )
        finally:
            self.previous_controlnet = previous
        if own is not None and self.region is not None:
            latent_hw = tuple(x_noisy.shape[-2:])
            own = {
                name: [
                    None
                    if r is None
                    else r
                    * self.region.for_layer(*r.shape[-2:], rows, latent_hw, r.device, r.dtype, faces_mode="bilinear")
                    .reshape(rows, 1, *r.shape[-2:])
                    .repeat(len(chunks), 1, 1, 1)
                    for r in residuals
                ]
                for name, residuals in own.items()
            }
        return _sum_controls(own, control_prev)


def _sum_controls(own: dict | None, previous: dict | None) -> dict | None:
    """Residuals of two ControlNets added position by position (either may be None)."""
    if own is None or previous is None:
        return own if own is not None else previous
    merged = {}
    for name in set(own) | set(previous):
        a, b = own.get(name, []), previous.get(name, [])
        merged[name] = [x if y is None else y if x is None else x + y for x, y in itertools.zip_longest(a, b)]
    return merged


def transformer_depths(control_model) -> tuple[tuple[int, ...], int]:
    """The number of transformer blocks in each input block and in the middle block of a ComfyUI ControlNet."""

    def depth(block) -> int:
        return sum(isinstance(m, BasicTransformerBlock) for m in block.modules())

    return tuple(depth(block) for block in control_model.input_blocks), depth(control_model.middle_block)


def check_identitynet(control_net) -> None:
    """Refuse a CONTROL_NET that is missing, is not an SDXL ControlNet (its context and ADM widths), or has not
    IdentityNet's block structure (a "mid" or "small" SDXL ControlNet). A full-size SDXL ControlNet of another kind
    has IdentityNet's shapes exactly and cannot be told apart."""
    expected = (
        f"load InstantID's IdentityNet ({IDENTITYNET.install_path}, from {IDENTITYNET.repo}) "
        "with ComfyUI's 'Load ControlNet Model' node"
    )
    if control_net is None:
        raise InstantIDError(f"No ControlNet is connected to 'control_net': {expected}.")
    if not isinstance(control_net, comfy.controlnet.ControlNet) or getattr(control_net, "control_model", None) is None:
        raise InstantIDError(
            f"The 'control_net' input is a {type(control_net).__name__}, not a ControlNet model: {expected}."
        )
    model = control_net.control_model
    widths = {block.attn2.to_k.in_features for block in model.modules() if isinstance(block, BasicTransformerBlock)}
    label_emb = getattr(model, "label_emb", None)
    first_linear = next((m for m in label_emb.modules() if isinstance(m, torch.nn.Linear)), None) if label_emb else None
    adm_width = first_linear.in_features if first_linear is not None else None
    if widths != {IDENTITYNET_SHAPE.context_width} or adm_width != IDENTITYNET_SHAPE.adm_width:
        found = (
            f"cross-attention width {', '.join(map(str, sorted(widths))) or 'none'}, ADM input {adm_width or 'none'}"
        )
        raise InstantIDError(
            "The ControlNet connected to 'control_net' is not an SDXL ControlNet with "
            f"{IDENTITYNET_SHAPE.context_width}-wide cross-attention ({found}), so it is not IdentityNet: {expected}."
        )
    depths = transformer_depths(model)
    if depths != IDENTITYNET_SHAPE.depths:
        (found_input, found_middle), (want_input, want_middle) = depths, IDENTITYNET_SHAPE.depths
        raise InstantIDError(
            f"The ControlNet connected to 'control_net' has {sum(found_input) + found_middle} transformer blocks "
            f"({', '.join(str(d) for d in found_input if d)} in its input blocks, {found_middle} in the middle) where "
            f"IdentityNet has {sum(want_input) + want_middle} ({', '.join(str(d) for d in want_input if d)}, "
            f"{want_middle} in the middle): it is a smaller SDXL ControlNet (a 'mid' or 'small' one), not IdentityNet: "
            f"{expected}."
        )


def apply_identitynet(
    positive,
    negative,
    control_net,
    tokens: IdentityTokens,
    image: torch.Tensor,
    strength: float,
    start_percent: float,
    end_percent: float,
    mask=None,
    vae=None,
    node: str = "the InstantID node",
    face_region: FaceRegion | None = None,
    layouts: Sequence[KeypointLayout] | None = None,
):
    """(positive, negative) with IdentityNet attached to every entry, chained after any ControlNet already there.

    With the `layouts` the keypoint image was drawn from (one per picture), IdentityNet draws them again at the
    generation size; without, it resizes the image like any ControlNet hint, and says so once in the log. With a
    `face_region` (drawn at the generation size too), IdentityNet's residuals stay inside it. `node` names the
    calling node in errors about its mask and in the log.
    """
    check_identitynet(control_net)
    if layouts is None:
        log.info(
            "%s: the keypoint image came without its keypoints, so IdentityNet resizes it to the generation size "
            "(its dots grow or shrink with it) instead of drawing it there: connect the keypoint node's 'kps' output "
            "to keep IdentityNet's 10-px dots.",
            node,
        )
    else:
        layouts = tuple(layouts)
    region = RegionMask.from_mask(mask, node, face_region)
    hint = image.movedim(-1, 1)
    stacked = tokens.stacked()
    copies = {}
    out = []
    for conditioning in (positive, negative):
        entries = []
        for embedding, options in conditioning:
            previous = options.get("control")
            if previous not in copies:  # one copy per previous ControlNet, shared by positive and negative
                net = IdentityNetControl.from_controlnet(control_net, stacked, region, layouts)
                net = net.set_cond_hint(hint, strength, (start_percent, end_percent), vae=vae)
                net.set_previous_controlnet(previous)
                copies[previous] = net
            entries.append([embedding, dict(options, control=copies[previous], control_apply_to_uncond=False)])
        out.append(entries)
    return out[0], out[1]


def work_device() -> torch.device:
    """The device ComfyUI computes on."""
    return mm.get_torch_device()

"""Decoupled cross-attention: the identity tokens' attention added to every UNet cross-attention layer.

Each layer computes `attn(q, K_text, V_text) + scale · gate · mask · attn(q, K_id, V_id)` where K_id/V_id are the
face tokens projected by the adapter's `to_k_ip`/`to_v_ip` once per apply (`IdentityKV`), `gate` is 1 inside the
start/end sigma range (a device-side comparison, no host synchronisation) and `mask` limits the region.
Composition with other packs' attention patches, in every order:
- a replace patch already registered at the layer (another pack's, or a second InstantID apply) is called in place of
  the plain text attention, so both apply;
- packs in the IP-Adapter style (cubiq's ComfyUI_IPAdapter_plus, PuLID and the packs that copied their patch class)
  do not replace a registered patch: they call `existing.add(callback, **kwargs)` on it. Our patch speaks that
  protocol (`IdentityAttentionPatch.add`), and each model clone gets its own light patch objects (`fork`), so an
  `add` on a clone never reaches the model it was cloned from;
- a patch that replaces ours later is caught by the guard (`IdentityAttentionGuard`, an output patch, which hosts
  append rather than replace): it then adds the identity term itself.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from .errors import InstantIDError
from .keypoints import FaceRegion
from .unet_layers import CrossAttentionLayer

# attention(q, k, v, heads, extra_options) -> out, shapes [B, tokens, heads*dim]
APPLIED = "instantid_applied"
"""extra_options key: ids of the IdentityAttention whose replace patch ran in this layer call."""
ATTN2_INPUT = "instantid_attn2_input"
"""extra_options key: the cross-attention's input, kept by the guard in case our replace patch was replaced."""
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, dict], torch.Tensor]

WEIGHT_TYPES = (
    "linear",
    "ease in",
    "ease out",
    "ease in-out",
    "reverse in-out",
    "weak input",
    "weak output",
    "weak middle",
    "strong middle",
)
WEAK = 0.25


def layer_multipliers(weight_type: str, layers: list[CrossAttentionLayer]) -> list[float]:
    """Per-layer weight multipliers of a weight type, for layers in the UNet's input → middle → output order."""
    n = len(layers)
    depth = [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    groups = [layer.key[0] for layer in layers]
    profiles = {
        "linear": lambda t, g: 1.0,
        "ease in": lambda t, g: WEAK + (1 - WEAK) * t,
        "ease out": lambda t, g: 1 - (1 - WEAK) * t,
        "ease in-out": lambda t, g: WEAK + (1 - WEAK) * math.sin(math.pi * t),
        "reverse in-out": lambda t, g: 1 - (1 - WEAK) * math.sin(math.pi * t),
        "weak input": lambda t, g: WEAK if g == "input" else 1.0,
        "weak output": lambda t, g: WEAK if g == "output" else 1.0,
        "weak middle": lambda t, g: WEAK if g == "middle" else 1.0,
        "strong middle": lambda t, g: 1.0 if g == "middle" else WEAK,
    }
    if weight_type not in profiles:
        raise ValueError(f"unknown weight type {weight_type!r}; choose one of {WEIGHT_TYPES}")
    return [profiles[weight_type](t, g) for t, g in zip(depth, groups, strict=False)]


class IdentityKV(torch.nn.Module):
    """The precomputed identity keys and values of every layer, [2, tokens, width] each (row 0 cond, row 1 uncond)."""

    def __init__(self, kv: dict[int, tuple[torch.Tensor, torch.Tensor]]):
        super().__init__()
        self.k = torch.nn.ParameterDict(
            {str(i): torch.nn.Parameter(k, requires_grad=False) for i, (k, _) in kv.items()}
        )
        self.v = torch.nn.ParameterDict(
            {str(i): torch.nn.Parameter(v, requires_grad=False) for i, (_, v) in kv.items()}
        )

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of one adapter index."""
        return self.k[str(index)], self.v[str(index)]


@dataclass
class SigmaGate:
    """Start/end of the identity attention as sigmas (start is the larger); None bounds mean "always"."""

    sigma_start: float | None = None
    sigma_end: float | None = None
    _last: tuple = field(default=(None, None), repr=False, compare=False)

    def mask(self, sigmas: torch.Tensor) -> torch.Tensor | None:
        """A [1,1,1] bool tensor on the sigmas' device, or None when the range covers every step.

        Made once per model call: the host hands every layer of a call the same sigmas tensor.
        """
        if self.sigma_start is None and self.sigma_end is None:
            return None
        last_sigmas, last_mask = self._last
        if last_sigmas is sigmas:
            return last_mask
        sig = sigmas[:1]
        inside = torch.ones_like(sig, dtype=torch.bool)
        if self.sigma_start is not None:
            inside &= sig <= self.sigma_start
        if self.sigma_end is not None:
            inside &= sig >= self.sigma_end
        self._last = (sigmas, inside.view(1, 1, 1))
        return self._last[1]


LATENT_SCALE = 8
"""Pixels per latent pixel along each side (SDXL's VAE): the generated picture is the latent's size times this."""


@dataclass
class RegionMask:
    """Where the identity applies, resized per layer resolution and cached: a user's [M, H, W] mask (0..1), the face
    region drawn at the generation size, or both (their product). A user's mask, often painted soft, is resized
    bilinearly; the face region as InstantID's reference resizes its face mask: nearest-neighbour for the identity
    attention, bilinear for IdentityNet's residuals (`faces_mode`), so both equal the reference's on the box's edge
    cells too."""

    mask: torch.Tensor | None
    owner: str = "the InstantID node"
    faces: FaceRegion | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_mask(
        cls, mask: torch.Tensor | None, owner: str = "the InstantID node", faces: FaceRegion | None = None
    ) -> Optional["RegionMask"]:
        """A region from a ComfyUI MASK ([H, W] or [M, H, W]) given to `owner` (named in errors) and/or a face
        region; None when there is neither."""
        if mask is None and faces is None:
            return None
        return cls(None if mask is None else mask.reshape(-1, *mask.shape[-2:]).float(), owner, faces)

    def for_layer(
        self, h: int, w: int, rows: int, latent_hw: tuple[int, int], device, dtype, *, faces_mode: str
    ) -> torch.Tensor:
        """The region at the layer's h×w as [rows, h*w, 1]; row i uses mask i modulo the mask batch; the face region
        resized with interpolation `faces_mode` ("nearest" or "bilinear")."""
        key = (h, w, rows, tuple(latent_hw), str(device), dtype, faces_mode)
        if key not in self._cache:
            parts = []
            if self.mask is not None:
                self._check_aspect(latent_hw)
                parts.append(F.interpolate(self.mask.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False))
            if self.faces is not None:
                size = (latent_hw[1] * LATENT_SCALE, latent_hw[0] * LATENT_SCALE)
                faces = torch.from_numpy(self.faces(size))
                faces = faces.reshape(-1, 1, *faces.shape[-2:])
                corners = {} if faces_mode == "nearest" else {"align_corners": False}
                parts.append(F.interpolate(faces, size=(h, w), mode=faces_mode, **corners))
            m = math.prod(parts)
            m = m.reshape(m.shape[0], h * w, 1)[torch.arange(rows) % m.shape[0]]
            self._cache[key] = m.to(device=device, dtype=dtype)
        return self._cache[key]

    def _check_aspect(self, latent_hw: tuple[int, int]) -> None:
        """Refuse a mask whose aspect ratio is not the generated image's."""
        mask_h, mask_w = self.mask.shape[-2:]
        if abs(mask_w / mask_h - latent_hw[1] / latent_hw[0]) > 0.02 * latent_hw[1] / latent_hw[0]:
            raise InstantIDError(
                f"The mask given to {self.owner}: the mask is {mask_w}×{mask_h} but the image being generated is "
                f"{latent_hw[1] * LATENT_SCALE}×{latent_hw[0] * LATENT_SCALE}: use a mask with the image's aspect "
                f"ratio (e.g. made at the same size as the empty latent image)."
            )


@dataclass(frozen=True)
class IdentityAttention:
    """What every patched layer of one InstantID apply shares: K/V, scales, gate, mask, attention function."""

    kv: IdentityKV
    adapter_index: dict[tuple[str, int, int], int]
    scales: dict[tuple[str, int, int], float]
    gate: SigmaGate
    region: RegionMask | None
    attention: AttentionFn

    def identity_term(self, key, q: torch.Tensor, heads: int, extra_options: dict) -> torch.Tensor:
        """scale · gate · mask · attn(q, K_id, V_id) for one layer call, with the batch laid out as cond_or_uncond says.

        Scale and gate multiply V_id (16 tokens) rather than the layer-sized output, as attention is linear in V: a
        closed gate zeroes V_id, so the term is exactly zero, chosen on the device (no host synchronisation).
        """
        k_all, v_all = self.kv.layer(self.adapter_index[key])
        chunks = extra_options["cond_or_uncond"]
        rows = q.shape[0] // len(chunks)
        k = torch.cat([k_all[c : c + 1].expand(rows, -1, -1) for c in chunks]).to(q.device, q.dtype)
        v = torch.cat([v_all[c : c + 1].expand(rows, -1, -1) for c in chunks]).to(q.device, q.dtype) * self.scales[key]
        gate = self.gate.mask(extra_options["sigmas"])
        if gate is not None:
            v = torch.where(gate.to(v.device), v, 0.0)
        out = self.attention(q, k, v, heads, extra_options)
        if self.region is not None:
            h, w = extra_options["activations_shape"][-2:]
            latent_hw = tuple(extra_options["original_shape"][-2:])
            mask = self.region.for_layer(h, w, rows, latent_hw, q.device, out.dtype, faces_mode="nearest")
            out = out * mask.repeat(len(chunks), 1, 1)
        return out


NO_SIGMA = 999999999.9
"""The sigma the IP-Adapter-style protocol assumes when a call carries none (ComfyUI's percent_to_sigma(0.0))."""


def sigma_window(sigmas: torch.Tensor | None, sigma_start: float, sigma_end: float):
    """Whether the current sigma lies in [sigma_end, sigma_start]: a Python bool where that costs nothing (no sigmas,
    a window covering every step, sigmas on the CPU), else `device_sigma_window`, so no host synchronisation."""
    if sigma_start >= NO_SIGMA and sigma_end <= 0.0:
        return True
    if sigmas is None:
        return sigma_end <= NO_SIGMA <= sigma_start
    if sigmas.device.type == "cpu":
        return sigma_end <= float(sigmas[0]) <= sigma_start
    return device_sigma_window(sigmas, sigma_start, sigma_end)


def device_sigma_window(sigmas: torch.Tensor, sigma_start: float, sigma_end: float) -> torch.Tensor:
    """Whether sigmas[0] lies in [sigma_end, sigma_start], as a [1,1,1] bool tensor on the sigmas' device."""
    sigma = sigmas[:1]
    return ((sigma <= sigma_start) & (sigma >= sigma_end)).view(1, 1, 1)


@dataclass(frozen=True)
class AddedCallback:
    """A contribution another pack added to our patch: `callback(out, q, k, v, extra_options, **kwargs)`."""

    callback: Callable
    kwargs: dict

    def __call__(self, out: torch.Tensor, q, k, v, extra_options: dict):
        """The callback's contribution inside its sigma window, zero outside it."""
        inside = sigma_window(extra_options.get("sigmas"), self.kwargs["sigma_start"], self.kwargs["sigma_end"])
        if inside is False:
            return 0
        contribution = self.callback(out, q, k, v, extra_options, **self.kwargs)
        if inside is True or not isinstance(contribution, torch.Tensor):
            return contribution
        return torch.where(inside.to(contribution.device), contribution, 0.0)


class IdentityAttentionPatch:
    """The attn2 replace patch of one layer: the previous patch (or plain attention), the contributions other packs
    added to it, and the identity term.

    Light: the identity K/V live in `shared`; a model clone gets its own patch through `fork`.
    """

    def __init__(
        self,
        shared: IdentityAttention,
        key: tuple[str, int, int],
        previous: Callable | None = None,
        models: Callable[[], list] = list,
        added: tuple[AddedCallback, ...] = (),
    ):
        self.shared = shared
        self.key = key
        self.previous = previous
        self._models = models
        self.added = list(added)

    def add(self, callback: Callable, **kwargs) -> None:
        """The IP-Adapter-style protocol: add `callback(out, q, k, v, extra_options, **kwargs)` to this layer's
        output while `kwargs['sigma_start'] >= sigma >= kwargs['sigma_end']`."""
        self.added.append(AddedCallback(callback, kwargs))

    def fork(self) -> "IdentityAttentionPatch":
        """A copy for a cloned model: the same identity attention and previous patch, its own list of contributions."""
        return IdentityAttentionPatch(self.shared, self.key, self.previous, self._models, tuple(self.added))

    def __call__(self, q, k, v, extra_options):
        """Text attention (or the earlier patch), the added contributions, and the gated, masked identity attention,
        in q's dtype."""
        heads = extra_options["n_heads"]
        if self.previous is not None:
            out = self.previous(q, k, v, extra_options)
        else:
            out = self.shared.attention(q, k, v, heads, extra_options)
        for contribution in self.added:
            out = out + contribution(out, q, k, v, extra_options)
        extra_options.setdefault(APPLIED, set()).add(id(self.shared))
        return (out + self.shared.identity_term(self.key, q, heads, extra_options)).to(q.dtype)

    def models(self) -> list:
        """Models the host must load with the UNet: ours (the K/V) and the previous patch's."""
        previous = self.previous.models() if hasattr(self.previous, "models") else []
        return self._models() + previous

    def to(self, device_or_dtype):
        """The host's model manager owns placement (and may pass the UNet's storage dtype): nothing to move here."""
        if hasattr(self.previous, "to"):
            self.previous = self.previous.to(device_or_dtype)
        return self

    def __deepcopy__(self, memo):
        """ComfyUI 0.3.x's ModelPatcher.clone() deep-copies model_options: fork, sharing the K/V."""
        return self.fork()


class IdentityAttentionGuard:
    """Adds the identity term after a layer's cross-attention when our replace patch there was replaced later.

    `remember_input` runs before the cross-attention (an attn2 patch) and keeps a reference to its input; the guard
    itself runs after it (an attn2 output patch). When our replace patch ran, it only checks a flag.
    """

    def __init__(self, shared: IdentityAttention, attn2_modules: dict, models: Callable[[], list] = list):
        self.shared = shared
        self.attn2_modules = attn2_modules
        self._models = models

    def remember_input(self, n, context, value, extra_options):
        """attn2 patch: keep the cross-attention's input for the fallback; change nothing."""
        extra_options[ATTN2_INPUT] = n
        return n, context, value

    def __call__(self, out, extra_options):
        """attn2 output patch: out (after to_out) plus W_out · identity term if our replace patch did not run."""
        key = (*extra_options["block"], extra_options["block_index"])
        if id(self.shared) in extra_options.get(APPLIED, ()) or key not in self.shared.adapter_index:
            return out
        attn2 = self.attn2_modules[key]
        term = self.shared.identity_term(
            key, attn2.to_q(extra_options[ATTN2_INPUT]), extra_options["n_heads"], extra_options
        )
        projection = attn2.to_out[0]
        return out + projection(term) - projection(term.new_zeros(1, 1, term.shape[-1]))  # the bias cancels

    def models(self) -> list:
        """Models the host must load with the UNet: the K/V."""
        return self._models()

    def __deepcopy__(self, memo):
        """Share, never copy: ModelPatcher.clone() deep-copies model_options."""
        return self

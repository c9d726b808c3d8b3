"""Decoupled cross-attention, the math: the identity tokens' attention added to every UNet cross-attention layer.

Each layer computes `attn(q, K_text, V_text) + gate · mask · attn(q, K_id, scale · V_id)`, where K_id/V_id are the
face tokens projected by the adapter's `to_k_ip`/`to_v_ip` once per apply, V_id already multiplied by the layer's
scale (`IdentityKV`); `gate` is 1 inside the start/end sigma range and `mask` limits the region. Everything here
takes explicit arguments (the batch layout, the sigmas, the layer's and the latent's sizes, an attention function):
reading them from a host's per-call options is the host glue's job.

A layer call costs one attention over the 16 identity tokens and one addition into the layer's output; what
can be made ahead is: the K/V laid out by head for a batch layout once (`IdentityKV.laid_out`), the gate decided once
per model call (`SigmaGate.state`), the region resized once per layer size (`RegionMask.for_layer`). The term is
computed by head and added through a view of the output, so no layer-sized tensor is reshaped.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from .errors import InstantIDError
from .keypoints import FaceRegion
from .unet_layers import CrossAttentionLayer

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""attend(q, k, v) -> out, all [B, heads, tokens, dim] (q a view of the layer's [B, tokens, heads*dim]): the attention
kernel the host runs the term on."""


def attend_few_keys(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, upcast: bool = False) -> torch.Tensor:
    """Softmax attention over a few keys, [B, heads, tokens, dim] each: two batched matrix products with a float32
    softmax between them. Over 16 keys the scores are only tokens × 16 per head, so a fused kernel's tiling buys
    nothing; on a CPU this takes about half the time of PyTorch's fused attention. The scores are computed in q's dtype
    (as ComfyUI's own CPU kernels do) or, with `upcast`, in float32."""
    if upcast:
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2))
    else:
        scores = torch.matmul(q, k.transpose(-1, -2)).float()
    weights = torch.softmax(scores.mul_(q.shape[-1] ** -0.5), dim=-1)
    return torch.matmul(weights.to(v.dtype), v)


def by_head(t: torch.Tensor, heads: int) -> torch.Tensor:
    """A [B, tokens, heads*dim] tensor as a [B, heads, tokens, dim] view."""
    b, tokens, width = t.shape
    return t.view(b, tokens, heads, width // heads).transpose(1, 2)


@functools.lru_cache(maxsize=64)
def identity_rows(
    chunks: tuple[int, ...],
    images: int,
    identities: int,
    pictures: tuple[int, ...] | None = None,
    owner: str = "the InstantID node",
) -> tuple[int, ...]:
    """The row of the stacked identity tokens (identities 0..N-1, then the unconditional row N) each image of a model
    call uses. The call holds len(chunks) halves of `images` images (ComfyUI's cond_or_uncond: 0 a conditional half,
    1 an unconditional one); in a conditional half picture j takes identity j (all take identity 0 when there is
    one), in an unconditional half every image takes row N. `pictures` are the batch indices of the call's images
    where ComfyUI runs the batch in windows (None: 0..images-1). An error naming `owner` when N identities meet a
    batch of another size. Kept per layout: every layer of a model call asks the same question."""
    if identities == 1:
        own = (0,) * images
    else:
        own = tuple(range(images)) if pictures is None else tuple(pictures)
        if (pictures is None and images != identities) or max(own) >= identities:
            batch = f"{images} pictures" if pictures is None else f"picture {max(own) + 1} or more"
            raise InstantIDError(
                f"{owner} has {identities} identities, one per picture ('per picture'), but the batch being generated "
                f"has {batch}: make the latent batch {identities} pictures (its batch_size), or give one face per "
                "picture.",
                "batch_mismatch",
            )
    return tuple(index for chunk in chunks for index in (own if chunk == 0 else (identities,) * images))


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


MAX_LAYOUTS = 8
"""Batch layouts IdentityKV keeps laid out at once: a sampling uses one or two (cond+uncond, or each alone), one or
two per window where ComfyUI runs the batch in windows."""


class KVLayout:
    """Every layer's identity K/V laid out for one batch layout: [images, heads, tokens, dim] per adapter index
    (contiguous, as the kernels read them), the V of all layers in one flat buffer, so that a gate decided on the
    device zeroes them all in one operation per model call."""

    def __init__(
        self,
        kv: dict[int, tuple[torch.Tensor, torch.Tensor]],
        heads: dict[int, int],
        rows: tuple[int, ...],
        device,
        dtype,
    ):
        rows_of = torch.tensor(rows)

        def lay_out(t: torch.Tensor, index: int) -> torch.Tensor:
            return by_head(t[rows_of.to(t.device)], heads[index]).to(device, dtype).contiguous()

        self.k = {i: lay_out(k, i) for i, (k, _) in kv.items()}
        values = [lay_out(v, i) for i, (_, v) in kv.items()]
        self.v_flat = torch.cat([v.reshape(-1) for v in values])
        self._shapes = {i: v.shape for i, v in zip(kv, values, strict=True)}
        self.v = self._views(self.v_flat)
        self._gated: tuple[torch.Tensor | None, dict[int, torch.Tensor]] = (None, {})

    def _views(self, flat: torch.Tensor) -> dict[int, torch.Tensor]:
        """Per adapter index, its V as a view of a flat buffer laid out like v_flat."""
        views, start = {}, 0
        for index, shape in self._shapes.items():
            views[index] = flat[start : start + shape.numel()].view(shape)
            start += shape.numel()
        return views

    def values(self, gate: bool | torch.Tensor) -> dict[int, torch.Tensor]:
        """Per adapter index, V under the gate: V itself when open, zeros where a device gate is closed (made once
        per gate tensor, that is once per model call)."""
        if gate is True:
            return self.v
        made_for, views = self._gated
        if made_for is not gate:
            views = self._views(torch.where(gate.reshape(1), self.v_flat, 0.0))
            self._gated = (gate, views)
        return views


class IdentityKV(torch.nn.Module):
    """The identity keys and values of every layer, [N + 1, tokens, width] each (rows 0..N-1 the identities, row N
    the unconditional one, see `identity_rows`), V already multiplied by its layer's scale, and the number of heads
    of each layer's attention; a host's model manager moves them with the UNet.

    Per batch layout (the row each image of a model call uses, device, dtype) they are laid out by head once and kept
    (`KVLayout`); moving the module drops those copies, so none stays behind on a device the K/V left.
    """

    def __init__(self, kv: dict[int, tuple[torch.Tensor, torch.Tensor]], heads: dict[int, int]):
        super().__init__()
        self.heads = dict(heads)
        self.identities = next(iter(kv.values()))[0].shape[0] - 1  # every row but the unconditional one
        self.k = torch.nn.ParameterDict(
            {str(i): torch.nn.Parameter(k, requires_grad=False) for i, (k, _) in kv.items()}
        )
        self.v = torch.nn.ParameterDict(
            {str(i): torch.nn.Parameter(v, requires_grad=False) for i, (_, v) in kv.items()}
        )
        self._layouts: dict[tuple, KVLayout] = {}

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of one adapter index, [N + 1, tokens, width] each."""
        return self.k[str(index)], self.v[str(index)]

    def laid_out(self, rows: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> KVLayout:
        """Every layer's K/V for a model call whose image i uses K/V row rows[i], on `device` in `dtype`: made once
        per layout."""
        key = (rows, device, dtype)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
            pairs = {int(i): self.layer(int(i)) for i in self.k}
            layout = self._layouts[key] = KVLayout(pairs, self.heads, rows, device, dtype)
        return layout

    def _apply(self, fn, *args, **kwargs):
        """Moving or casting the K/V drops the laid-out copies (they are made again where the K/V are used next)."""
        self._layouts.clear()
        return super()._apply(fn, *args, **kwargs)


@dataclass
class SigmaGate:
    """Start/end of the identity attention as sigmas (start is the larger); None bounds mean "always"."""

    sigma_start: float | None = None
    sigma_end: float | None = None
    _last: tuple = field(default=(None, True), repr=False, compare=False)

    def state(self, sigmas: torch.Tensor) -> bool | torch.Tensor:
        """Whether the identity applies at sigmas[0]: True or False where that is known without a device read (no
        bounds, or sigmas on the CPU), else a [1,1,1] bool tensor on the sigmas' device, so the host never waits
        for the device. Decided once per model call: every layer of a call gets the same sigmas tensor."""
        if self.sigma_start is None and self.sigma_end is None:
            return True
        last_sigmas, last_state = self._last
        if last_sigmas is sigmas:
            return last_state
        if sigmas.device.type == "cpu":
            sigma = float(sigmas[0])
            state = (self.sigma_start is None or sigma <= self.sigma_start) and (
                self.sigma_end is None or sigma >= self.sigma_end
            )
        else:
            sig = sigmas[:1]
            inside = torch.ones_like(sig, dtype=torch.bool)
            if self.sigma_start is not None:
                inside &= sig <= self.sigma_start
            if self.sigma_end is not None:
                inside &= sig >= self.sigma_end
            state = inside.view(1, 1, 1)
        self._last = (sigmas, state)
        return state


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
        self,
        h: int,
        w: int,
        rows: int,
        latent_hw: tuple[int, int],
        device,
        dtype,
        *,
        faces_mode: str,
        halves: int = 1,
        pictures: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """The region at the layer's h×w as [halves * rows, h*w, 1]: row i of each half uses mask i (or, where
        ComfyUI runs the batch in windows, mask pictures[i]) modulo the mask batch; the face region resized with
        interpolation `faces_mode` ("nearest" or "bilinear"). Made once per layer size, batch layout, device and
        dtype."""
        key = (h, w, rows, halves, pictures, tuple(latent_hw), device, dtype, faces_mode)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
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
        images = torch.arange(rows) if pictures is None else torch.tensor(pictures)
        m = m.reshape(m.shape[0], h * w, 1)[images % m.shape[0]].repeat(halves, 1, 1)
        if len(self._cache) >= MAX_REGION_SIZES:
            self._cache.clear()
        self._cache[key] = m.to(device=device, dtype=dtype)
        return self._cache[key]

    def _check_aspect(self, latent_hw: tuple[int, int]) -> None:
        """Refuse a mask whose aspect ratio is not the generated image's."""
        mask_h, mask_w = self.mask.shape[-2:]
        if abs(mask_w / mask_h - latent_hw[1] / latent_hw[0]) > 0.02 * latent_hw[1] / latent_hw[0]:
            raise InstantIDError(
                f"The mask given to {self.owner}: the mask is {mask_w}×{mask_h} but the image being generated is "
                f"{latent_hw[1] * LATENT_SCALE}×{latent_hw[0] * LATENT_SCALE}: use a mask with the image's aspect "
                f"ratio (e.g. made at the same size as the empty latent image).",
                "mask_aspect",
            )


MAX_REGION_SIZES = 32
"""Resized regions a RegionMask keeps: SDXL's layers come in 3 sizes, so this holds several generation sizes and
batch layouts, and a long session of changing sizes never grows it further."""


@dataclass(frozen=True)
class LayerCall:
    """What the identity term of one layer call depends on besides q: the batch layout (whether each batch half is
    conditional or not, and which pictures of the batch the call holds where ComfyUI runs the batch in windows),
    the sigmas of the step, the layer's h×w and the latent's h×w (for the region), and the attention kernel to run
    the term on."""

    chunks: tuple[int, ...]
    sigmas: torch.Tensor
    layer_hw: tuple[int, int]
    latent_hw: tuple[int, int]
    attend: Attend
    pictures: tuple[int, ...] | None = None


@dataclass(frozen=True)
class IdentityAttention:
    """What every patched layer of one InstantID apply shares: K/V (V scaled per layer), gate, region, and the node
    that made it (named in errors)."""

    kv: IdentityKV
    adapter_index: dict[tuple[str, int, int], int]
    gate: SigmaGate
    region: RegionMask | None
    owner: str = "the InstantID node"

    def identity_term(self, key, q: torch.Tensor, heads: int, call: LayerCall) -> torch.Tensor | None:
        """gate · mask · attn(q, K_id, scale · V_id) for one layer call, [B, tokens, heads*dim] in q's dtype; None when
        the gate is known to be closed (the term is then exactly zero)."""
        term = self.term_by_head(key, q, heads, call)
        return None if term is None else term.transpose(1, 2).reshape(q.shape)

    def add_to(
        self, out: torch.Tensor, key, q: torch.Tensor, heads: int, call: LayerCall, *, own: bool
    ) -> torch.Tensor:
        """out + the identity term of this layer call; in place, through a by-head view of out, when `own` (out is a
        fresh tensor of the caller's, in q's dtype)."""
        term = self.term_by_head(key, q, heads, call)
        if term is None:
            return out
        if own:
            by_head(out, heads).add_(term)
            return out
        return out + term.transpose(1, 2).reshape(out.shape)

    def term_by_head(self, key, q: torch.Tensor, heads: int, call: LayerCall) -> torch.Tensor | None:
        """The identity term as [B, heads, tokens, dim]; None when the gate is known to be closed.

        A gate decided on the device zeroes V_id (16 tokens) rather than the layer-sized output, as attention is
        linear in V: the term is then exactly zero, chosen without a host synchronisation.
        """
        gate = self.gate.state(call.sigmas)
        if gate is False:
            return None
        index, rows = self.adapter_index[key], q.shape[0] // len(call.chunks)
        kv_rows = identity_rows(call.chunks, rows, self.kv.identities, call.pictures, self.owner)
        layout = self.kv.laid_out(kv_rows, q.device, q.dtype)
        term = call.attend(by_head(q, heads), layout.k[index], layout.values(gate)[index])
        if self.region is not None:
            region = self.region.for_layer(
                *call.layer_hw,
                rows,
                call.latent_hw,
                q.device,
                term.dtype,
                faces_mode="nearest",
                halves=len(call.chunks),
                pictures=call.pictures,
            )
            term = term.mul_(region.unsqueeze(1))
        return term

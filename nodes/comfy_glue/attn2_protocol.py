"""ComfyUI's attn2 patch protocol, spoken by the identity attention: the replace patch, the guard, the contributions
other packs add, and everything that reads a layer call's `extra_options`.

Composition with other packs' attention patches, in every order:
- a replace patch already registered at the layer (another pack's, or a second InstantID apply) is called in place of
  the plain text attention, so both apply;
- packs in the IP-Adapter style (cubiq's ComfyUI_IPAdapter_plus, PuLID and the packs that copied their patch class)
  do not replace a registered patch: they call `existing.add(callback, **kwargs)` on it. Our patch speaks that
  protocol (`IdentityAttentionPatch.add`), and each model clone gets its own light patch objects (`fork`), so an
  `add` on a clone never reaches the model it was cloned from;
- a patch that replaces ours later is caught by the guard (`IdentityAttentionGuard`, an output patch, which hosts
  append rather than replace): it then adds the identity term itself.

The guard relies on one dict being shared by the three patches of a block call: ComfyUI hands the same
`extra_options` to the attn2 patches, the attn2 replace patch and the attn2 output patches of one transformer block
call, so a flag set by the replace patch (`APPLIED`) and the input kept by the attn2 patch (`ATTN2_INPUT`) are seen
by the output patch.
"""

import functools
from collections.abc import Callable

import comfy.ldm.modules.attention as comfy_attention
import torch

from ...instantid_core.attention import Attend, IdentityAttention, LayerCall, attend_few_keys

APPLIED = "instantid_applied"
"""extra_options key: ids of the IdentityAttention whose replace patch ran in this layer call."""
ATTN2_INPUT = "instantid_attn2_input"
"""extra_options key: the cross-attention's input, kept by the guard in case our replace patch was replaced."""


def kernel_options(extra_options: dict) -> dict:
    """The keyword arguments ComfyUI's attention kernels take from a layer call: its precision and its options."""
    return {"attn_precision": extra_options.get("attn_precision"), "transformer_options": extra_options}


def layer_attention(module: torch.nn.Module, extra_options: dict):
    """The attention an unpatched cross-attention layer runs, as attend(q, k, v, heads): ComfyUI's
    `optimized_attention` with the call's precision and options, and the layer's own kernel where the host gives
    layers one (`comfy_attention`, passed on as `preferred_attention`)."""
    options = kernel_options(extra_options)
    preferred = getattr(module, "comfy_attention", None)
    if preferred is not None:
        options["preferred_attention"] = preferred

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
        return comfy_attention.optimized_attention(q, k, v, heads, **options)

    return attend


CONTEXT_WINDOW = "context_window"
"""transformer_options key of the window ComfyUI runs a model call on when it splits a batch into context windows."""
OVERRIDE = "optimized_attention_override"
"""transformer_options key under which a pack replaces every ComfyUI attention kernel (read by `wrap_attn`)."""


def identity_attention_kernel(extra_options: dict, q: torch.Tensor) -> Attend:
    """The attention over the 16 identity tokens, by head (`Attend`), whatever kernel ComfyUI picked for long key
    sequences (over 16 keys the scores take a few MB at most, so bounding their memory buys nothing): on a CPU the
    core's `attend_few_keys`, at the precision ComfyUI's rule gives the layer (`get_attn_precision`); elsewhere
    ComfyUI's SDPA attention (`attention_pytorch`, its default on GPUs), as the reference IP-Adapter processor computes
    it. An attention override another pack registered in the call's options is honoured: the term then goes through
    ComfyUI's kernel, which hands it to the override."""
    options = kernel_options(extra_options)
    if q.device.type == "cpu" and OVERRIDE not in extra_options:
        precision = comfy_attention.get_attn_precision(options["attn_precision"], q.dtype)
        return functools.partial(attend_few_keys, upcast=precision == torch.float32)

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return comfy_attention.attention_pytorch(
            q, k, v, q.shape[1], skip_reshape=True, skip_output_reshape=True, **options
        )

    return attend


def batch_pictures(transformer_options: dict) -> tuple[int, ...] | None:
    """The pictures of the batch a model call holds where ComfyUI runs the batch in windows (a context window over
    the batch dimension), as the window itself picks them from the batch (`get_tensor`: its `index_list`, after the
    anchor picture newer ComfyUI puts first); None when the call holds the whole batch."""
    window = transformer_options.get(CONTEXT_WINDOW)
    if window is None or getattr(window, "dim", 0) != 0:
        return None
    batch = torch.arange(max(window.index_list) + 2)  # as long as any batch the window could index
    return tuple(int(i) for i in window.get_tensor(batch, dim=0).tolist())


def layer_call(extra_options: dict, q: torch.Tensor) -> LayerCall:
    """The core's view of one layer call of query q, read from ComfyUI's extra_options."""
    return LayerCall(
        chunks=tuple(extra_options["cond_or_uncond"]),
        sigmas=extra_options["sigmas"],
        layer_hw=tuple(extra_options["activations_shape"][-2:]),
        latent_hw=tuple(extra_options["original_shape"][-2:]),
        attend=identity_attention_kernel(extra_options, q),
        pictures=batch_pictures(extra_options),
    )


NO_SIGMA = 999999999.9
"""The sigma the IP-Adapter-style protocol assumes when a call carries none (ComfyUI's percent_to_sigma(0.0))."""


class AddedCallback:
    """A contribution another pack added to our patch: `callback(out, q, k, v, extra_options, **kwargs)`, inside its
    sigma window (decided once per model call)."""

    def __init__(self, callback: Callable, kwargs: dict):
        self.callback = callback
        self.kwargs = kwargs
        self._last = (None, True)

    def window(self, sigmas: torch.Tensor | None):
        """Whether the current sigma lies in [sigma_end, sigma_start]: a Python bool where that costs nothing (no
        sigmas, a window covering every step, sigmas on the CPU), else a [1,1,1] bool tensor on the sigmas' device,
        so no host synchronisation; made once per sigmas tensor, that is once per model call."""
        start, end = self.kwargs["sigma_start"], self.kwargs["sigma_end"]
        if start >= NO_SIGMA and end <= 0.0:
            return True
        if sigmas is None:
            return end <= NO_SIGMA <= start
        last_sigmas, inside = self._last
        if last_sigmas is not sigmas:
            if sigmas.device.type == "cpu":
                inside = end <= float(sigmas[0]) <= start
            else:
                sigma = sigmas[:1]
                inside = ((sigma <= start) & (sigma >= end)).view(1, 1, 1)
            self._last = (sigmas, inside)
        return inside

    def __call__(self, out: torch.Tensor, q, k, v, extra_options: dict):
        """The callback's contribution inside its sigma window, zero outside it."""
        inside = self.window(extra_options.get("sigmas"))
        if inside is False:
            return 0
        contribution = self.callback(out, q, k, v, extra_options, **self.kwargs)
        if inside is True or not isinstance(contribution, torch.Tensor):
            return contribution
        return torch.where(inside.to(contribution.device), contribution, 0.0)


class IdentityAttentionPatch:
    """The attn2 replace patch of one layer: the previous patch (or the layer's plain attention), the contributions
    other packs added to it, and the identity term.

    Light: the identity K/V live in `shared`; a model clone gets its own patch through `fork`.
    """

    def __init__(
        self,
        shared: IdentityAttention,
        key: tuple[str, int, int],
        module: torch.nn.Module,
        previous: Callable | None = None,
        models: Callable[[], list] = list,
        added: tuple[AddedCallback, ...] = (),
    ):
        self.shared = shared
        self.key = key
        self.module = module
        self.previous = previous
        self._models = models
        self.added = list(added)

    def add(self, callback: Callable, **kwargs) -> None:
        """The IP-Adapter-style protocol: add `callback(out, q, k, v, extra_options, **kwargs)` to this layer's
        output while `kwargs['sigma_start'] >= sigma >= kwargs['sigma_end']`."""
        self.added.append(AddedCallback(callback, kwargs))

    def fork(self) -> "IdentityAttentionPatch":
        """A copy for a cloned model: the same identity attention and previous patch, its own list of contributions."""
        return IdentityAttentionPatch(
            self.shared, self.key, self.module, self.previous, self._models, tuple(self.added)
        )

    def __call__(self, q, k, v, extra_options):
        """Text attention (or the earlier patch), the added contributions, and the gated, masked identity attention,
        in q's dtype."""
        if self.previous is not None:
            out = self.previous(q, k, v, extra_options)
        else:
            out = layer_attention(self.module, extra_options)(q, k, v, extra_options["n_heads"])
        own = self.previous is None or bool(self.added)
        for contribution in self.added:
            out = out + contribution(out, q, k, v, extra_options)
        if out.dtype != q.dtype:
            out, own = out.to(q.dtype), True
        return self.add_identity(out, q, extra_options, own)

    def add_identity(self, out: torch.Tensor, q, extra_options: dict, own: bool) -> torch.Tensor:
        """out plus this layer's identity term (in place when `own`), and the layer marked as done for the guard."""
        extra_options.setdefault(APPLIED, set()).add(id(self.shared))
        return self.shared.add_to(out, self.key, q, extra_options["n_heads"], layer_call(extra_options, q), own=own)

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
        if id(self.shared) in extra_options.get(APPLIED, ()):
            return out
        key = (*extra_options["block"], extra_options["block_index"])
        if key not in self.shared.adapter_index:
            return out
        attn2 = self.attn2_modules[key]
        q = attn2.to_q(extra_options[ATTN2_INPUT])
        term = self.shared.identity_term(key, q, extra_options["n_heads"], layer_call(extra_options, q))
        if term is None:
            return out
        projection = attn2.to_out[0]
        return out + projection(term) - projection(term.new_zeros(1, 1, term.shape[-1]))  # the bias cancels

    def models(self) -> list:
        """Models the host must load with the UNet: the K/V."""
        return self._models()

    def __deepcopy__(self, memo):
        """Share, never copy: ModelPatcher.clone() deep-copies model_options."""
        return self

"""The attention-patch protocol of IP-Adapter-style packs, re-implemented from its description for composition tests.

What those packs (cubiq's ComfyUI_IPAdapter_plus, PuLID and the packs that copied their patch class) do when they
apply to a model:
- they clone the model first;
- for each cross-attention key, if no `attn2` replace patch is registered, they register their own patch object;
  if one is registered, they call `existing.add(callback, **kwargs)` on it and keep the dict entry as it is (so `add`
  mutates the object in place);
- their patch object calls plain attention once, then for each registered callback whose
  `kwargs["sigma_start"] >= sigma >= kwargs["sigma_end"]` adds `callback(out, q, k, v, extra_options, **kwargs)` to
  the output, and returns it in q's dtype.

The callback here attends to a few random tokens of its own, so its contribution depends on q (it reacts to the
layer's input, as the real one does) and differs per apply (`tag`); every call is recorded in CALLS.
"""

import torch

NO_SIGMA = 999999999.9  # the sigma those packs assume when a call carries none
TOKENS = 4


def plain_attention(q, k, v, heads):
    """ComfyUI's attention, as those packs call it."""
    import comfy.ldm.modules.attention as attention

    return attention.optimized_attention(q, k, v, heads)


class AddProtocolPatch:
    """Their patch object: plain attention once, then every callback inside its sigma window, in q's dtype."""

    def __init__(self, callback, **kwargs):
        self.callbacks = [(callback, kwargs)]

    def add(self, callback, **kwargs):
        """Register one more callback on this layer (what a later apply does instead of replacing the patch)."""
        self.callbacks.append((callback, kwargs))

    def __call__(self, q, k, v, extra_options):
        """Plain attention plus the callbacks whose window holds the current sigma."""
        out = plain_attention(q, k, v, extra_options["n_heads"])
        sigma = float(extra_options["sigmas"][0]) if "sigmas" in extra_options else NO_SIGMA
        for callback, kwargs in self.callbacks:
            if kwargs["sigma_start"] >= sigma >= kwargs["sigma_end"]:
                out = out + callback(out, q, k, v, extra_options, **kwargs)
        return out.to(q.dtype)


CALLS: list = []
"""(tag, block key) of every callback call, in order. Kept at module level: ComfyUI 0.3.x deep-copies model_options
on clone, and with it the callbacks' arguments, as it does the real packs'."""


def tokens(tag: int, width: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and values of the apply `tag` for a layer of `width` channels (the same for every call)."""
    generator = torch.Generator().manual_seed(1000 * tag + width)
    k, v = torch.randn(2, 1, TOKENS, width, generator=generator).to(device=device, dtype=dtype)
    return k, v


def other_pack_attention(out, q, k, v, extra_options, *, tag, weight, sigma_start, sigma_end):
    """weight · attention(q, own tokens): the contribution an apply adds to a layer (a module-level function, like
    the real packs' callback); the call is recorded in CALLS."""
    CALLS.append((tag, (*extra_options["block"], extra_options["block_index"])))
    keys, values = tokens(tag, q.shape[-1], q.device, q.dtype)
    rows = q.shape[0]
    return weight * plain_attention(q, keys.expand(rows, -1, -1), values.expand(rows, -1, -1), extra_options["n_heads"])


def apply_other_pack(model, keys, tag: int, weight: float = 1.0, start_percent: float = 0.0, end_percent: float = 1.0):
    """A clone of `model` with the apply `tag` made the way those packs apply: register, or `add` to what is there."""
    patched = model.clone()
    sampling = patched.get_model_object("model_sampling")
    kwargs = {
        "tag": tag,
        "weight": weight,
        "sigma_start": float(sampling.percent_to_sigma(start_percent)),
        "sigma_end": float(sampling.percent_to_sigma(end_percent)),
    }
    options = dict(patched.model_options.get("transformer_options", {}))
    options["patches_replace"] = dict(options.get("patches_replace", {}))
    attn2 = options["patches_replace"]["attn2"] = dict(options["patches_replace"].get("attn2", {}))
    for key in keys:
        if key in attn2:
            attn2[key].add(other_pack_attention, **kwargs)
        else:
            attn2[key] = AddProtocolPatch(other_pack_attention, **kwargs)
    patched.model_options["transformer_options"] = options
    return patched

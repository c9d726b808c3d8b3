"""ComfyUI's attn2 patch protocol as the identity attention speaks it: the replace patch over the layer's own
attention or an earlier patch, the contributions IP-Adapter-style packs add to it, forks for model clones, and the
layer's own kernel passed on; run on the real host's attention kernels."""

import copy

import pytest
import torch

from helpers.attention_cases import (
    HEADS,
    HEADS_OF,
    IDENTITY_KV,
    INDEX,
    KEY,
    OTHER_INDEX,
    OTHER_KEY,
    ROWS,
    WIDTH,
    H,
    W,
    by_head,
    by_head_attention,
    expected_identity,
    half_mask,
    inputs,
    left_tokens,
    randn,
    scaled_kv,
    softmax_attention,
)

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def protocol(comfy_host):
    """The glue's attn2 protocol module, as ComfyUI imported it."""
    return comfy_host.pack_module("nodes.comfy_glue.attn2_protocol")


@pytest.fixture(scope="module")
def core(comfy_host):
    """The core's attention module, as ComfyUI imported it."""
    return comfy_host.pack_module("instantid_core.attention")


class Layer(torch.nn.Module):
    """A cross-attention module as far as the patch looks at it: it may carry the host's per-layer kernel."""


def make_patch(protocol, core, gate=None, region=None, kv=None, **kwargs):
    """A replace patch for the tests' layer; the gate is open from sigma 10 to 1 unless one is given."""
    shared = core.IdentityAttention(
        kv=core.IdentityKV(scaled_kv() if kv is None else kv, HEADS_OF),
        adapter_index={KEY: INDEX, OTHER_KEY: OTHER_INDEX},
        gate=gate or core.SigmaGate(10.0, 1.0),
        region=region,
    )
    return protocol.IdentityAttentionPatch(shared, KEY, kwargs.pop("module", Layer()), **kwargs)


def options(cond_or_uncond=(1, 0), sigma=5.0, device="cpu") -> dict:
    """A layer call's extra_options, as ComfyUI fills them."""
    b = len(cond_or_uncond) * ROWS
    return {
        "n_heads": HEADS,
        "cond_or_uncond": list(cond_or_uncond),
        "sigmas": torch.full((b,), sigma, device=device),
        "activations_shape": [b, WIDTH, H, W],
        "original_shape": [b, 4, H, W],
        "attn_precision": None,
    }


def plain_attention(q, k, v):
    """The host's own attention, as an unpatched layer runs it."""
    from comfy.ldm.modules.attention import optimized_attention

    return optimized_attention(q, k, v, HEADS, attn_precision=None, transformer_options={})


@pytest.mark.parametrize("sigma", [10.5, 0.5])
def test_outside_the_gate_the_patch_returns_exactly_the_layers_own_attention(protocol, core, sigma):
    q, k, v = inputs()

    out = make_patch(protocol, core)(q, k, v, options(sigma=sigma))

    assert torch.equal(out, plain_attention(q, k, v))


@pytest.mark.parametrize("sigma", [10.0, 5.0, 1.0])
def test_inside_the_gate_the_patch_adds_the_scaled_identity_attention(protocol, core, sigma):
    q, k, v = inputs()

    out = make_patch(protocol, core)(q, k, v, options(sigma=sigma))

    torch.testing.assert_close(out, softmax_attention(q, k, v, HEADS) + expected_identity(q, (1, 0)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cond_or_uncond", [(1, 0), (0, 1), (0,), (1,)])
def test_each_batch_half_uses_the_kv_row_cond_or_uncond_names(protocol, core, cond_or_uncond):
    q, k, v = inputs(halves=len(cond_or_uncond))

    out = make_patch(protocol, core)(q, k, v, options(cond_or_uncond))

    torch.testing.assert_close(out - plain_attention(q, k, v), expected_identity(q, cond_or_uncond), atol=1e-5, rtol=0)


class PreviousPatch:
    """Another pack's attn2 patch: records its calls, returns something plain attention never would."""

    def __init__(self):
        self.calls = []
        self.moved_to = []

    def __call__(self, q, k, v, extra_options):
        self.calls.append(extra_options)
        return softmax_attention(q, k, v, extra_options["n_heads"]) * 2 + 1

    def models(self):
        return ["previous model"]

    def to(self, device_or_dtype):
        self.moved_to.append(device_or_dtype)
        return self


@pytest.mark.parametrize("sigma, with_identity", [(5.0, True), (20.0, False)], ids=["inside", "outside"])
def test_a_previous_patch_replaces_the_plain_attention_and_the_identity_is_added_to_it(
    protocol, core, sigma, with_identity
):
    q, k, v = inputs()
    previous = PreviousPatch()
    extra = options(sigma=sigma)

    out = make_patch(protocol, core, previous=previous)(q, k, v, extra)

    assert len(previous.calls) == 1 and previous.calls[0] is extra
    expected = softmax_attention(q, k, v, HEADS) * 2 + 1
    if with_identity:
        torch.testing.assert_close(out, expected + expected_identity(q, (1, 0)), atol=1e-5, rtol=0)
    else:
        assert torch.equal(out, expected)


def test_the_previous_patchs_output_is_never_changed_in_place(protocol, core):
    q, k, v = inputs()
    returned = []

    def previous(q, k, v, extra_options):
        returned.append(softmax_attention(q, k, v, HEADS))
        return returned[-1]

    out = make_patch(protocol, core, previous=previous)(q, k, v, options())

    assert out is not returned[0] and torch.equal(returned[0], softmax_attention(q, k, v, HEADS))


def test_a_masked_identity_leaves_the_masked_out_region_exactly_as_before(protocol, core):
    q, k, v = inputs()
    patch = make_patch(protocol, core, region=core.RegionMask(half_mask(32, 32)), previous=PreviousPatch())

    out = patch(q, k, v, options())

    before = softmax_attention(q, k, v, HEADS) * 2 + 1
    left = left_tokens()
    assert torch.equal(out[:, left], before[:, left])
    torch.testing.assert_close(out[:, ~left], (before + expected_identity(q, (1, 0)))[:, ~left], atol=1e-5, rtol=0)


def test_the_patch_returns_the_query_dtype(protocol, core):
    q, k, v = inputs(dtype=torch.bfloat16)

    out = make_patch(protocol, core)(q, k, v, options())

    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(
        out.float(), softmax_attention(q, k, v, HEADS).float() + expected_identity(q.float(), (1, 0)), atol=5e-2, rtol=0
    )


def by_head_inputs(dtype=torch.bfloat16):
    """q of the tests' layer and 16 identity K/V, [B, heads, tokens, dim] each, and q as the layer holds it."""
    q, _, _ = inputs(dtype=dtype)
    k, v = (randn(q.shape[0], 16, WIDTH, seed=40 + i).to(dtype) * 2 for i in range(2))
    return q, *(by_head(t) for t in (q, k, v))


@pytest.mark.parametrize("precision, upcast", [(None, False), (torch.float32, True)])
def test_on_the_cpu_the_identity_term_runs_on_the_few_key_kernel_at_the_layers_precision(
    protocol, core, precision, upcast
):
    q, q_h, k_h, v_h = by_head_inputs()

    term = protocol.identity_attention_kernel({"attn_precision": precision}, q)(q_h, k_h, v_h)

    assert torch.equal(term, core.attend_few_keys(q_h, k_h, v_h, upcast=upcast))
    assert not torch.equal(term, core.attend_few_keys(q_h, k_h, v_h, upcast=not upcast))


def test_an_attention_override_another_pack_registers_computes_the_identity_term(protocol):
    q, q_h, k_h, v_h = by_head_inputs(torch.float32)
    seen = []

    def override(kernel, *args, **kwargs):
        seen.append(kernel.__name__)
        return kernel(*args, **kwargs)

    options = {"attn_precision": None, protocol.OVERRIDE: override}
    term = protocol.identity_attention_kernel(options, q)(q_h, k_h, v_h)

    assert seen == ["attention_pytorch"]
    torch.testing.assert_close(term, by_head_attention(q_h, k_h, v_h), atol=1e-5, rtol=0)


def test_the_layers_own_kernel_is_passed_on_to_the_hosts_attention(protocol, core, monkeypatch):
    import comfy.ldm.modules.attention as comfy_attention

    seen = []
    original = comfy_attention.optimized_attention

    def recording(q, k, v, heads, **kwargs):
        seen.append(kwargs.get("preferred_attention"))
        kwargs.pop("preferred_attention", None)  # the hosts the suite runs on have no per-layer kernels to pick
        return original(q, k, v, heads, **kwargs)

    monkeypatch.setattr(comfy_attention, "optimized_attention", recording)
    q, k, v = inputs()
    with_kernel, without = Layer(), Layer()
    with_kernel.comfy_attention = object()

    make_patch(protocol, core, module=with_kernel)(q, k, v, options())
    make_patch(protocol, core, module=without)(q, k, v, options())

    assert seen == [with_kernel.comfy_attention, None]


def test_deep_copying_a_patch_forks_it_sharing_the_identity_kv(protocol, core):
    patch = make_patch(protocol, core)
    model_options = {"transformer_options": {"patches_replace": {"attn2": {KEY: patch}}}}

    copied = copy.deepcopy(model_options)["transformer_options"]["patches_replace"]["attn2"][KEY]

    assert copied is not patch and copied.shared is patch.shared and copied.key == KEY
    assert copied.module is patch.module


# --- the IP-Adapter-style `add` protocol ---------------------------------------------------------------------------


class AddedContribution:
    """A callback as IP-Adapter-style packs add it: records what it was given, returns a known tensor."""

    def __init__(self, value=0.25):
        self.value, self.calls = value, []

    def __call__(self, out, q, k, v, extra_options, **kwargs):
        self.calls.append((out.clone(), kwargs))
        return torch.full_like(q, self.value) * q.sum(-1, keepdim=True).sign()


def window(start, end):
    return {"sigma_start": start, "sigma_end": end}


@pytest.mark.parametrize("sigma, inside", [(10.5, False), (10.0, True), (5.0, True), (1.0, True), (0.5, False)])
def test_an_added_callback_contributes_exactly_inside_its_sigma_window(protocol, core, sigma, inside):
    q, k, v = inputs()
    callback = AddedContribution()
    patch = make_patch(protocol, core, gate=core.SigmaGate())
    plain = patch(q, k, v, options(sigma=sigma))

    patch.add(callback, weight=2.0, **window(10.0, 1.0))
    out = patch(q, k, v, options(sigma=sigma))

    expected = plain + callback(plain, q, k, v, {}) if inside else plain
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert len(callback.calls) == (2 if inside else 0)  # the patch's call and the expected value's own


def test_an_added_callback_gets_the_output_before_the_identity_term_and_its_own_kwargs(protocol, core):
    q, k, v = inputs()
    first, second = AddedContribution(0.1), AddedContribution(0.2)
    patch = make_patch(protocol, core, gate=core.SigmaGate())
    patch.add(first, tag="a", **window(protocol.NO_SIGMA, 0.0))
    patch.add(second, tag="b", **window(protocol.NO_SIGMA, 0.0))

    patch(q, k, v, options())

    plain = plain_attention(q, k, v)
    ((seen_first, kwargs_first),) = first.calls
    ((seen_second, kwargs_second),) = second.calls
    assert torch.equal(seen_first, plain)
    torch.testing.assert_close(seen_second, plain + first(plain, q, k, v, {}), atol=1e-6, rtol=0)
    assert kwargs_first == {"tag": "a", **window(protocol.NO_SIGMA, 0.0)} and kwargs_second["tag"] == "b"


def test_the_patch_returns_the_query_dtype_whatever_an_added_callback_returns(protocol, core):
    q, k, v = inputs(dtype=torch.bfloat16)
    patch = make_patch(protocol, core, gate=core.SigmaGate())
    patch.add(
        lambda out, q, k, v, extra_options, **kwargs: torch.ones(q.shape, dtype=torch.float32),
        **window(protocol.NO_SIGMA, 0.0),
    )

    assert patch(q, k, v, options()).dtype == torch.bfloat16


def test_an_add_on_a_fork_does_not_reach_the_patch_it_was_forked_from(protocol, core):
    q, k, v = inputs()
    earlier, later = AddedContribution(0.1), AddedContribution(0.2)
    patch = make_patch(protocol, core)
    patch.add(earlier, **window(protocol.NO_SIGMA, 0.0))
    before = patch(q, k, v, options())

    fork = patch.fork()
    fork.add(later, **window(protocol.NO_SIGMA, 0.0))

    assert torch.equal(patch(q, k, v, options()), before)
    assert not torch.equal(fork(q, k, v, options()), before)
    assert fork.shared is patch.shared and len(earlier.calls) == 3  # the fork kept the earlier contribution


def test_a_gated_patch_with_an_added_callback_never_reads_a_tensor_back_to_the_host(protocol, core):
    # every tensor on the meta device: a .item() or a Python bool of a tensor anywhere in the call would raise
    meta_kv = {n: (k.to("meta"), v.to("meta")) for n, (k, v) in scaled_kv().items()}
    q, k, v = inputs(device="meta")
    patch = make_patch(
        protocol, core, kv=meta_kv, previous=lambda q, k, v, extra_options: softmax_attention(q, k, v, 2)
    )
    patch.add(lambda out, q, k, v, extra_options, **kwargs: torch.ones_like(q), **window(10.0, 1.0))

    out = patch(q, k, v, options(device="meta"))

    assert out.shape == q.shape and out.device.type == "meta"


@pytest.mark.parametrize("start, end", [(10.0, 1.0), (999999999.9, 2.0), (3.0, 0.0), (5.0, 5.0)])
def test_an_added_callbacks_window_on_a_device_agrees_with_the_cpu_decision(protocol, start, end):
    for sigma in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 9.99, 10.0, 14.6, 1e4):
        on_cpu = protocol.AddedCallback(None, window(start, end)).window(torch.full((4,), sigma))
        on_device = protocol.AddedCallback(None, window(start, end)).window(torch.full((4,), sigma, device="meta"))
        expected = end <= sigma <= start
        assert on_cpu is expected, sigma
        if on_device is not True:  # a window covering every step needs no comparison
            assert on_device.shape == (1, 1, 1) and on_device.device.type == "meta"


def test_an_added_callbacks_window_is_decided_once_per_model_call(protocol):
    callback = protocol.AddedCallback(None, window(10.0, 1.0))
    this_step = torch.full((2,), 5.0, device="meta")

    assert callback.window(this_step) is callback.window(this_step)
    assert callback.window(torch.full((2,), 0.5)) is False


def test_a_window_covering_every_step_or_a_call_without_sigmas_costs_no_comparison(protocol):
    meta_sigmas = torch.zeros(2, device="meta")

    assert protocol.AddedCallback(None, window(protocol.NO_SIGMA, 0.0)).window(meta_sigmas) is True
    assert protocol.AddedCallback(None, window(protocol.NO_SIGMA, 1.0)).window(None) is True
    assert protocol.AddedCallback(None, window(10.0, 1.0)).window(None) is False


def test_the_patch_lists_its_models_and_the_previous_patchs(protocol, core):
    patch = make_patch(protocol, core, previous=PreviousPatch(), models=lambda: ["identity kv"])

    assert patch.models() == ["identity kv", "previous model"]
    assert make_patch(protocol, core).models() == []


def test_moving_the_patch_moves_nothing_of_its_own_and_passes_the_move_on(protocol, core):
    previous = PreviousPatch()
    patch = make_patch(protocol, core, previous=previous)

    assert patch.to(torch.float8_e4m3fn) is patch

    assert previous.moved_to == [torch.float8_e4m3fn]
    assert patch.shared.kv.layer(INDEX)[0].dtype == torch.float32 and IDENTITY_KV[INDEX][0].dtype == torch.float32

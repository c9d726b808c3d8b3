"""InstantID composes with what users stack on SDXL: the IP-Adapter-style packs' `add` protocol and a patch that
overwrites ours (in either order), a second identity with its own mask, and several IdentityNets."""

from collections import Counter

import pytest
import torch

from helpers import add_protocol
from helpers.add_protocol import apply_other_pack
from helpers.host_runs import denoise, make_faces, record_identity_calls
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

FOREIGN_OFFSET = 0.05


def foreign_patch(q, k, v, extra_options):
    """Another pack's attn2 replace patch: the plain attention plus a known tensor."""
    import comfy.ldm.modules.attention as attention

    return attention.optimized_attention(q, k, v, extra_options["n_heads"]) + FOREIGN_OFFSET


def with_foreign(pack_module, model):
    """A clone of model with the foreign patch at every cross-attention layer, as set_model_attn2_replace does it."""
    patched = model.clone()
    for key in pack_module.unet_patching.attn2_modules(model):
        patched.set_model_attn2_replace(foreign_patch, *key)
    return patched


def with_identity(pack_module, adapter_value, model, seed=1, mask=None):
    """model with InstantID's identity attention for the face of `seed`."""
    tokens = adapter_value.tokens(make_faces(pack_module, (seed,)).embeddings())
    return pack_module.unet_patching.apply_identity_attention(
        model, adapter_value, tokens, 1.0, 0.0, 1.0, "linear", mask
    )


@pytest.fixture(scope="module")
def base():
    """A tiny SDXL-topology model."""
    return tiny_sdxl(seed=0)


def with_other_pack(pack_module, model, tag, start_percent=0.0, end_percent=1.0):
    """A clone of model with an IP-Adapter-style apply `tag`, made through the register-or-`add` protocol."""
    return apply_other_pack(model, pack_module.unet_patching.attn2_modules(model), tag, 1.0, start_percent, end_percent)


@pytest.fixture
def other_calls():
    """The other pack's callback calls, (tag, layer key) each, recorded from here on."""
    add_protocol.CALLS.clear()
    yield add_protocol.CALLS
    add_protocol.CALLS.clear()


def test_instantid_then_an_add_protocol_pack_both_apply_once_per_layer_and_the_earlier_model_is_unchanged(
    pack, adapter, base, monkeypatch, other_calls
):
    ours = with_identity(pack, adapter, base)
    ours_before = denoise(ours)
    both = with_other_pack(pack, ours, tag=1)
    identity_calls = record_identity_calls(monkeypatch, pack)

    out = denoise(both)

    layers = list(pack.unet_patching.attn2_modules(base))
    assert Counter(other_calls) == Counter({(1, key): 1 for key in layers})
    assert Counter(call.key for call in identity_calls) == Counter({key: 1 for key in layers})
    assert not torch.allclose(out, ours_before, atol=1e-4)  # the other pack's contribution is there
    assert not torch.allclose(out, denoise(with_other_pack(pack, base, tag=1)), atol=1e-4)  # and ours
    other_calls.clear()
    assert torch.equal(denoise(ours), ours_before) and not other_calls  # the model from before has no callback


def test_an_add_protocol_pack_then_instantid_equals_the_reverse_order(pack, adapter, base, monkeypatch, other_calls):
    other_then_ours = with_identity(pack, adapter, with_other_pack(pack, base, tag=1))
    ours_then_other = with_other_pack(pack, with_identity(pack, adapter, base), tag=2)
    identity_calls = record_identity_calls(monkeypatch, pack)

    first = denoise(other_then_ours)
    first_calls = Counter(other_calls)
    other_calls.clear()
    second = denoise(ours_then_other)

    layers = list(pack.unet_patching.attn2_modules(base))
    assert first_calls == Counter({(1, key): 1 for key in layers})
    assert Counter(other_calls) == Counter({(2, key): 1 for key in layers})
    assert Counter(call.key for call in identity_calls) == Counter({key: 2 for key in layers})
    assert not torch.allclose(first, second, atol=1e-4)  # tags 1 and 2 differ, so the comparison below means something
    same_tag = with_other_pack(pack, with_identity(pack, adapter, base), tag=1)
    assert (first - denoise(same_tag)).norm() <= 1e-6 * first.norm()


def test_two_instantids_with_an_add_protocol_pack_between_them_each_apply_once_per_layer(
    pack, adapter, base, monkeypatch, other_calls
):
    first = with_identity(pack, adapter, base, seed=1)
    middle = with_other_pack(pack, first, tag=3)
    last = with_identity(pack, adapter, middle, seed=2)
    first_before, middle_before = denoise(first), denoise(middle)
    other_calls.clear()
    identity_calls = record_identity_calls(monkeypatch, pack)

    out = denoise(last)

    layers = list(pack.unet_patching.attn2_modules(base))
    assert Counter(other_calls) == Counter({(3, key): 1 for key in layers})
    per_identity = Counter((id(call.identity), call.key) for call in identity_calls)
    assert set(per_identity.values()) == {1} and len(per_identity) == 2 * len(layers)
    assert not torch.allclose(out, middle_before, atol=1e-4)  # the second identity is there
    other_calls.clear()
    assert torch.equal(denoise(first), first_before) and not other_calls  # nothing leaked back
    assert torch.equal(denoise(middle), middle_before)


@pytest.mark.parametrize("sigma, acts", [("high", False), ("low", True)])
def test_an_add_protocol_packs_sigma_window_holds_on_our_patch(pack, adapter, base, other_calls, sigma, acts):
    ours = with_identity(pack, adapter, base)
    both = with_other_pack(pack, ours, tag=4, start_percent=0.5)  # the other pack acts in the second half only
    sampling = base.get_model_object("model_sampling")
    at = float(sampling.sigma_max) if sigma == "high" else float(sampling.percent_to_sigma(0.9))

    out, ours_only = denoise(both, sigma=at), denoise(ours, sigma=at)

    assert bool(other_calls) == acts
    assert torch.equal(out, ours_only) != acts


def test_a_foreign_attention_patch_and_ours_both_apply_in_either_order(pack, adapter, base, monkeypatch):
    ours_only, foreign_only = denoise(with_identity(pack, adapter, base)), denoise(with_foreign(pack, base))
    foreign_then_ours = with_identity(pack, adapter, with_foreign(pack, base))
    ours_then_foreign = with_foreign(pack, with_identity(pack, adapter, base))
    calls = record_identity_calls(monkeypatch, pack)

    first, second = denoise(foreign_then_ours), denoise(ours_then_foreign)

    assert len(calls) == 140  # the identity ran in all 70 layers in both orders
    assert not torch.allclose(first, ours_only, atol=1e-4)  # the foreign contribution is there
    assert not torch.allclose(first, foreign_only, atol=1e-4)  # and ours
    # equal up to float rounding: to_out(a + b) in one order, to_out(a) + W_out·b in the other
    assert (first - second).norm() <= 1e-5 * first.norm()


def test_two_identities_with_disjoint_masks_each_act_only_inside_their_own(pack, adapter, base, monkeypatch):
    left, right = torch.zeros(1, 128, 128), torch.zeros(1, 128, 128)
    left[..., :64], right[..., 64:] = 1.0, 1.0
    first = with_identity(pack, adapter, base, seed=1, mask=left)
    second = with_identity(pack, adapter, first, seed=2, mask=right)
    calls = record_identity_calls(monkeypatch, pack)
    denoise(second)

    terms = {}  # the identity's mask value at its top-left pixel -> [(key, term, layer call)]
    for key, term, call, identity, _ in calls:
        terms.setdefault(identity.region.mask[0, 0, 0].item(), []).append((key, term, call))
    assert sorted(terms) == [0.0, 1.0] and all(len(calls) == 70 for calls in terms.values())
    for left_mask_value, calls in terms.items():  # 1.0: the left-half mask, 0.0: the right-half mask
        for key, term, call in calls:
            h, w = call.layer_hw
            grid = term.reshape(term.shape[0], h, w, -1)
            left_side, right_side = grid[:, :, : w // 2 - 1], grid[:, :, w // 2 + 1 :]
            inside, outside = (left_side, right_side) if left_mask_value == 1.0 else (right_side, left_side)
            assert torch.count_nonzero(outside) == 0, key
            assert torch.count_nonzero(inside) > 0, key


def test_two_identitynets_both_act_and_a_controlnet_applied_after_them_keeps_them(pack, adapter, base, comfy_host):
    first_net, second_net, canny_like = tiny_controlnet(seed=4), tiny_controlnet(seed=5), tiny_controlnet(seed=6)
    hint = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(7))
    tokens_a, tokens_b = (adapter.tokens(make_faces(pack, (s,)).embeddings()) for s in (1, 2))
    plain = (sdxl_conditioning(10), sdxl_conditioning(11))

    def identitynet(conditioning, net, tokens):
        return pack.controlnet.apply_identitynet(*conditioning, net, tokens, hint, 1.0, 0.0, 1.0)

    only_a = identitynet(plain, first_net, tokens_a)
    only_b = identitynet(plain, second_net, tokens_b)
    both = identitynet(only_a, second_net, tokens_b)
    then_other = comfy_host.node("ControlNetApplyAdvanced")().apply_controlnet(*both, canny_like, hint, 1.0, 0.0, 1.0)

    out_both = denoise(base, *both)
    assert not torch.equal(out_both, denoise(base, *only_a)) and not torch.equal(out_both, denoise(base, *only_b))
    assert not torch.equal(denoise(base, *then_other), out_both)
    chain = then_other[0][0][1]["control"]
    assert [
        type(c).__name__ for c in (chain, chain.previous_controlnet, chain.previous_controlnet.previous_controlnet)
    ] == ["ControlNet", "IdentityNetControl", "IdentityNetControl"]

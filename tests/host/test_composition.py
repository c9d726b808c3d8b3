"""InstantID composes with what users stack on SDXL: another pack's attention patches (in either order), a second
identity with its own mask, and several IdentityNets."""
import pytest
import torch

from helpers.tiny_models import sdxl_conditioning, tiny_controlnet, tiny_sdxl
from helpers.host_runs import denoise, make_faces, record_identity_calls

pytestmark = pytest.mark.host

FOREIGN_OFFSET = 0.05


def foreign_patch(q, k, v, extra_options):
    """Another pack's attn2 replace patch: the plain attention plus a known tensor."""
    import comfy.ldm.modules.attention as attention

    return attention.optimized_attention(q, k, v, extra_options["n_heads"]) + FOREIGN_OFFSET


def with_foreign(pack_module, model):
    """A clone of model with the foreign patch at every cross-attention layer, as set_model_attn2_replace does it."""
    patched = model.clone()
    for key in pack_module.host.attn2_modules(model):
        patched.set_model_attn2_replace(foreign_patch, *key)
    return patched


def with_identity(pack_module, adapter_value, model, seed=1, mask=None):
    """model with InstantID's identity attention for the face of `seed`."""
    tokens = adapter_value.tokens(make_faces(pack_module, (seed,)).embeddings())
    return pack_module.host.apply_identity_attention(model, adapter_value, tokens, 1.0, 0.0, 1.0, "linear", mask)


@pytest.fixture(scope="module")
def base():
    """A tiny SDXL-topology model."""
    return tiny_sdxl(seed=0)


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
    terms = {}  # IdentityAttention -> [(key, term, extra_options)]
    original = pack.attention.IdentityAttention.identity_term

    def recording(self, key, q, heads, extra_options):
        term = original(self, key, q, heads, extra_options)
        terms.setdefault(self.region.mask[0, 0, 0].item(), []).append((key, term, extra_options))
        return term

    monkeypatch.setattr(pack.attention.IdentityAttention, "identity_term", recording)

    denoise(second)

    assert sorted(terms) == [0.0, 1.0] and all(len(calls) == 70 for calls in terms.values())
    for left_mask_value, calls in terms.items():  # 1.0: the left-half mask, 0.0: the right-half mask
        for key, term, options in calls:
            h, w = options["activations_shape"][-2:]
            grid = term.reshape(term.shape[0], h, w, -1)
            left_side, right_side = grid[:, :, : w // 2 - 1], grid[:, :, w // 2 + 1:]
            inside, outside = (left_side, right_side) if left_mask_value == 1.0 else (right_side, left_side)
            assert torch.count_nonzero(outside) == 0, key
            assert torch.count_nonzero(inside) > 0, key


def test_two_identitynets_both_act_and_a_controlnet_applied_after_them_keeps_them(pack, adapter, base, comfy_host):
    first_net, second_net, canny_like = tiny_controlnet(seed=4), tiny_controlnet(seed=5), tiny_controlnet(seed=6)
    hint = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(7))
    tokens_a, tokens_b = (adapter.tokens(make_faces(pack, (s,)).embeddings()) for s in (1, 2))
    plain = (sdxl_conditioning(10), sdxl_conditioning(11))

    def identitynet(conditioning, net, tokens):
        return pack.host.apply_identitynet(*conditioning, net, tokens, hint, 1.0, 0.0, 1.0)

    only_a = identitynet(plain, first_net, tokens_a)
    only_b = identitynet(plain, second_net, tokens_b)
    both = identitynet(only_a, second_net, tokens_b)
    then_other = comfy_host.node("ControlNetApplyAdvanced")().apply_controlnet(*both, canny_like, hint, 1.0, 0.0, 1.0)

    out_both = denoise(base, *both)
    assert not torch.equal(out_both, denoise(base, *only_a)) and not torch.equal(out_both, denoise(base, *only_b))
    assert not torch.equal(denoise(base, *then_other), out_both)
    chain = then_other[0][0][1]["control"]
    assert [type(c).__name__ for c in (chain, chain.previous_controlnet, chain.previous_controlnet.previous_controlnet)] \
        == ["ControlNet", "IdentityNetControl", "IdentityNetControl"]

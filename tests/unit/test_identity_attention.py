"""The identity attention one apply builds from plain inputs: layer pairing, per-layer scales, gate, region, K/V."""

import pytest
import torch
from adapter_fixtures import TINY_LAYER_WIDTHS, TinyDims, instantid_nested, save_bin

from instantid_core import identity as identity_module
from instantid_core.adapter import compute_identity_kv
from instantid_core.attention import WEAK, RegionMask, SigmaGate
from instantid_core.errors import InstantIDError
from instantid_core.identity import InstantIDAdapter
from instantid_core.unet_layers import CrossAttentionLayer

pytestmark = pytest.mark.unit

DIMS = TinyDims()
# ComfyUI's walk (input → middle → output) over a UNet whose layers fit TINY_LAYER_WIDTHS in diffusers order
# (down: 1, 3 at 64; up: 5, 7 at 96; mid: 9 at 96)
WALK = [
    CrossAttentionLayer(key, DIMS.output_dim, width, 2)
    for key, width in [
        (("input", 4, 0), 64),
        (("input", 4, 1), 64),
        (("middle", 0, 0), 96),
        (("output", 0, 0), 96),
        (("output", 0, 1), 96),
    ]
]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    path = save_bin(instantid_nested(DIMS, TINY_LAYER_WIDTHS), tmp_path_factory.mktemp("adapter") / "ip-adapter.bin")
    return InstantIDAdapter.load(path)


@pytest.fixture(scope="module")
def tokens(adapter):
    return adapter.tokens(torch.randn(1, DIMS.embedding_dim, generator=torch.Generator().manual_seed(3)).numpy())


def test_each_layer_is_paired_with_its_adapter_index_the_middle_block_last(adapter, tokens):
    shared = adapter.identity_attention(WALK, tokens, 0.8, "linear", SigmaGate(), None, torch.float32)

    assert shared.adapter_index == {
        ("input", 4, 0): 1,
        ("input", 4, 1): 3,
        ("output", 0, 0): 5,
        ("output", 0, 1): 7,
        ("middle", 0, 0): 9,
    }


def test_each_layers_values_carry_the_weight_times_the_weight_types_profile_and_its_keys_none(adapter, tokens):
    shared = adapter.identity_attention(WALK, tokens, 0.8, "weak middle", SigmaGate(), None, torch.float32)

    plain = compute_identity_kv(adapter.weights, tokens.stacked(), torch.float32)
    for layer in WALK:
        index = shared.adapter_index[layer.key]
        scale = 0.8 * (WEAK if layer.key[0] == "middle" else 1.0)
        keys, values = shared.kv.layer(index)
        assert torch.equal(keys, plain[index][0])
        torch.testing.assert_close(values, plain[index][1] * scale, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_kv_are_the_adapters_projections_of_the_stacked_tokens_in_the_models_dtype(adapter, tokens, dtype):
    shared = adapter.identity_attention(WALK, tokens, 1.0, "linear", SigmaGate(), None, dtype)

    expected = compute_identity_kv(adapter.weights, tokens.stacked(), dtype)
    for index, (k, v) in expected.items():
        got_k, got_v = shared.kv.layer(index)
        assert got_k.dtype == dtype and torch.equal(got_k, k) and torch.equal(got_v, v)


def test_gate_and_region_are_passed_through(adapter, tokens):
    gate, region = SigmaGate(10.0, 1.0), RegionMask.from_mask(torch.ones(8, 8))

    shared = adapter.identity_attention(WALK, tokens, 1.0, "linear", gate, region, torch.float32)

    assert shared.gate is gate and shared.region is region
    assert region.mask.shape == (1, 8, 8)


def test_a_model_whose_layers_do_not_fit_is_refused_before_any_kv_is_computed(adapter, tokens, monkeypatch):
    def no_kv(*args, **kwargs):
        raise AssertionError("K/V computed for a model that does not fit")

    monkeypatch.setattr(identity_module, "compute_identity_kv", no_kv)

    with pytest.raises(
        InstantIDError, match="has 4 cross-attention layers but the InstantID adapter has K/V weights for 5"
    ):
        adapter.identity_attention(WALK[:4], tokens, 1.0, "linear", SigmaGate(), None, torch.float32)

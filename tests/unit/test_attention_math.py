"""Decoupled cross-attention: per-block weights, the sigma gate, the region mask, and the attn2 patch itself."""

import copy
import math

import numpy as np
import pytest
import torch

from instantid_core.attention import (
    NO_SIGMA,
    WEAK,
    WEIGHT_TYPES,
    IdentityAttention,
    IdentityAttentionPatch,
    IdentityKV,
    RegionMask,
    SigmaGate,
    device_sigma_window,
    layer_multipliers,
    sigma_window,
)
from instantid_core.errors import InstantIDError
from instantid_core.unet_layers import CrossAttentionLayer

pytestmark = pytest.mark.unit

HEADS, WIDTH = 2, 8  # 2 heads of 4
H, W = 4, 4  # the layer's resolution: 16 query tokens
ROWS = 2  # images per cond/uncond half
KEY, OTHER_KEY = ("output", 1, 3), ("input", 4, 0)
INDEX, OTHER_INDEX = 57, 1
SCALE = 0.7


def softmax_attention(q, k, v, heads, extra_options=None):
    """Plain multi-head softmax attention over [B, tokens, heads*dim]."""
    b, tq, width = q.shape
    d = width // heads

    def split(t):
        return t.reshape(b, t.shape[1], heads, d).transpose(1, 2)

    weights = torch.softmax(split(q) @ split(k).transpose(-2, -1) / math.sqrt(d), dim=-1)
    return (weights @ split(v)).transpose(1, 2).reshape(b, tq, width)


def randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


IDENTITY_KV = {
    INDEX: (randn(2, 3, WIDTH, seed=1), randn(2, 3, WIDTH, seed=2)),  # row 0 cond, row 1 uncond
    OTHER_INDEX: (randn(2, 3, WIDTH, seed=3), randn(2, 3, WIDTH, seed=4)),
}


def shared(gate=None, region=None, kv=IDENTITY_KV) -> IdentityAttention:
    """The shared identity attention of the tests; the gate is open from sigma 10 to 1 unless one is given."""
    return IdentityAttention(
        kv=IdentityKV(kv),
        adapter_index={KEY: INDEX, OTHER_KEY: OTHER_INDEX},
        scales={KEY: SCALE, OTHER_KEY: 0.3},
        gate=gate or SigmaGate(10.0, 1.0),
        region=region,
        attention=softmax_attention,
    )


def inputs(halves: int = 2, dtype=torch.float32, device="cpu"):
    """q, text k, text v for `halves` × ROWS images."""
    b = halves * ROWS
    return tuple(randn(b, n, WIDTH, seed=10 + i).to(device=device, dtype=dtype) for i, n in enumerate((H * W, 5, 5)))


def options(cond_or_uncond=(1, 0), sigma=5.0, device="cpu") -> dict:
    b = len(cond_or_uncond) * ROWS
    return {
        "n_heads": HEADS,
        "cond_or_uncond": list(cond_or_uncond),
        "sigmas": torch.full((b,), sigma, device=device),
        "activations_shape": [b, WIDTH, H, W],
        "original_shape": [b, 4, H, W],
    }


def expected_identity(q, cond_or_uncond, index=INDEX, scale=SCALE):
    """scale · attn(q, K_id, V_id) image by image: image r of half h uses K/V row cond_or_uncond[h]."""
    k_all, v_all = IDENTITY_KV[index]
    out = []
    for r in range(q.shape[0]):
        row = cond_or_uncond[r // ROWS]
        out.append(softmax_attention(q[r : r + 1], k_all[row : row + 1], v_all[row : row + 1], HEADS))
    return torch.cat(out) * scale


# --- per-layer weight profiles -------------------------------------------------------------------------------------

WALK = [
    CrossAttentionLayer((group, 0, i), 2048, 640, 10)
    for group, count in (("input", 4), ("middle", 3), ("output", 5))
    for i in range(count)
]


def groups_of(multipliers) -> dict[str, set[float]]:
    out = {}
    for layer, m in zip(WALK, multipliers, strict=False):
        out.setdefault(layer.key[0], set()).add(m)
    return out


@pytest.mark.parametrize(
    "weight_type, per_group",
    [
        ("linear", {"input": {1.0}, "middle": {1.0}, "output": {1.0}}),
        ("weak input", {"input": {WEAK}, "middle": {1.0}, "output": {1.0}}),
        ("weak middle", {"input": {1.0}, "middle": {WEAK}, "output": {1.0}}),
        ("weak output", {"input": {1.0}, "middle": {1.0}, "output": {WEAK}}),
        ("strong middle", {"input": {WEAK}, "middle": {1.0}, "output": {WEAK}}),
    ],
)
def test_block_profiles_weaken_exactly_their_blocks(weight_type, per_group):
    assert groups_of(layer_multipliers(weight_type, WALK)) == per_group


@pytest.mark.parametrize(
    "weight_type, first, last, shape",
    [
        ("ease in", WEAK, 1.0, "rising"),
        ("ease out", 1.0, WEAK, "falling"),
        ("ease in-out", WEAK, WEAK, "peak"),
        ("reverse in-out", 1.0, 1.0, "dip"),
    ],
)
def test_ramp_profiles_run_from_input_to_output_between_weak_and_full(weight_type, first, last, shape):
    m = layer_multipliers(weight_type, WALK)

    assert math.isclose(m[0], first, abs_tol=1e-12) and math.isclose(m[-1], last, abs_tol=1e-12)
    steps = [b - a for a, b in zip(m, m[1:], strict=False)]
    if shape == "rising":
        assert all(s > 0 for s in steps)
    elif shape == "falling":
        assert all(s < 0 for s in steps)
    else:
        middle = m[len(m) // 2]
        assert (middle > 0.9) if shape == "peak" else (middle < WEAK + 0.1)
        assert all(math.isclose(a, b) for a, b in zip(m, reversed(m), strict=False))  # symmetric


@pytest.mark.parametrize("weight_type", WEIGHT_TYPES)
def test_every_weight_type_gives_one_multiplier_per_layer_between_weak_and_one(weight_type):
    for layers in (WALK, WALK[:1]):
        m = layer_multipliers(weight_type, layers)
        assert len(m) == len(layers) and all(WEAK - 1e-12 <= x <= 1.0 + 1e-12 for x in m)


def test_an_unknown_weight_type_is_a_value_error():
    with pytest.raises(ValueError, match="unknown weight type 'style transfer'"):
        layer_multipliers("style transfer", WALK)


# --- the sigma gate ---------------------------------------------------------------------------------------------------


def test_a_gate_without_bounds_has_no_mask():
    assert SigmaGate().mask(torch.tensor([3.0])) is None


@pytest.mark.parametrize(
    "start, end, sigma, inside",
    [
        (10.0, 1.0, 5.0, True),
        (10.0, 1.0, 10.0, True),
        (10.0, 1.0, 1.0, True),
        (10.0, 1.0, 10.5, False),
        (10.0, 1.0, 0.5, False),
        (None, 1.0, 100.0, True),
        (None, 1.0, 0.5, False),
        (10.0, None, 0.0, True),
        (10.0, None, 11.0, False),
    ],
)
def test_the_gate_is_open_between_start_the_larger_sigma_and_end(start, end, sigma, inside):
    mask = SigmaGate(start, end).mask(torch.tensor([sigma, 1e3 - sigma]))  # the first sigma decides

    assert mask.dtype == torch.bool and mask.shape == (1, 1, 1)
    assert bool(mask) is inside


def test_the_gate_is_computed_on_the_sigmas_device_without_reading_it_back():
    # meta tensors hold no data: any .item()/bool() on them raises, so this passes only without host reads
    mask = SigmaGate(10.0, 1.0).mask(torch.full((4,), 5.0, device="meta"))

    assert mask.device.type == "meta" and mask.dtype == torch.bool


def test_the_gate_is_made_once_per_model_call_and_anew_for_the_next_step():
    gate = SigmaGate(10.0, 1.0)
    this_step, next_step = torch.tensor([5.0]), torch.tensor([0.5])

    first = gate.mask(this_step)

    assert gate.mask(this_step) is first  # every layer of one call shares it
    assert bool(gate.mask(next_step)) is False  # a new sigmas tensor is a new step: its own answer
    assert bool(gate.mask(this_step)) is True


# --- the region mask --------------------------------------------------------------------------------------------------


def half_mask(height: int, width: int, batch: int = 1) -> torch.Tensor:
    """[batch, height, width]: 0 on the left half, 1 on the right half."""
    mask = torch.zeros(batch, height, width)
    mask[..., width // 2 :] = 1.0
    return mask


def test_the_region_mask_is_resized_to_the_layer_and_flattened_per_row():
    region = RegionMask(half_mask(32, 32))

    m = region.for_layer(4, 4, rows=3, latent_hw=(8, 8), device="cpu", dtype=torch.float16, faces_mode="nearest")

    assert m.shape == (3, 16, 1) and m.dtype == torch.float16
    expected_row = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(4).reshape(16, 1)
    assert all(torch.equal(m[i].float(), expected_row) for i in range(3))


def test_each_row_uses_its_mask_modulo_the_mask_batch():
    masks = torch.stack([half_mask(8, 8)[0], 1 - half_mask(8, 8)[0]])

    m = RegionMask(masks).for_layer(
        8, 8, rows=3, latent_hw=(8, 8), device="cpu", dtype=torch.float32, faces_mode="nearest"
    )

    assert torch.equal(m[0], m[2]) and torch.equal(m[0] + m[1], torch.ones(64, 1))


def test_the_region_mask_is_cached_per_layer_shape():
    region = RegionMask(half_mask(32, 32))
    args = dict(latent_hw=(8, 8), device="cpu", dtype=torch.float32, faces_mode="nearest")

    first = region.for_layer(4, 4, rows=2, **args)

    assert region.for_layer(4, 4, rows=2, **args) is first
    assert region.for_layer(2, 2, rows=2, **args) is not first


def test_a_wide_mask_fits_a_wide_latent_height_first():
    m = RegionMask(half_mask(48, 96)).for_layer(
        3, 6, rows=1, latent_hw=(6, 12), device="cpu", dtype=torch.float32, faces_mode="nearest"
    )

    assert m.shape == (1, 18, 1)


def right_half_faces(size: tuple[int, int]) -> np.ndarray:
    """A face region drawn at (width, height): the right half, as a face box would be drawn at the generation size."""
    width, height = size
    mask = np.zeros((height, width), np.float32)
    mask[:, width // 2 :] = 1.0
    return mask


def test_a_face_region_is_drawn_at_the_generation_size_of_each_latent():
    sizes = []
    region = RegionMask.from_mask(None, faces=lambda size: sizes.append(size) or right_half_faces(size))

    square = region.for_layer(4, 4, rows=1, latent_hw=(8, 8), device="cpu", dtype=torch.float32, faces_mode="nearest")
    wide = region.for_layer(4, 8, rows=1, latent_hw=(16, 32), device="cpu", dtype=torch.float32, faces_mode="nearest")

    assert sizes == [(64, 64), (256, 128)]  # latent × 8, (width, height)
    assert torch.equal(square.reshape(4, 4), torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(4, 1))
    assert torch.equal(wide.reshape(4, 8), torch.tensor([0.0] * 4 + [1.0] * 4).repeat(4, 1))


def test_a_face_region_is_sampled_nearest_for_the_attention_and_bilinear_for_identitynets_residuals():
    def box(size: tuple[int, int]) -> np.ndarray:  # columns 6..15 of 16: the edge falls inside the second cell
        mask = np.zeros(size[::-1], np.float32)
        mask[:, 6:] = 1.0
        return mask

    region = RegionMask.from_mask(None, faces=box)
    args = dict(rows=1, latent_hw=(2, 2), device="cpu", dtype=torch.float32)

    nearest = region.for_layer(4, 4, **args, faces_mode="nearest").reshape(4, 4)[0]
    bilinear = region.for_layer(4, 4, **args, faces_mode="bilinear").reshape(4, 4)[0]

    assert nearest.tolist() == [0.0, 0.0, 1.0, 1.0]  # each cell takes its top-left pixel: 0, 4, 8, 12
    assert bilinear.tolist() == [0.0, 0.5, 1.0, 1.0]  # the edge cell averages pixels 5 and 6


def test_a_mask_and_a_face_region_together_allow_only_where_both_do():
    top = torch.zeros(1, 64, 64)
    top[:, :32] = 1.0
    region = RegionMask.from_mask(top, faces=right_half_faces)

    m = region.for_layer(2, 2, rows=1, latent_hw=(8, 8), device="cpu", dtype=torch.float32, faces_mode="nearest")

    assert m.reshape(2, 2).tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_no_mask_and_no_face_region_is_no_region():
    assert RegionMask.from_mask(None) is None


def test_a_mask_of_another_aspect_ratio_names_both_sizes():
    region = RegionMask(half_mask(32, 64))  # 64 wide, 32 high

    with pytest.raises(InstantIDError) as raised:
        region.for_layer(
            4, 4, rows=1, latent_hw=(4, 16), device="cpu", dtype=torch.float32, faces_mode="nearest"
        )  # 128×32 image

    assert "mask is 64×32" in str(raised.value) and "generated is 128×32" in str(raised.value)


# --- the attn2 replace patch ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [10.5, 0.5])
def test_outside_the_gate_the_patch_returns_exactly_the_plain_attention(sigma):
    q, k, v = inputs()

    out = IdentityAttentionPatch(shared(), KEY)(q, k, v, options(sigma=sigma))

    assert torch.equal(out, softmax_attention(q, k, v, HEADS))


@pytest.mark.parametrize("sigma", [10.0, 5.0, 1.0])
def test_inside_the_gate_the_patch_adds_the_scaled_identity_attention(sigma):
    q, k, v = inputs()

    out = IdentityAttentionPatch(shared(), KEY)(q, k, v, options(sigma=sigma))

    torch.testing.assert_close(out, softmax_attention(q, k, v, HEADS) + expected_identity(q, (1, 0)), atol=1e-6, rtol=0)


def test_without_a_gate_the_identity_is_always_added():
    q, k, v = inputs()

    out = IdentityAttentionPatch(shared(gate=SigmaGate()), KEY)(q, k, v, options(sigma=1e4))

    torch.testing.assert_close(out, softmax_attention(q, k, v, HEADS) + expected_identity(q, (1, 0)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cond_or_uncond", [(1, 0), (0, 1), (0,), (1,)])
def test_each_batch_half_uses_the_kv_row_cond_or_uncond_names(cond_or_uncond):
    q, k, v = inputs(halves=len(cond_or_uncond))

    out = IdentityAttentionPatch(shared(), KEY)(q, k, v, options(cond_or_uncond))

    identity = out - softmax_attention(q, k, v, HEADS)
    torch.testing.assert_close(identity, expected_identity(q, cond_or_uncond), atol=1e-6, rtol=0)


def test_the_cond_and_uncond_rows_really_differ():
    """The control for the test above: swapping the halves' rows changes the identity term."""
    q, _, _ = inputs()

    assert not torch.allclose(expected_identity(q, (1, 0)), expected_identity(q, (0, 1)), atol=1e-3)


def test_each_layer_uses_its_own_adapter_pair_and_scale():
    q, k, v = inputs()

    out = IdentityAttentionPatch(shared(), OTHER_KEY)(q, k, v, options())

    torch.testing.assert_close(
        out - softmax_attention(q, k, v, HEADS),
        expected_identity(q, (1, 0), index=OTHER_INDEX, scale=0.3),
        atol=1e-6,
        rtol=0,
    )


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
def test_a_previous_patch_replaces_the_plain_attention_and_the_identity_is_added_to_it(sigma, with_identity):
    q, k, v = inputs()
    previous = PreviousPatch()
    extra = options(sigma=sigma)

    out = IdentityAttentionPatch(shared(), KEY, previous=previous)(q, k, v, extra)

    assert len(previous.calls) == 1 and previous.calls[0] is extra
    expected = softmax_attention(q, k, v, HEADS) * 2 + 1
    if with_identity:
        torch.testing.assert_close(out, expected + expected_identity(q, (1, 0)), atol=1e-6, rtol=0)
    else:
        assert torch.equal(out, expected)


def test_a_masked_identity_leaves_the_masked_out_region_exactly_as_before():
    q, k, v = inputs()
    previous = PreviousPatch()
    patch = IdentityAttentionPatch(shared(region=RegionMask(half_mask(32, 32))), KEY, previous=previous)

    out = patch(q, k, v, options())

    before = softmax_attention(q, k, v, HEADS) * 2 + 1
    left = torch.arange(H * W) % W < W // 2  # tokens are the layer's pixels, row by row
    assert torch.equal(out[:, left], before[:, left])
    torch.testing.assert_close(out[:, ~left], (before + expected_identity(q, (1, 0)))[:, ~left], atol=1e-6, rtol=0)


def test_the_identity_term_follows_the_query_dtype():
    q, k, v = inputs(dtype=torch.bfloat16)

    out = IdentityAttentionPatch(shared(), KEY)(q, k, v, options())

    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(
        out.float(), softmax_attention(q, k, v, HEADS).float() + expected_identity(q.float(), (1, 0)), atol=5e-2, rtol=0
    )


def test_the_gated_patch_never_reads_a_tensor_back_to_the_host():
    # every tensor on the meta device: a .item() or a Python bool of a tensor anywhere in the call would raise
    meta_kv = {n: (k.to("meta"), v.to("meta")) for n, (k, v) in IDENTITY_KV.items()}
    q, k, v = inputs(device="meta")

    out = IdentityAttentionPatch(shared(kv=meta_kv), KEY)(q, k, v, options(device="meta"))

    assert out.shape == q.shape and out.device.type == "meta"


def test_deep_copying_a_patch_forks_it_sharing_the_identity_kv():
    patch = IdentityAttentionPatch(shared(), KEY)
    model_options = {"transformer_options": {"patches_replace": {"attn2": {KEY: patch}}}}

    copied = copy.deepcopy(model_options)["transformer_options"]["patches_replace"]["attn2"][KEY]

    assert copied is not patch and copied.shared is patch.shared and copied.key == KEY


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
def test_an_added_callback_contributes_exactly_inside_its_sigma_window(sigma, inside):
    q, k, v = inputs()
    callback = AddedContribution()
    patch = IdentityAttentionPatch(shared(gate=SigmaGate()), KEY)
    plain = patch(q, k, v, options(sigma=sigma))

    patch.add(callback, weight=2.0, **window(10.0, 1.0))
    out = patch(q, k, v, options(sigma=sigma))

    expected = plain + callback(plain, q, k, v, {}) if inside else plain
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert len(callback.calls) == (2 if inside else 0)  # the patch's call and the expected value's own


def test_an_added_callback_gets_the_output_before_the_identity_term_and_its_own_kwargs():
    q, k, v = inputs()
    first, second = AddedContribution(0.1), AddedContribution(0.2)
    patch = IdentityAttentionPatch(shared(gate=SigmaGate()), KEY)
    patch.add(first, tag="a", **window(NO_SIGMA, 0.0))
    patch.add(second, tag="b", **window(NO_SIGMA, 0.0))

    patch(q, k, v, options())

    plain = softmax_attention(q, k, v, HEADS)
    ((seen_first, kwargs_first),) = first.calls
    ((seen_second, kwargs_second),) = second.calls
    torch.testing.assert_close(seen_first, plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(seen_second, plain + first(plain, q, k, v, {}), atol=1e-6, rtol=0)
    assert kwargs_first == {"tag": "a", **window(NO_SIGMA, 0.0)} and kwargs_second["tag"] == "b"


def test_the_patch_returns_the_query_dtype_whatever_an_added_callback_returns():
    q, k, v = inputs(dtype=torch.bfloat16)
    patch = IdentityAttentionPatch(shared(gate=SigmaGate()), KEY)
    patch.add(
        lambda out, q, k, v, extra_options, **kwargs: torch.ones(q.shape, dtype=torch.float32), **window(NO_SIGMA, 0.0)
    )

    assert patch(q, k, v, options()).dtype == torch.bfloat16


def test_an_add_on_a_fork_does_not_reach_the_patch_it_was_forked_from():
    q, k, v = inputs()
    earlier, later = AddedContribution(0.1), AddedContribution(0.2)
    patch = IdentityAttentionPatch(shared(), KEY)
    patch.add(earlier, **window(NO_SIGMA, 0.0))
    before = patch(q, k, v, options())

    fork = patch.fork()
    fork.add(later, **window(NO_SIGMA, 0.0))

    assert torch.equal(patch(q, k, v, options()), before)
    assert not torch.equal(fork(q, k, v, options()), before)
    assert fork.shared is patch.shared and len(earlier.calls) == 3  # the fork kept the earlier contribution


def test_an_added_callbacks_window_is_decided_on_the_device_without_reading_back():
    meta_kv = {n: (k.to("meta"), v.to("meta")) for n, (k, v) in IDENTITY_KV.items()}
    q, k, v = inputs(device="meta")
    patch = IdentityAttentionPatch(shared(kv=meta_kv), KEY)
    patch.add(lambda out, q, k, v, extra_options, **kwargs: torch.ones_like(q), **window(10.0, 1.0))

    out = patch(q, k, v, options(device="meta"))

    assert out.shape == q.shape and out.device.type == "meta"


@pytest.mark.parametrize("start, end", [(10.0, 1.0), (NO_SIGMA, 2.0), (3.0, 0.0), (5.0, 5.0)])
def test_the_device_sigma_window_agrees_with_the_host_decision(start, end):
    for sigma in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 9.99, 10.0, 14.6, 1e4):
        sigmas = torch.full((4,), sigma)
        on_device = device_sigma_window(sigmas, start, end)
        assert on_device.shape == (1, 1, 1) and bool(on_device) == sigma_window(sigmas, start, end), sigma


def test_a_window_covering_every_step_or_a_call_without_sigmas_costs_no_comparison():
    meta_sigmas = torch.zeros(2, device="meta")

    assert sigma_window(meta_sigmas, NO_SIGMA, 0.0) is True
    assert sigma_window(None, NO_SIGMA, 1.0) is True and sigma_window(None, 10.0, 1.0) is False


def test_the_patch_lists_its_models_and_the_previous_patchs():
    patch = IdentityAttentionPatch(shared(), KEY, previous=PreviousPatch(), models=lambda: ["identity kv"])

    assert patch.models() == ["identity kv", "previous model"]
    assert IdentityAttentionPatch(shared(), KEY).models() == []


def test_moving_the_patch_moves_nothing_of_its_own_and_passes_the_move_on():
    previous = PreviousPatch()
    patch = IdentityAttentionPatch(shared(), KEY, previous=previous)

    assert patch.to(torch.float8_e4m3fn) is patch

    assert previous.moved_to == [torch.float8_e4m3fn]
    assert patch.shared.kv.layer(INDEX)[0].dtype == torch.float32

"""Decoupled cross-attention, the math: per-block weights, the sigma gate, the region mask, the K/V laid out per
batch layout and the identity term of a layer call."""

import math

import numpy as np
import pytest
import torch

from helpers.attention_cases import (
    HEADS,
    HEADS_OF,
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
from instantid_core.attention import (
    MAX_LAYOUTS,
    WEAK,
    WEIGHT_TYPES,
    IdentityAttention,
    IdentityKV,
    LayerCall,
    RegionMask,
    SigmaGate,
    attend_few_keys,
    identity_rows,
    layer_multipliers,
)
from instantid_core.errors import InstantIDError
from instantid_core.unet_layers import CrossAttentionLayer

pytestmark = pytest.mark.unit


def shared(gate=None, region=None, kv=None) -> IdentityAttention:
    """The shared identity attention of the tests; the gate is open from sigma 10 to 1 unless one is given."""
    return IdentityAttention(
        kv=IdentityKV(scaled_kv() if kv is None else kv, HEADS_OF),
        adapter_index={KEY: INDEX, OTHER_KEY: OTHER_INDEX},
        gate=gate or SigmaGate(10.0, 1.0),
        region=region,
    )


def call(cond_or_uncond=(1, 0), sigma=5.0, device="cpu", attend=by_head_attention) -> LayerCall:
    """One layer call of the tests' layer, at `sigma`."""
    b = len(cond_or_uncond) * ROWS
    return LayerCall(
        chunks=tuple(cond_or_uncond),
        sigmas=torch.full((b,), sigma, device=device),
        layer_hw=(H, W),
        latent_hw=(H, W),
        attend=attend,
    )


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


def test_a_gate_without_bounds_is_always_open():
    assert SigmaGate().state(torch.tensor([3.0])) is True


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
    state = SigmaGate(start, end).state(torch.tensor([sigma, 1e3 - sigma]))  # the first sigma decides

    assert state is inside  # sigmas on the CPU: a Python bool, read at no cost


def test_on_a_device_the_gate_is_a_tensor_there_without_reading_it_back():
    # meta tensors hold no data: any .item()/bool() on them raises, so this passes only without host reads
    state = SigmaGate(10.0, 1.0).state(torch.full((4,), 5.0, device="meta"))

    assert state.device.type == "meta" and state.dtype == torch.bool and state.shape == (1, 1, 1)


def test_the_gate_is_decided_once_per_model_call_and_anew_for_the_next_step():
    gate = SigmaGate(10.0, 1.0)
    this_step, next_step = torch.tensor([5.0]), torch.tensor([0.5])
    on_device = torch.full((2,), 5.0, device="meta")

    assert gate.state(this_step) is True
    assert gate.state(next_step) is False  # a new sigmas tensor is a new step: its own answer
    assert gate.state(this_step) is True
    first = gate.state(on_device)
    assert gate.state(on_device) is first  # every layer of one call shares the device decision


# --- the region mask --------------------------------------------------------------------------------------------------


def test_the_region_mask_is_resized_to_the_layer_and_flattened_per_row():
    region = RegionMask(half_mask(32, 32))

    m = region.for_layer(4, 4, rows=3, latent_hw=(8, 8), device="cpu", dtype=torch.float16, faces_mode="nearest")

    assert m.shape == (3, 16, 1) and m.dtype == torch.float16
    expected_row = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(4).reshape(16, 1)
    assert all(torch.equal(m[i].float(), expected_row) for i in range(3))


def test_in_a_window_of_the_batch_each_row_uses_its_pictures_mask():
    masks = torch.stack([torch.full((8, 8), float(i)) for i in range(3)])  # mask i is all i

    m = RegionMask(masks).for_layer(
        2, 2, rows=2, latent_hw=(8, 8), device="cpu", dtype=torch.float32, faces_mode="nearest", halves=2,
        pictures=(2, 4),
    )  # fmt: skip

    assert [float(row.mean()) for row in m] == [2.0, 1.0, 2.0, 1.0]  # pictures 2 and 4 (mask 4 modulo 3), per half


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


# --- the K/V laid out per batch layout ------------------------------------------------------------------------------


def test_the_kv_are_laid_out_once_per_batch_layout_image_by_image():
    kv = IdentityKV(scaled_kv(), HEADS_OF)
    rows = (1,) * ROWS + (0,) * ROWS  # an unconditional half, then a conditional one

    layout = kv.laid_out(rows, torch.device("cpu"), torch.float32)

    assert kv.laid_out(rows, torch.device("cpu"), torch.float32) is layout
    k_all, v_all = scaled_kv()[INDEX]
    assert torch.equal(layout.k[INDEX], by_head(torch.cat([k_all[1:2]] * ROWS + [k_all[0:1]] * ROWS)))
    assert torch.equal(layout.v[INDEX], by_head(torch.cat([v_all[1:2]] * ROWS + [v_all[0:1]] * ROWS)))
    assert layout.k[INDEX].is_contiguous() and layout.v[INDEX].is_contiguous()
    assert kv.laid_out(rows[::-1], torch.device("cpu"), torch.float32) is not layout


def test_the_laid_out_kv_take_the_asked_dtype_and_a_device_gate_zeroes_every_layers_v_at_once():
    layout = IdentityKV(scaled_kv(), HEADS_OF).laid_out((0,), torch.device("cpu"), torch.bfloat16)
    closed, open_ = torch.zeros(1, 1, 1, dtype=torch.bool), torch.ones(1, 1, 1, dtype=torch.bool)

    assert layout.k[INDEX].dtype == torch.bfloat16 and layout.v[OTHER_INDEX].dtype == torch.bfloat16
    zeroed = layout.values(closed)
    assert all(not v.any() for v in zeroed.values()) and layout.values(closed) is zeroed  # once per gate tensor
    assert all(torch.equal(a, b) for a, b in zip(layout.values(open_).values(), layout.v.values(), strict=True))
    assert layout.values(True) is layout.v


def test_the_layouts_kept_are_bounded_and_moving_the_kv_drops_them():
    kv = IdentityKV(scaled_kv(), HEADS_OF)
    layouts = [kv.laid_out((0,) * n, torch.device("cpu"), torch.float32) for n in range(1, MAX_LAYOUTS + 2)]

    assert len(kv._layouts) <= MAX_LAYOUTS and kv._layouts  # noqa: SLF001 (the bound is the point)
    kv.to(torch.float64)
    assert not kv._layouts  # noqa: SLF001
    assert kv.laid_out((0,), torch.device("cpu"), torch.float32) is not layouts[0]


# --- which identity each image of a model call takes ----------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks, images, identities, pictures, expected",
    [
        ((0, 1), 3, 1, None, (0, 0, 0, 1, 1, 1)),  # one identity: every conditional image takes it
        ((1, 0), 2, 1, None, (1, 1, 0, 0)),
        ((0, 1), 3, 3, None, (0, 1, 2, 3, 3, 3)),  # one per picture: picture j takes identity j
        ((1, 0), 3, 3, None, (3, 3, 3, 0, 1, 2)),
        ((0,), 4, 4, None, (0, 1, 2, 3)),  # cond alone (ComfyUI ran the halves in separate calls)
        ((1,), 4, 4, None, (4, 4, 4, 4)),
        ((0, 1), 2, 4, (2, 3), (2, 3, 4, 4)),  # a window of the batch: its pictures' identities
        ((0, 0, 1), 2, 2, None, (0, 1, 0, 1, 2, 2)),  # two conditional entries batched together
    ],
)
def test_each_image_takes_its_pictures_identity_and_unconditional_images_the_shared_row(
    chunks, images, identities, pictures, expected
):
    assert identity_rows(chunks, images, identities, pictures) == expected


@pytest.mark.parametrize(
    "images, identities, pictures, said",
    [
        (3, 4, None, "4 identities, one per picture ('per picture'), but the batch being generated has 3 pictures"),
        (2, 4, (3, 4), "has picture 5 or more"),
    ],
)
def test_identities_for_another_batch_size_are_an_error_naming_the_node_and_both_numbers(
    images, identities, pictures, said
):
    with pytest.raises(InstantIDError) as raised:
        identity_rows((0, 1), images, identities, pictures, owner="Apply InstantID (node #7)")

    assert str(raised.value).startswith("Apply InstantID (node #7) has ") and said in str(raised.value)


# --- the identity term of a layer call -----------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [10.5, 0.5])
def test_outside_the_gate_there_is_no_term_and_the_output_is_left_as_it_was(sigma):
    q, k, v = inputs()
    out = softmax_attention(q, k, v, HEADS)

    assert shared().identity_term(KEY, q, HEADS, call(sigma=sigma)) is None
    assert shared().add_to(out, KEY, q, HEADS, call(sigma=sigma), own=True) is out


@pytest.mark.parametrize("sigma", [10.0, 5.0, 1.0])
def test_inside_the_gate_the_scaled_identity_attention_is_added(sigma):
    q, k, v = inputs()
    plain = softmax_attention(q, k, v, HEADS)

    out = shared().add_to(plain.clone(), KEY, q, HEADS, call(sigma=sigma), own=True)

    torch.testing.assert_close(out, plain + expected_identity(q, (1, 0)), atol=1e-6, rtol=0)


def test_added_in_place_only_to_an_output_the_caller_owns():
    q, k, v = inputs()
    plain = softmax_attention(q, k, v, HEADS)
    kept = plain.clone()

    shared().add_to(plain, KEY, q, HEADS, call(), own=False)
    assert torch.equal(plain, kept)
    assert shared().add_to(plain, KEY, q, HEADS, call(), own=True) is plain and not torch.equal(plain, kept)


def test_without_a_gate_the_identity_is_always_added():
    q, _, _ = inputs()

    term = shared(gate=SigmaGate()).identity_term(KEY, q, HEADS, call(sigma=1e4))

    torch.testing.assert_close(term, expected_identity(q, (1, 0)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cond_or_uncond", [(1, 0), (0, 1), (0,), (1,)])
def test_each_batch_half_uses_the_kv_row_cond_or_uncond_names(cond_or_uncond):
    q, _, _ = inputs(halves=len(cond_or_uncond))

    term = shared().identity_term(KEY, q, HEADS, call(cond_or_uncond))

    torch.testing.assert_close(term, expected_identity(q, cond_or_uncond), atol=1e-6, rtol=0)


def test_the_cond_and_uncond_rows_really_differ():
    """The control for the test above: swapping the halves' rows changes the identity term."""
    q, _, _ = inputs()

    assert not torch.allclose(expected_identity(q, (1, 0)), expected_identity(q, (0, 1)), atol=1e-3)


def test_each_layer_uses_its_own_adapter_pair_and_scale():
    q, _, _ = inputs()

    term = shared().identity_term(OTHER_KEY, q, HEADS, call())

    torch.testing.assert_close(term, expected_identity(q, (1, 0), index=OTHER_INDEX), atol=1e-6, rtol=0)


def test_a_region_keeps_the_identity_out_of_the_masked_out_tokens_exactly():
    q, k, v = inputs()
    plain = softmax_attention(q, k, v, HEADS)
    left = left_tokens()

    out = shared(region=RegionMask(half_mask(32, 32))).add_to(plain.clone(), KEY, q, HEADS, call(), own=True)

    assert torch.equal(out[:, left], plain[:, left])
    torch.testing.assert_close(out[:, ~left], (plain + expected_identity(q, (1, 0)))[:, ~left], atol=1e-6, rtol=0)


def test_the_region_applies_to_the_term_alone_too():
    q, _, _ = inputs()
    left = left_tokens()

    term = shared(region=RegionMask(half_mask(32, 32))).identity_term(KEY, q, HEADS, call())

    assert not term[:, left].any()
    torch.testing.assert_close(term[:, ~left], expected_identity(q, (1, 0))[:, ~left], atol=1e-6, rtol=0)


def test_the_identity_term_follows_the_query_dtype():
    q, k, v = inputs(dtype=torch.bfloat16)

    term = shared().identity_term(KEY, q, HEADS, call())

    assert term.dtype == torch.bfloat16
    torch.testing.assert_close(term.float(), expected_identity(q.float(), (1, 0)), atol=5e-2, rtol=0)


def test_a_gated_term_never_reads_a_tensor_back_to_the_host():
    # every tensor on the meta device: a .item() or a Python bool of a tensor anywhere in the call would raise
    meta_kv = {n: (k.to("meta"), v.to("meta")) for n, (k, v) in scaled_kv().items()}
    q, k, v = inputs(device="meta")
    out = softmax_attention(q, k, v, HEADS)

    out = shared(kv=meta_kv).add_to(out, KEY, q, HEADS, call(device="meta"), own=True)

    assert out.shape == q.shape and out.device.type == "meta"


def test_the_layer_calls_attention_kernel_is_the_one_used_by_head():
    q, _, _ = inputs()
    seen = []

    def kernel(q, k, v):
        seen.append((q.shape, k.shape, v.shape))
        return by_head_attention(q, k, v)

    shared().identity_term(KEY, q, HEADS, call(attend=kernel))

    dim = WIDTH // HEADS
    assert seen == [((2 * ROWS, HEADS, H * W, dim), (2 * ROWS, HEADS, 3, dim), (2 * ROWS, HEADS, 3, dim))]


@pytest.mark.parametrize(
    "dtype, upcast, atol", [(torch.float32, False, 3e-5), (torch.bfloat16, False, 3e-2), (torch.bfloat16, True, 3e-2)]
)
def test_attention_over_a_few_keys_is_softmax_attention(dtype, upcast, atol):
    q, k, v = (by_head(randn(3, n, 16, seed=20 + i), heads=2).to(dtype) for i, n in enumerate((40, 16, 16)))

    out = attend_few_keys(q, k, v, upcast=upcast)

    assert out.dtype == dtype and out.shape == q.shape
    expected = by_head_attention(q.double(), k.double(), v.double())
    torch.testing.assert_close(out.double(), expected, atol=atol, rtol=0)


def test_upcast_attention_over_a_few_keys_keeps_the_scores_in_float32():
    q, k, v = (
        by_head(randn(2, n, 16, seed=30 + i) * 4, heads=2).to(torch.bfloat16) for i, n in enumerate((64, 16, 16))
    )
    expected = by_head_attention(q.double(), k.double(), v.double())

    error = {up: (attend_few_keys(q, k, v, upcast=up).double() - expected).abs().mean() for up in (False, True)}

    assert error[True] < error[False]

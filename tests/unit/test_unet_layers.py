"""Which UNet cross-attention layer gets which adapter K/V pair: derived from the model, checked against the adapter layout
of docs/design.md."""

import re

import pytest

from instantid_core.errors import InstantIDError
from instantid_core.unet_layers import CrossAttentionLayer, assign_adapter_indices, diffusers_order

pytestmark = pytest.mark.unit

# ComfyUI's walk over SDXL's transformer blocks: (block, number, depth, width), input -> middle -> output
SDXL_WALK = [
    ("input", 4, 2, 640),
    ("input", 5, 2, 640),
    ("input", 7, 10, 1280),
    ("input", 8, 10, 1280),
    ("middle", 0, 10, 1280),
    ("output", 0, 10, 1280),
    ("output", 1, 10, 1280),
    ("output", 2, 10, 1280),
    ("output", 3, 2, 640),
    ("output", 4, 2, 640),
    ("output", 5, 2, 640),
]
SD15_WALK = [
    ("input", 1, 1, 320),
    ("input", 2, 1, 320),
    ("input", 4, 1, 640),
    ("input", 5, 1, 640),
    ("input", 7, 1, 1280),
    ("input", 8, 1, 1280),
    ("middle", 0, 1, 1280),
    *[("output", n, 1, 1280) for n in (3, 4, 5)],
    *[("output", n, 1, 640) for n in (6, 7, 8)],
    *[("output", n, 1, 320) for n in (9, 10, 11)],
]
# docs/design.md: the adapter's layers in diffusers order, with their widths
DESIGN_DIFFUSERS_BLOCKS = [
    ("down_blocks.1", 4, 640),
    ("down_blocks.2", 20, 1280),
    ("up_blocks.0", 30, 1280),
    ("up_blocks.1", 6, 640),
    ("mid_block", 10, 1280),
]


def layers_of(walk, context: int = 2048) -> list[CrossAttentionLayer]:
    return [
        CrossAttentionLayer(key=(block, number, i), context_dim=context, inner_dim=width, heads=width // 64)
        for block, number, depth, width in walk
        for i in range(depth)
    ]


def design_kv_widths() -> dict[int, int]:
    """n = 1, 3, ..., 139 -> hidden width, as docs/design.md lays the adapter out."""
    widths = [width for _block, count, width in DESIGN_DIFFUSERS_BLOCKS for _ in range(count)]
    return {2 * position + 1: width for position, width in enumerate(widths)}


def test_every_sdxl_layer_gets_an_adapter_pair_of_its_own_width():
    layers = layers_of(SDXL_WALK)
    widths = design_kv_widths()

    mapping = assign_adapter_indices(layers, widths, token_dim=2048)

    assert set(mapping) == {layer.key for layer in layers}
    assert sorted(mapping.values()) == list(range(1, 140, 2))
    assert all(widths[mapping[layer.key]] == layer.inner_dim for layer in layers)


@pytest.mark.parametrize(
    "group, expected",
    [("input", range(1, 48, 2)), ("output", range(49, 120, 2)), ("middle", range(121, 140, 2))],
    ids=["input = down_blocks", "output = up_blocks", "middle = mid_block (last)"],
)
def test_each_comfyui_block_group_maps_to_its_diffusers_numbers_in_walk_order(group, expected):
    layers = layers_of(SDXL_WALK)

    mapping = assign_adapter_indices(layers, design_kv_widths(), token_dim=2048)

    assert [mapping[layer.key] for layer in layers if layer.key[0] == group] == list(expected)


@pytest.mark.parametrize(
    "key, index",
    [
        (("input", 4, 0), 1),
        (("input", 4, 1), 3),
        (("input", 5, 0), 5),
        (("input", 7, 0), 9),
        (("input", 8, 9), 47),
        (("output", 0, 0), 49),
        (("output", 2, 9), 107),
        (("output", 3, 0), 109),
        (("output", 5, 1), 119),
        (("middle", 0, 0), 121),
        (("middle", 0, 9), 139),
    ],
)
def test_block_boundaries_get_the_spec_numbers(key, index):
    mapping = assign_adapter_indices(layers_of(SDXL_WALK), design_kv_widths(), token_dim=2048)

    assert mapping[key] == index


def test_diffusers_order_puts_down_then_up_then_mid_blocks_keeping_the_walk_order_inside_each():
    layers = layers_of(SDXL_WALK)

    ordered = diffusers_order(layers)

    keys = [layer.key for layer in ordered]
    assert keys[:24] == [layer.key for layer in layers[:24]]  # input blocks
    assert keys[24:60] == [layer.key for layer in layers[34:]]  # output blocks
    assert keys[60:] == [("middle", 0, i) for i in range(10)]
    assert [layer.key for layer in layers][24] == ("middle", 0, 0)  # the argument is left as it was


@pytest.mark.parametrize(
    "walk, widths, counts",
    [
        (SD15_WALK, design_kv_widths(), (16, 70)),
        (SDXL_WALK, {n: w for n, w in design_kv_widths().items() if n < 137}, (70, 68)),
    ],
    ids=["SD1.5 model, SDXL adapter", "SDXL model, adapter short of a pair"],
)
def test_a_model_and_adapter_with_different_layer_counts_are_refused_with_both_counts(walk, widths, counts):
    with pytest.raises(InstantIDError) as raised:
        assign_adapter_indices(layers_of(walk, context=768 if walk is SD15_WALK else 2048), widths, token_dim=2048)

    first_sentence = str(raised.value).split(".")[0]
    assert re.search(rf"\b{counts[0]}\b.*\b{counts[1]}\b", first_sentence), first_sentence


def test_a_layer_narrower_than_its_adapter_pair_is_named():
    walk = [(block, number, depth, 640 if block == "middle" else width) for block, number, depth, width in SDXL_WALK]

    with pytest.raises(InstantIDError) as raised:
        assign_adapter_indices(layers_of(walk), design_kv_widths(), token_dim=2048)

    assert "('middle', 0, 0) is 640 wide" in str(raised.value)
    assert "Adapter layer 121 is 1280 wide" in str(raised.value)


def test_a_model_with_another_context_width_is_refused_naming_the_layer_and_width():
    with pytest.raises(InstantIDError) as raised:
        assign_adapter_indices(layers_of(SDXL_WALK, context=768), design_kv_widths(), token_dim=2048)

    assert "('input', 4, 0)" in str(raised.value) and "768-wide context" in str(raised.value)


def test_adapter_pairs_not_numbered_1_3_5_are_refused():
    renumbered = {n - 1: width for n, width in design_kv_widths().items()}  # 0, 2, 4, ...

    with pytest.raises(InstantIDError, match="numbered .* expected 1, 3, 5"):
        assign_adapter_indices(layers_of(SDXL_WALK), renumbered, token_dim=2048)

"""Which UNet cross-attention layer receives which adapter K/V pair.

The adapter file numbers its K/V pairs by the position of the layer's attention processor in diffusers' order
(down blocks, then up blocks, then the mid block; self- and cross-attention alternate, so cross-attention layers
have the odd numbers 1, 3, 5, ...). ComfyUI names the same layers by block key `(block, number, index)` and walks
them input → middle → output. This module turns the list of layers found in the model into that numbering, so no
layer list is ever written by hand.
"""

from dataclasses import dataclass

from .errors import InstantIDError

# diffusers registers down_blocks, up_blocks, then mid_block; ComfyUI's names for those groups
_DIFFUSERS_GROUP_ORDER = {"input": 0, "output": 1, "middle": 2}


@dataclass(frozen=True)
class CrossAttentionLayer:
    """One cross-attention layer of the UNet: its ComfyUI block key and its widths."""

    key: tuple[str, int, int]
    context_dim: int
    inner_dim: int
    heads: int


def diffusers_order(layers: list[CrossAttentionLayer]) -> list[CrossAttentionLayer]:
    """The layers (given in ComfyUI's input → middle → output walk) in diffusers' down → up → mid order."""
    return sorted(layers, key=lambda layer: _DIFFUSERS_GROUP_ORDER[layer.key[0]])  # sorted() is stable


def assign_adapter_indices(
    layers: list[CrossAttentionLayer], kv_widths: dict[int, int], token_dim: int
) -> dict[tuple[str, int, int], int]:
    """Map every cross-attention layer's key to the adapter K/V index it uses; refuse a mismatched model/adapter pair."""
    ordered = diffusers_order(layers)
    indices = sorted(kv_widths)
    if len(ordered) != len(indices):
        raise InstantIDError(
            f"This model has {len(ordered)} cross-attention layers but the InstantID adapter has K/V weights for "
            f"{len(indices)} layers. InstantID is made for SDXL (70 layers): load an SDXL checkpoint, or the adapter "
            f"file that belongs to this model.",
            "not_sdxl",
        )
    mapping = {}
    for position, (layer, index) in enumerate(zip(ordered, indices, strict=False)):
        expected = 2 * position + 1
        if index != expected:
            raise InstantIDError(
                f"The adapter's K/V weights are numbered {indices[:4]}..., expected 1, 3, 5, ... (one pair per "
                f"cross-attention layer): the adapter file is not in the InstantID layout.",
                "wrong_model_file",
            )
        if kv_widths[index] != layer.inner_dim or layer.context_dim != token_dim:
            raise InstantIDError(
                f"Adapter layer {index} is {kv_widths[index]} wide for {token_dim}-wide tokens, but the model's layer "
                f"{layer.key} is {layer.inner_dim} wide with {layer.context_dim}-wide context. The model is not SDXL, "
                f"or the adapter belongs to another model.",
                "not_sdxl",
            )
        mapping[layer.key] = index
    return mapping

"""From face embeddings to InstantID's identity tokens (Resampler) and the per-layer identity K/V they yield.

The reference pipeline feeds the raw embedding of the chosen face to the Resampler for the conditional tokens, and
zeros for the unconditional ones. A little uniform noise on those zeros (`noise`) is a common refinement: it makes
the negative side a "generic face" rather than "no face" and softens over-burned results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .adapter import AdapterWeights, compute_identity_kv, load_adapter
from .attention import IdentityAttention, IdentityKV, RegionMask, SigmaGate, layer_multipliers
from .errors import InstantIDError
from .faces import PER_PICTURE, InstantIDFaces, combine_embeddings
from .resampler import Resampler
from .unet_layers import CrossAttentionLayer, assign_adapter_indices

logger = logging.getLogger(__name__)

NOISE_SEED = 0x1D
"""Seed of the generator for the unconditional embedding's noise: the same inputs give the same tokens."""


@dataclass(frozen=True)
class IdentityTokens:
    """Identity tokens, float32 on the CPU: the conditional tokens of each identity, (N, tokens, token_dim), and the
    unconditional tokens they share, (1, tokens, token_dim). N is 1 unless every picture of a batch has its own
    identity ('per picture')."""

    cond: torch.Tensor
    uncond: torch.Tensor

    @property
    def identities(self) -> int:
        """How many identities: 1, or one per picture of the batch."""
        return self.cond.shape[0]

    def stacked(self) -> torch.Tensor:
        """(N + 1, tokens, token_dim): rows 0..N-1 the identities, row N the unconditional tokens (the order
        IdentityKV and IdentityNet keep; see `identity_rows`)."""
        return torch.cat([self.cond, self.uncond])


@dataclass(frozen=True, eq=False)
class InstantIDAdapter:
    """The INSTANTID value: a validated adapter file and its float32 Resampler, both kept on the CPU."""

    weights: AdapterWeights
    resampler: Resampler
    path: str

    @classmethod
    def load(cls, path: str | Path) -> InstantIDAdapter:
        """Load and validate an adapter file and build its Resampler."""
        weights = load_adapter(path)
        return cls(weights=weights, resampler=weights.build_resampler(), path=str(path))

    def tokens(
        self,
        embeddings: np.ndarray,
        combine: str = "average",
        noise: float = 0.0,
        weights: Sequence[float] | None = None,
    ) -> IdentityTokens:
        """Identity tokens of (N, 512) raw face embeddings, combined by `combine` (the averages weighted by
        `weights`, one per face); `noise` > 0 perturbs the zeros the unconditional tokens are made from. 'concat'
        keeps each face's tokens (N × tokens in all); 'joint' runs the Resampler once on all N faces as one
        (1, N, 512) sample, and on zeros of that shape for the unconditional tokens, as the reference pipeline does;
        'per picture' makes N identities, each with the tokens its face alone gives, sharing one unconditional set."""
        rows = torch.from_numpy(np.asarray(combine_embeddings(embeddings, combine, weights), dtype=np.float32))
        per_picture = combine == PER_PICTURE
        negative = torch.zeros(rows[:1].shape if per_picture else rows.shape)
        if noise > 0:
            negative = torch.rand(negative.shape, generator=torch.Generator().manual_seed(NOISE_SEED)) * noise
        cond = self.resampler.tokens(rows, torch.float32)
        uncond = self.resampler.tokens(negative, torch.float32)
        if per_picture:
            return IdentityTokens(cond=cond, uncond=uncond)
        return IdentityTokens(cond=cond.reshape(1, -1, cond.shape[-1]), uncond=uncond.reshape(1, -1, uncond.shape[-1]))

    def face_tokens(self, faces: InstantIDFaces, combine: str = "average", noise: float = 0.0) -> IdentityTokens:
        """Identity tokens of analysed faces, their recogniser checked and their weights applied; 'per picture' needs
        a face in every photo (photo i is picture i's identity)."""
        skipped = faces.skipped_indices
        if combine == PER_PICTURE and skipped:
            raise InstantIDError(
                f"'per picture' gives picture i of the batch the face of photo i, but photo(s) "
                f"{', '.join(str(i + 1) for i in skipped)} of {len(faces.results)} have no face: remove them from the "
                "batch (and the latent batch with them), or choose a combination of all faces.",
                "no_face",
            )
        return self.tokens(faces.identity_embeddings(), combine, noise, faces.weights)

    def identity_kv(
        self, tokens: IdentityTokens, dtype: torch.dtype, scales: dict[int, float] | None = None
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Per adapter index: keys and values (2, tokens, width) of the stacked tokens, computed once, in dtype; the
        values multiplied by the index's scale in `scales` (before the cast)."""
        return compute_identity_kv(self.weights, tokens.stacked(), dtype, scales)

    def identity_attention(
        self,
        layers: list[CrossAttentionLayer],
        tokens: IdentityTokens,
        weight: float,
        weight_type: str,
        gate: SigmaGate,
        region: RegionMask | None,
        dtype: torch.dtype,
        owner: str = "the InstantID node",
    ) -> IdentityAttention:
        """What every patched layer of one apply shares, for the model's cross-attention `layers` (in the UNet's
        input → middle → output walk): the layers paired one to one with this adapter's K/V weights (or an error
        before anything is computed), the identity K/V computed once in `dtype` with each layer's V multiplied by
        its scale (`weight` by `weight_type`'s profile), the gate and the region; `owner` names the node in errors."""
        adapter_index = assign_adapter_indices(layers, self.weights.layer_widths, self.weights.token_dim)
        multipliers = layer_multipliers(weight_type, layers)
        scales = {adapter_index[layer.key]: weight * m for layer, m in zip(layers, multipliers, strict=True)}
        return IdentityAttention(
            kv=IdentityKV(
                self.identity_kv(tokens, dtype, scales), {adapter_index[layer.key]: layer.heads for layer in layers}
            ),
            adapter_index=adapter_index,
            gate=gate,
            region=region,
            owner=owner,
        )

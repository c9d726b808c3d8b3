"""The perceiver Resampler that turns a face embedding into InstantID's identity tokens.

The tensor names are those of InstantID's `ip-adapter.bin` `image_proj` dict (docs/design.md, "Adapter file format"): `latents`, `proj_in`,
`proj_out`, `norm_out` and, per layer i, an attention block `layers.i.0.*` and a feed-forward block `layers.i.1.*`.
Every dimension is read from the tensors; nothing assumes the 1280/2048/16/512 of the published file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn
from torch.func import functional_call

from .errors import InstantIDError

logger = logging.getLogger(__name__)

DIM_HEAD = 64
"""Width of one attention head; InstantID and IP-Adapter Plus both use 64."""

_LAYER_KEY = re.compile(r"layers\.(\d+)\.")


@dataclass(frozen=True)
class ResamplerConfig:
    """Every dimension of a Resampler: hidden width, layers, heads, query tokens, input and output widths."""

    dim: int
    depth: int
    heads: int
    num_queries: int
    embedding_dim: int
    output_dim: int
    ff_mult: float = 4.0

    @property
    def inner_dim(self) -> int:
        """Width of the attention projections (heads × 64)."""
        return self.heads * DIM_HEAD

    @property
    def ff_dim(self) -> int:
        """Hidden width of the feed-forward blocks."""
        return round(self.dim * self.ff_mult)

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The exact key set and tensor shapes of a state dict with this configuration."""
        d, inner, ff = self.dim, self.inner_dim, self.ff_dim
        shapes: dict[str, tuple[int, ...]] = {
            "latents": (1, self.num_queries, d),
            "proj_in.weight": (d, self.embedding_dim),
            "proj_in.bias": (d,),
            "proj_out.weight": (self.output_dim, d),
            "proj_out.bias": (self.output_dim,),
            "norm_out.weight": (self.output_dim,),
            "norm_out.bias": (self.output_dim,),
        }
        for i in range(self.depth):
            shapes.update(
                {
                    f"layers.{i}.0.norm1.weight": (d,),
                    f"layers.{i}.0.norm1.bias": (d,),
                    f"layers.{i}.0.norm2.weight": (d,),
                    f"layers.{i}.0.norm2.bias": (d,),
                    f"layers.{i}.0.to_q.weight": (inner, d),
                    f"layers.{i}.0.to_kv.weight": (2 * inner, d),
                    f"layers.{i}.0.to_out.weight": (d, inner),
                    f"layers.{i}.1.0.weight": (d,),
                    f"layers.{i}.1.0.bias": (d,),
                    f"layers.{i}.1.1.weight": (ff, d),
                    f"layers.{i}.1.3.weight": (d, ff),
                }
            )
        return shapes

    def mismatches(self, shapes: Mapping[str, Sequence[int]], prefix: str = "") -> list[str]:
        """Every missing key, unexpected key and wrong shape of `shapes` against this configuration (empty if none)."""
        expected = self.expected_shapes()
        problems = [f"{prefix}{key} is missing" for key in expected if key not in shapes]
        problems += [f"{prefix}{key} is unexpected" for key in shapes if key not in expected]
        problems += [
            f"{prefix}{key} has shape {_fmt_shape(shapes[key])}, expected {_fmt_shape(shape)}"
            for key, shape in expected.items()
            if key in shapes and tuple(shapes[key]) != shape
        ]
        return problems

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, Sequence[int]], prefix: str = "") -> ResamplerConfig:
        """Infer every dimension from the tensor shapes of a Resampler state dict (InstantIDError if it cannot)."""

        def anchor(key: str, rank: int) -> tuple[int, ...]:
            if key not in shapes:
                raise InstantIDError(
                    f"{prefix}{key} is missing, so the Resampler's dimensions cannot be read", "wrong_model_file"
                )
            shape = tuple(int(s) for s in shapes[key])
            if len(shape) != rank or min(shape) < 1:
                raise InstantIDError(
                    f"{prefix}{key} has shape {_fmt_shape(shape)}, expected a {rank}-d shape", "wrong_model_file"
                )
            return shape

        _, num_queries, dim = anchor("latents", 3)
        _, embedding_dim = anchor("proj_in.weight", 2)
        output_dim, _ = anchor("proj_out.weight", 2)
        inner, _ = anchor("layers.0.0.to_q.weight", 2)
        ff_dim, _ = anchor("layers.0.1.1.weight", 2)
        if inner % DIM_HEAD:
            raise InstantIDError(
                f"{prefix}layers.0.0.to_q.weight has {inner} rows, not a multiple of the {DIM_HEAD}-wide heads",
                "wrong_model_file",
            )
        indices = sorted({int(m.group(1)) for key in shapes if (m := _LAYER_KEY.match(key))})
        if indices != list(range(len(indices))):
            raise InstantIDError(
                f"{prefix}layers are numbered {indices}, expected 0..{len(indices) - 1} without gaps",
                "wrong_model_file",
            )
        return cls(
            dim=dim,
            depth=len(indices),
            heads=inner // DIM_HEAD,
            num_queries=num_queries,
            embedding_dim=embedding_dim,
            output_dim=output_dim,
            ff_mult=ff_dim / dim,
        )


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


class PerceiverAttention(nn.Module):
    """Latents attend to the layer-normed inputs concatenated with themselves (no biases)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        inner = heads * DIM_HEAD
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, DIM_HEAD).transpose(1, 2)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) inputs and (B, Q, dim) latents -> (B, Q, dim) attention output."""
        x = self.norm1(x)
        latents = self.norm2(latents)
        batch, num_queries, _ = latents.shape
        q = self._split_heads(self.to_q(latents))
        k, v = (self._split_heads(t) for t in self.to_kv(torch.cat((x, latents), dim=1)).chunk(2, dim=-1))
        scale = DIM_HEAD**-0.25  # applied to q and k each: 1/sqrt(64) overall, kept small before the product
        weight = (q * scale) @ (k * scale).transpose(-2, -1)
        weight = torch.softmax(weight.float(), dim=-1).to(v.dtype)
        out = (weight @ v).transpose(1, 2).reshape(batch, num_queries, -1)
        return self.to_out(out)


def _feed_forward(dim: int, ff_dim: int) -> nn.Sequential:
    """LayerNorm -> Linear -> GELU -> Linear (no biases): keys `0.*`, `1.weight`, `3.weight`."""
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, ff_dim, bias=False),
        nn.GELU(),
        nn.Linear(ff_dim, dim, bias=False),
    )


class Resampler(nn.Module):
    """Perceiver resampler: (B, N, embedding_dim) face embeddings -> (B, num_queries, output_dim) identity tokens."""

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        heads: int,
        num_queries: int,
        embedding_dim: int,
        output_dim: int,
        ff_mult: float = 4.0,
    ):
        super().__init__()
        self.config = ResamplerConfig(dim, depth, heads, num_queries, embedding_dim, output_dim, ff_mult)
        self.latents = nn.Parameter(torch.randn(1, num_queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, heads), _feed_forward(dim, self.config.ff_dim)])
            for _ in range(depth)
        )

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> Resampler:
        """Build a float32 Resampler from an `image_proj` state dict, inferring every dimension from its tensors."""
        shapes = {key: tuple(t.shape) for key, t in state_dict.items()}
        config = ResamplerConfig.from_shapes(shapes)
        problems = config.mismatches(shapes)
        if problems:
            raise InstantIDError(
                "The Resampler weights do not fit together: " + "; ".join(problems), "wrong_model_file"
            )
        with torch.device("meta"):
            module = cls(**{f.name: getattr(config, f.name) for f in fields(config)})
        module.load_state_dict({key: t.to(torch.float32) for key, t in state_dict.items()}, assign=True)
        module.requires_grad_(False)
        module.eval()
        logger.debug("Resampler built: %s", config)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, embedding_dim) -> (B, num_queries, output_dim), in the dtype of the weights."""
        latents = self.latents.expand(x.shape[0], -1, -1)
        x = self.proj_in(x)
        for attention, feed_forward in self.layers:
            latents = attention(x, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))

    @torch.no_grad()
    def tokens(self, embeds: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
        """Identity tokens for (B, embedding_dim) or (B, N, embedding_dim) embeds, computed in float32, cast to out_dtype.

        The result lies on the Resampler's device. float32 holds even if the module's weights were cast to a half
        type or the caller runs under autocast: fp16 overflow here is a known cause of black images.
        """
        if embeds.ndim == 2:
            embeds = embeds.unsqueeze(1)
        if embeds.ndim != 3 or embeds.shape[-1] != self.config.embedding_dim:
            raise InstantIDError(
                f"Face embeddings of shape {_fmt_shape(embeds.shape)} do not fit this InstantID adapter, which expects "
                f"(batch, {self.config.embedding_dim}): use the face embeddings of the InstantID face analysis "
                "(antelopev2) with the InstantID ip-adapter.bin",
                "bad_embeddings",
            )
        x = embeds.to(device=self.latents.device, dtype=torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if all(t.dtype == torch.float32 for t in self.state_dict().values()):
                out = self(x)
            else:
                weights32 = {key: t.to(torch.float32) for key, t in self.state_dict().items()}
                out = functional_call(self, weights32, (x,))
        return out.to(out_dtype)

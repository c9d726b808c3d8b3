"""Loading and validating InstantID's adapter file (`ip-adapter.bin`), and the per-layer identity K/V it yields.

The file holds the Resampler (`image_proj`) and, for every cross-attention layer n of the UNet, the two projections
`ip_adapter.{n}.to_k_ip.weight` / `ip_adapter.{n}.to_v_ip.weight` of shape (hidden, token_dim) (docs/design.md, "Adapter file format").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from . import model_files
from .errors import InstantIDError
from .model_facts import ADAPTER
from .resampler import Resampler, ResamplerConfig

logger = logging.getLogger(__name__)

OFFICIAL_SOURCE = ADAPTER.source
"""Where the InstantID adapter is published; named in error messages."""

_IMAGE_PROJ = "image_proj."
_IP_ADAPTER = "ip_adapter."
_KV_KEY = re.compile(r"(\d+)\.to_([kv])_ip\.weight")
_MAX_LISTED_PROBLEMS = 8


@dataclass(frozen=True, eq=False)
class AdapterWeights:
    """A validated InstantID adapter: Resampler tensors, identity K/V projections per layer index, and its dimensions."""

    image_proj: dict[str, torch.Tensor]
    kv: dict[int, tuple[torch.Tensor, torch.Tensor]]
    embedding_dim: int
    token_dim: int
    num_tokens: int
    layer_widths: dict[int, int]

    def build_resampler(self) -> Resampler:
        """A float32 Resampler built from this adapter's `image_proj` tensors."""
        return Resampler.from_state_dict(self.image_proj)


def load_adapter(path: str | Path) -> AdapterWeights:
    """Load and validate an InstantID adapter (.bin/.pt/.pth pickle or .safetensors, nested or flattened keys)."""
    path = Path(path)
    if not path.is_file():
        raise InstantIDError(
            f"InstantID adapter not found: {path}. Download it from {OFFICIAL_SOURCE}.", "model_not_found"
        )
    tensors = model_files.load_tensors(path)
    identity = model_files.identify_shapes({key: tuple(t.shape) for key, t in tensors.items()})
    if identity.kind not in (model_files.FileKind.INSTANTID_ADAPTER, model_files.FileKind.IP_ADAPTER_UNKNOWN):
        raise InstantIDError(
            f"{path} is not an InstantID adapter: it is {identity.description}. "
            f"Load InstantID's own adapter, from {OFFICIAL_SOURCE}.",
            "wrong_model_file",
        )
    weights = _validated(path, tensors)
    logger.info(
        "Loaded InstantID adapter %s: embedding %d -> %d tokens of %d, %d K/V pairs",
        path,
        weights.embedding_dim,
        weights.num_tokens,
        weights.token_dim,
        len(weights.kv),
    )
    return weights


def _validated(path: Path, tensors: dict[str, torch.Tensor]) -> AdapterWeights:
    """The AdapterWeights if every key and shape is as the InstantID layout requires (docs/design.md); else InstantIDError listing the problems."""
    image_proj = {k.removeprefix(_IMAGE_PROJ): t for k, t in tensors.items() if k.startswith(_IMAGE_PROJ)}
    ip_adapter = {k.removeprefix(_IP_ADAPTER): t for k, t in tensors.items() if k.startswith(_IP_ADAPTER)}
    problems = [f"{key} is unexpected" for key in tensors if not key.startswith((_IMAGE_PROJ, _IP_ADAPTER))]
    shapes = {key: tuple(t.shape) for key, t in image_proj.items()}
    try:
        config = ResamplerConfig.from_shapes(shapes, prefix=_IMAGE_PROJ)
    except InstantIDError as e:
        raise _invalid(path, problems + [str(e)]) from None
    problems += config.mismatches(shapes, prefix=_IMAGE_PROJ)
    problems += [
        f"{_IMAGE_PROJ}{key} holds {t.dtype}, not floating-point weights"
        for key, t in image_proj.items()
        if not t.is_floating_point()
    ]
    kv, kv_problems = _kv_pairs(ip_adapter, config.output_dim)
    problems += kv_problems
    if problems:
        raise _invalid(path, problems)
    return AdapterWeights(
        image_proj=image_proj,
        kv=kv,
        embedding_dim=config.embedding_dim,
        token_dim=config.output_dim,
        num_tokens=config.num_queries,
        layer_widths={n: k.shape[0] for n, (k, _) in kv.items()},
    )


def _kv_pairs(
    ip_adapter: dict[str, torch.Tensor], token_dim: int
) -> tuple[dict[int, tuple[torch.Tensor, torch.Tensor]], list[str]]:
    """Group `{n}.to_k_ip.weight` / `{n}.to_v_ip.weight` by n and check that each pair is complete and well-shaped."""
    problems: list[str] = []
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in ip_adapter.items():
        match = _KV_KEY.fullmatch(key)
        if match is None:
            problems.append(f"{_IP_ADAPTER}{key} is unexpected")
        else:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    if not found:
        problems.append(f"{_IP_ADAPTER}* holds no to_k_ip/to_v_ip weights")
    kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for n in sorted(found):
        pair = found[n]
        if len(pair) != 2:
            have, lack = ("k", "v") if "k" in pair else ("v", "k")
            problems.append(
                f"{_IP_ADAPTER}{n}.to_{lack}_ip.weight is missing (its partner {_IP_ADAPTER}{n}.to_{have}_ip.weight "
                "is present)"
            )
            continue
        k, v = pair["k"], pair["v"]
        for name, t in (("k", k), ("v", v)):
            if t.ndim != 2 or t.shape[1] != token_dim or not t.is_floating_point():
                problems.append(
                    f"{_IP_ADAPTER}{n}.to_{name}_ip.weight has shape {tuple(t.shape)} ({t.dtype}), expected "
                    f"floating-point (hidden, {token_dim})"
                )
        if k.shape != v.shape:
            problems.append(
                f"{_IP_ADAPTER}{n}.to_k_ip.weight {tuple(k.shape)} and to_v_ip.weight {tuple(v.shape)} differ in shape"
            )
        kv[n] = (k, v)
    return kv, problems


def _invalid(path: Path, problems: list[str]) -> InstantIDError:
    """One InstantIDError naming the first of the problems found in the adapter at path."""
    listed = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
    more = f" (and {len(problems) - _MAX_LISTED_PROBLEMS} more)" if len(problems) > _MAX_LISTED_PROBLEMS else ""
    return InstantIDError(
        f"{path} is not a valid InstantID adapter: {listed}{more}. The file is damaged or was altered: "
        f"download it again from {OFFICIAL_SOURCE}.",
        "wrong_model_file",
    )


@torch.no_grad()
def compute_identity_kv(
    weights: AdapterWeights,
    tokens: torch.Tensor,
    dtype: torch.dtype | None = None,
    scales: dict[int, float] | None = None,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per layer index n: (tokens @ to_k_ip^T, scales[n] · tokens @ to_v_ip^T), in float32 on the tokens' device,
    cast to dtype.

    tokens is (B, num_tokens, token_dim); dtype defaults to the tokens' dtype; a layer without a scale keeps 1.
    Compute once per sampling, not per step.
    """
    if tokens.ndim != 3 or tokens.shape[-1] != weights.token_dim:
        raise InstantIDError(
            f"Identity tokens of shape {tuple(tokens.shape)} do not fit this InstantID adapter, which expects "
            f"(batch, {weights.num_tokens}, {weights.token_dim}): use tokens from this adapter's Resampler",
            "bad_embeddings",
        )
    out_dtype = tokens.dtype if dtype is None else dtype
    tokens32 = tokens.to(torch.float32)
    result: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.autocast(device_type=tokens32.device.type, enabled=False):
        for n, (k, v) in weights.kv.items():
            k32 = k.to(device=tokens32.device, dtype=torch.float32)
            v32 = v.to(device=tokens32.device, dtype=torch.float32)
            values = tokens32 @ v32.T
            if scales is not None and n in scales:
                values = values * scales[n]
            result[n] = ((tokens32 @ k32.T).to(out_dtype), values.to(out_dtype))
    return result

"""Random weights at sane scales for stand-in models, one tensor at a time and reproducible per tensor name.

Scales: Linear/conv weights ~ N(0, gain^2 / fan_in), biases 0, norm weights 1, embeddings N(0, 0.02^2). Layers whose
output is added back onto a residual stream get a smaller gain, so activations stay near unit size through deep stacks
(finite in fp16 as well as fp32).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from enum import Enum

import torch

from scripts.standins.safetensors_stream import TensorSpec

EMBEDDING_STD = 0.02
RESIDUAL_GAIN = 0.25
# Output projections of residual branches, in ComfyUI/ldm, OpenCLIP, HF CLIP and diffusers names alike.
RESIDUAL_OUTPUT = re.compile(
    r"(\.out_layers\.3|\.to_out\.0|\.ff\.net\.2|\.proj_out|\.conv2|\.out_proj|\.mlp\.fc2|\.mlp\.c_proj)\.weight$"
)


class Fill(Enum):
    """How a tensor is filled."""

    NORMAL = "normal"  # N(0, value^2)
    CONSTANT = "constant"  # every element = value
    ARANGE = "arange"  # 0, 1, 2, ... in storage order (position ids)


@dataclass(frozen=True)
class Init:
    """A fill rule with its number (the std for NORMAL, the value for CONSTANT)."""

    fill: Fill
    value: float = 0.0


ZEROS = Init(Fill.CONSTANT, 0.0)
ONES = Init(Fill.CONSTANT, 1.0)


def fan_in_normal(shape: tuple[int, ...], gain: float = 1.0) -> Init:
    """N(0, gain^2 / fan_in) for a Linear (out, in) or conv (out, in, *kernel) weight."""
    return Init(Fill.NORMAL, gain / math.sqrt(math.prod(shape[1:])))


def layer_init(name: str, shape: tuple[int, ...], residual_gain: float = RESIDUAL_GAIN) -> Init:
    """The rule for an ordinary layer tensor: bias 0, 1-d weight (a norm) 1, else fan-in normal (less on residuals)."""
    if len(shape) == 1:
        return ZEROS if name.endswith("bias") else ONES
    if len(shape) < 2 or not name.endswith("weight"):
        raise ValueError(f"no init rule for tensor {name!r} of shape {shape}")
    return fan_in_normal(shape, residual_gain if RESIDUAL_OUTPUT.search(name) else 1.0)


def tensor_seed(seed: int, name: str) -> int:
    """A generator seed from the file's seed and the tensor's name (so values do not depend on tensor order).

    32 bits: torch's CPU generator keeps only the low 32 bits of a seed, so the file's seed is hashed in with the name
    (two files with the same tensor names, such as the two ControlNets, must differ)."""
    return zlib.crc32(f"{seed}/{name}".encode())


def make_tensor(spec: TensorSpec, init: Init, seed: int) -> torch.Tensor:
    """The tensor `spec` filled by `init`, drawn from a generator seeded by (seed, spec.name)."""
    if init.fill is Fill.NORMAL:
        generator = torch.Generator().manual_seed(tensor_seed(seed, spec.name))
        values = torch.randn(spec.shape, generator=generator, dtype=torch.float32).mul_(init.value)
    elif init.fill is Fill.CONSTANT:
        values = torch.full(spec.shape, init.value, dtype=torch.float32)
    else:
        values = torch.arange(spec.numel, dtype=torch.int64).reshape(spec.shape)
    return values.to(spec.dtype)

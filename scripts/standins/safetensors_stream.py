"""A .safetensors writer that streams: the header first (offsets computed from the shapes), then each tensor's bytes,
made on demand one at a time, so memory holds about one tensor however large the file is."""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

# safetensors' dtype codes (the format's own names).
DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
HEADER_ALIGNMENT = 8  # the reference writer pads the JSON header with spaces to a multiple of 8 bytes


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and storage dtype of one tensor of a file."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes in the file."""
        return self.numel * torch.empty((), dtype=self.dtype).element_size()


def safetensors_header(specs: Sequence[TensorSpec], metadata: Mapping[str, str] | None = None) -> bytes:
    """The 8-byte length plus the padded JSON header of a file holding `specs` in this order."""
    header: dict[str, object] = {}
    if metadata:
        bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
        if bad:
            raise ValueError(f"safetensors metadata must map str to str; these entries do not: {bad}")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for spec in specs:
        if spec.name in header:
            raise ValueError(f"tensor name {spec.name!r} appears twice (or clashes with __metadata__)")
        if spec.dtype not in DTYPE_CODES:
            raise ValueError(f"tensor {spec.name!r}: dtype {spec.dtype} cannot be stored in safetensors")
        header[spec.name] = {
            "dtype": DTYPE_CODES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % HEADER_ALIGNMENT)
    return struct.pack("<Q", len(text)) + text


def write_safetensors(
    path: Path,
    specs: Sequence[TensorSpec],
    make_tensor: Callable[[TensorSpec], torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write `specs` to `path`, asking `make_tensor(spec)` for each tensor in turn; returns the file size in bytes."""
    if sys.byteorder != "little":
        raise RuntimeError(
            "safetensors stores little-endian bytes; this writer copies native bytes and needs a little-endian machine"
        )
    header = safetensors_header(specs, metadata)
    with open(path, "wb") as f:
        f.write(header)
        for spec in specs:
            tensor = make_tensor(spec)
            if tuple(tensor.shape) != tuple(spec.shape) or tensor.dtype != spec.dtype:
                raise ValueError(
                    f"tensor {spec.name!r}: made {tuple(tensor.shape)} {tensor.dtype}, "
                    f"the header says {spec.shape} {spec.dtype}"
                )
            raw = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            f.write(memoryview(raw.numpy()))
            del tensor, raw
        return f.tell()

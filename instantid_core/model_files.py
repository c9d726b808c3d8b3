"""Identify model files by their content (tensor keys and shapes, file signatures), never by their names.

`identify(path)` reads only what it needs: the JSON header of a safetensors file, the pickle of a torch file (with
`weights_only=True` and memory-mapped tensors), the graph signature of an ONNX file, the first bytes of anything else.
`load_tensors(path)` loads every tensor of a safetensors file or torch pickle with the same safety rules.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

from .dependencies import require
from .errors import InstantIDError
from .model_facts import SDXL_CONTEXT_WIDTH

logger = logging.getLogger(__name__)


class FileKind(Enum):
    """What identify() found a file to be."""

    INSTANTID_ADAPTER = "instantid_adapter"
    PLAIN_IP_ADAPTER = "plain_ip_adapter"
    IP_ADAPTER_FULL_FACE = "ip_adapter_full_face"
    IP_ADAPTER_PLUS = "ip_adapter_plus"
    IP_ADAPTER_FACEID = "ip_adapter_faceid"
    IP_ADAPTER_FACEID_PLUS = "ip_adapter_faceid_plus"
    IP_ADAPTER_UNKNOWN = "ip_adapter_unknown"
    SDXL_CONTROLNET = "sdxl_controlnet"
    CONTROLNET = "controlnet"
    SD15_CHECKPOINT = "sd15_checkpoint"
    SD2_CHECKPOINT = "sd2_checkpoint"
    SDXL_CHECKPOINT = "sdxl_checkpoint"
    CHECKPOINT = "checkpoint"
    UNET = "unet"
    FLUX = "flux"
    LORA = "lora"
    CLIP_VISION = "clip_vision"
    VAE = "vae"
    LFS_POINTER = "lfs_pointer"
    HTML_PAGE = "html_page"
    TEXT_FILE = "text_file"
    ZIP_ARCHIVE = "zip_archive"
    EMPTY = "empty"
    TRUNCATED = "truncated"
    UNSAFE_PICKLE = "unsafe_pickle"
    ONNX = "onnx"
    MISSING = "missing"
    UNRECOGNISED = "unrecognised"


IP_ADAPTERS = frozenset(
    {
        FileKind.PLAIN_IP_ADAPTER,
        FileKind.IP_ADAPTER_FULL_FACE,
        FileKind.IP_ADAPTER_PLUS,
        FileKind.IP_ADAPTER_FACEID,
        FileKind.IP_ADAPTER_FACEID_PLUS,
    }
)
"""The IP-Adapter models this pack identifies (their place is models/ipadapter)."""
NO_MODEL = frozenset(
    {
        FileKind.MISSING,
        FileKind.EMPTY,
        FileKind.LFS_POINTER,
        FileKind.HTML_PAGE,
        FileKind.TEXT_FILE,
        FileKind.ZIP_ARCHIVE,
        FileKind.TRUNCATED,
        FileKind.UNSAFE_PICKLE,
    }
)
"""Files that hold no usable model (missing, or a failed or wrong download): their description says how to get the
real file."""

CLIP_VISION_WIDTHS = frozenset({768, 1024, 1280, 1664})
"""Image-feature widths of the CLIP vision encoders IP-Adapter Plus models are fed with (ViT-L, -H, -bigG...)."""

_BASE_BY_CONTEXT = {768: "SD1.5", 1024: "SD2.x", 1280: "the SDXL refiner", SDXL_CONTEXT_WIDTH: "SDXL", 4096: "Flux/SD3"}
_SAFETENSORS_HEADER_LIMIT = 100_000_000
_HEAD_BYTES = 4096
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/v1"
_ZIP_MAGIC = b"PK\x03\x04"
_ONNX_SECOND_FIELD_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72})


@dataclass(frozen=True)
class FileIdentity:
    """What a model file is: a machine-readable kind and a human noun phrase ("an SD1.5 checkpoint (...)")."""

    kind: FileKind
    description: str


class _NoTensors(Exception):
    """Raised inside this module when a file holds no readable tensors; carries what the file is instead."""

    def __init__(self, identity: FileIdentity):
        super().__init__(identity.description)
        self.identity = identity


def identify(path: str | Path) -> FileIdentity:
    """Identify a model file by its content, reading only headers and keys where the format allows."""
    path = Path(path)
    try:
        return identify_shapes(_read_shapes(path))
    except _NoTensors as found:
        return found.identity


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file or torch pickle (weights only, on the CPU), nested dicts joined with dots."""
    path = Path(path)
    try:
        container = _container(path)
        if container == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return _flatten(_torch_load(path, mmap=False))
    except _NoTensors as found:
        raise InstantIDError(
            f"{path} cannot be loaded: it is {found.identity.description}", "wrong_model_file"
        ) from None


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a model file by key (read from headers where the format allows); empty for a file
    that holds no tensors."""
    try:
        return _read_shapes(Path(path))
    except _NoTensors:
        return {}


def _read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    container = _container(path)
    if container == "safetensors":
        return _safetensors_shapes(path)
    tensors = _flatten(_torch_load(path, mmap=container == "torch_zip"))
    return {key: tuple(t.shape) for key, t in tensors.items()}


def _container(path: Path) -> str:
    """'safetensors', 'torch_zip' or 'pickle'; raises _NoTensors for anything that is not a tensor file."""
    if not path.is_file():
        raise _NoTensors(FileIdentity(FileKind.MISSING, f"a missing file (nothing at {path})"))
    size = path.stat().st_size
    if size == 0:
        raise _NoTensors(
            FileIdentity(FileKind.EMPTY, "an empty file (0 bytes): the download failed; download it again")
        )
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(_LFS_MAGIC):
        raise _NoTensors(_lfs_identity(head, size))
    if _is_html(head):
        raise _NoTensors(
            FileIdentity(
                FileKind.HTML_PAGE,
                f"an HTML web page ({size} bytes) saved instead of the model file: download the file itself "
                "(on Hugging Face the 'download' link or a '/resolve/' URL, not the '/blob/' page)",
            )
        )
    if len(head) >= 9 and head[8:9] == b"{":
        return _check_safetensors_header(path, head, size)
    if head.startswith(_ZIP_MAGIC):
        return _check_zip(path, size)
    if len(head) >= 2 and head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "pickle"
    if _looks_like_onnx(head):
        raise _NoTensors(_onnx_identity(path))
    raise _NoTensors(_unknown_bytes_identity(head, size))


def _lfs_identity(head: bytes, size: int) -> FileIdentity:
    match = re.search(rb"^size (\d+)", head, re.MULTILINE)
    real = f" (the real file is {int(match.group(1)):,} bytes)" if match else ""
    return FileIdentity(
        FileKind.LFS_POINTER,
        f"a Git LFS pointer ({size} bytes), a placeholder and not the model itself{real}: download the real file "
        "(git lfs pull, or the download link of the model page)",
    )


def _is_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")) or b"<html" in text[:1024]


def _check_safetensors_header(path: Path, head: bytes, size: int) -> str:
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > _SAFETENSORS_HEADER_LIMIT:
        raise _NoTensors(_unknown_bytes_identity(head, size))
    if 8 + header_len > size:
        raise _NoTensors(_truncated("safetensors", size, f"its header alone needs {8 + header_len:,} bytes"))
    header = _safetensors_header(path, header_len)
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    needed = 8 + header_len + max(ends, default=0)
    if needed > size:
        raise _NoTensors(_truncated("safetensors", size, f"its header announces {needed:,} bytes"))
    return "safetensors"


def _safetensors_header(path: Path, header_len: int) -> dict:
    with path.open("rb") as f:
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _NoTensors(_truncated("safetensors", path.stat().st_size, "its JSON header is unreadable")) from None
    if not isinstance(header, dict):
        raise _NoTensors(_truncated("safetensors", path.stat().st_size, "its header is not a table of tensors"))
    return header


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    header = _safetensors_header(path, header_len)
    return {key: tuple(entry["shape"]) for key, entry in header.items() if key != "__metadata__"}


def _check_zip(path: Path, size: int) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise _NoTensors(_truncated("zip (torch)", size, "its end-of-archive directory is missing")) from None
    if any(name.endswith("data.pkl") for name in names):
        return "torch_zip"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise _NoTensors(
        FileIdentity(
            FileKind.ZIP_ARCHIVE, f"a zip archive, not a model ({len(names)} entries: {shown}): extract it first"
        )
    )


def _truncated(container: str, size: int, evidence: str) -> FileIdentity:
    return FileIdentity(
        FileKind.TRUNCATED,
        f"a truncated or damaged {container} file ({size:,} bytes; {evidence}): the download was cut short, "
        "download it again",
    )


def _torch_load(path: Path, mmap: bool) -> object:
    """torch.load with weights_only=True on the CPU; refusals and damage become _NoTensors."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        logger.warning("Refused to unpickle %s: %s", path, str(e).splitlines()[0])
        raise _NoTensors(
            FileIdentity(
                FileKind.UNSAFE_PICKLE,
                "a pickle that contains code or unsupported objects, refused for safety and not loaded: "
                "download the official file",
            )
        ) from None
    except (EOFError, IndexError, RuntimeError, ValueError, struct.error) as e:
        evidence = (str(e).splitlines() or [type(e).__name__])[0][:120]  # a cut file may raise a bare EOFError
        raise _NoTensors(_truncated("torch pickle", path.stat().st_size, evidence)) from None


def _flatten(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of nested dicts keyed by their dotted paths; other values are dropped."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix[:-1]] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
    return out


def _looks_like_onnx(head: bytes) -> bool:
    """ONNX ModelProto: field 1 (ir_version, a small varint) first, then one of the model's other fields."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 30 and head[2] in _ONNX_SECOND_FIELD_TAGS


def _onnx_identity(path: Path) -> FileIdentity:
    onnx = require("onnx")
    from google.protobuf.message import DecodeError

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except (DecodeError, ValueError, OSError):
        return _truncated("ONNX", path.stat().st_size, "its graph cannot be parsed")
    initializers = {t.name for t in graph.initializer}
    inputs = [_onnx_value(v) for v in graph.input if v.name not in initializers]
    outputs = [_onnx_value(v) for v in graph.output]
    shown = ", ".join(outputs[:3]) + (f" and {len(outputs) - 3} more" if len(outputs) > 3 else "")
    return FileIdentity(FileKind.ONNX, f"an ONNX model (inputs {', '.join(inputs)}; {len(outputs)} outputs: {shown})")


def _onnx_value(value) -> str:
    dims = [
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim
    ]
    return f"{value.name} {'×'.join(dims)}"


def _unknown_bytes_identity(head: bytes, size: int) -> FileIdentity:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut by the read counts as text
        text = head[: e.start].decode("utf-8") if e.start >= len(head) - 3 else ""
    if text.strip() and all(c.isprintable() or c in "\r\n\t" for c in text):
        first_line = text.strip().splitlines()[0][:80]
        return FileIdentity(
            FileKind.TEXT_FILE,
            f"a text file ({size:,} bytes) starting with {first_line!r}, not a model: the download saved a "
            "message instead of the file; download the real file",
        )
    return FileIdentity(
        FileKind.UNRECOGNISED,
        f"an unrecognised file ({size:,} bytes, first bytes {head[:8].hex(' ')}) in no format this pack knows",
    )


def identify_shapes(shapes: Mapping[str, Sequence[int]]) -> FileIdentity:
    """Identify a state dict from its keys and tensor shapes (prefixes of nested dicts joined with dots)."""
    if any(k.startswith("state_dict.") for k in shapes):
        shapes = {k.removeprefix("state_dict."): v for k, v in shapes.items()}
    keys = list(shapes)
    if not keys:
        return FileIdentity(FileKind.UNRECOGNISED, "a file that holds no tensors")
    if any(k.startswith("image_proj.") for k in keys):
        return _identify_ip_adapter_family(shapes)
    if any(re.search(r"lora[._](up|down|A|B)\b", k) for k in keys):
        pairs = sum(1 for k in keys if re.search(r"lora[._](down|A)\b", k))
        return FileIdentity(FileKind.LORA, f"a LoRA ({pairs} low-rank pairs), not a model file for this slot")
    if any(k.endswith("controlnet_cond_embedding.conv_in.weight") for k in keys):
        return _controlnet("diffusers", shapes)
    if any("zero_convs." in k for k in keys) and any("input_hint_block." in k for k in keys):
        return _controlnet("ldm", shapes)
    if any("double_blocks." in k for k in keys):
        return FileIdentity(FileKind.FLUX, "a Flux model (double_blocks/single_blocks), not an SDXL model")
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return _checkpoint(shapes)
    context = _context_width(shapes)
    if context and any(k.startswith(("input_blocks.", "down_blocks.")) for k in keys):
        layout = "diffusers" if any(k.startswith("down_blocks.") for k in keys) else "ldm"
        return FileIdentity(
            FileKind.UNET, f"a bare UNet ({layout} layout, cross-attention width {context}: {_base(context)})"
        )
    if any(k.startswith("vision_model.encoder.layers.") for k in keys):
        width = shapes.get("vision_model.post_layernorm.weight", (0,))[0]
        return FileIdentity(
            FileKind.CLIP_VISION, f"a CLIP vision encoder (width {width}), used by IP-Adapter, not InstantID"
        )
    if any(k.startswith("encoder.conv_in.") for k in keys) and any(k.startswith("decoder.conv_out.") for k in keys):
        return FileIdentity(FileKind.VAE, "a VAE")
    shown = ", ".join(keys[:4])
    return FileIdentity(FileKind.UNRECOGNISED, f"an unrecognised set of {len(keys)} tensors (first keys: {shown})")


def _identify_ip_adapter_family(shapes: Mapping[str, Sequence[int]]) -> FileIdentity:
    proj = {k.removeprefix("image_proj."): tuple(v) for k, v in shapes.items() if k.startswith("image_proj.")}
    pairs = sum(1 for k in shapes if k.startswith("ip_adapter.") and k.endswith(".to_k_ip.weight"))
    ip_widths = {
        tuple(v)[-1] for k, v in shapes.items() if k.startswith("ip_adapter.") and k.endswith(".to_k_ip.weight")
    }
    base = _base(ip_widths.pop()) if len(ip_widths) == 1 else "an unknown model"
    if "latents" in proj and "proj_in.weight" in proj:
        emb = proj["proj_in.weight"][-1]
        num_tokens = proj["latents"][1]
        out = proj.get("proj_out.weight", (0,))[0]
        if emb in CLIP_VISION_WIDTHS:
            return FileIdentity(
                FileKind.IP_ADAPTER_PLUS,
                f"an IP-Adapter Plus (a Resampler fed by {emb}-wide CLIP image features, {num_tokens} tokens "
                f"of {out}; for {base}), not InstantID",
            )
        return FileIdentity(
            FileKind.INSTANTID_ADAPTER,
            f"an InstantID adapter (Resampler {emb}→{num_tokens}×{out}, {pairs} K/V pairs)",
        )
    if "perceiver_resampler.proj_in.weight" in proj:
        return FileIdentity(
            FileKind.IP_ADAPTER_FACEID_PLUS,
            f"an IP-Adapter FaceID Plus (face embedding plus CLIP features; for {base}), not InstantID",
        )
    if "proj.weight" in proj and "norm.weight" in proj:
        width = proj["norm.weight"][0]
        num_tokens = proj["proj.weight"][0] // width
        clip = proj["proj.weight"][-1]
        return FileIdentity(
            FileKind.PLAIN_IP_ADAPTER,
            f"a plain IP-Adapter (image projection from {clip}-wide CLIP image embeddings to {num_tokens} "
            f"tokens of {width}; for {base}), not InstantID",
        )
    if "proj.3.weight" in proj:
        return FileIdentity(FileKind.IP_ADAPTER_FULL_FACE, f"an IP-Adapter Full Face (for {base}), not InstantID")
    if "proj.0.weight" in proj and "norm.weight" in proj:
        width = proj["norm.weight"][0]
        num_tokens = proj["proj.2.weight"][0] // width if "proj.2.weight" in proj else 0
        return FileIdentity(
            FileKind.IP_ADAPTER_FACEID,
            f"an IP-Adapter FaceID (MLP projection from the {proj['proj.0.weight'][-1]}-d face embedding to "
            f"{num_tokens} tokens of {width}; for {base}), not InstantID, which needs a Resampler",
        )
    return FileIdentity(
        FileKind.IP_ADAPTER_UNKNOWN,
        f"an IP-Adapter-style file with an image projection this pack does not know (for {base})",
    )


def _context_width(shapes: Mapping[str, Sequence[int]]) -> int:
    """Cross-attention context width from the first attn2.to_k weight (0 if there is none)."""
    for key, shape in shapes.items():
        if key.endswith("attn2.to_k.weight"):
            return int(shape[-1])
    return 0


def _base(context: int) -> str:
    return _BASE_BY_CONTEXT.get(context, f"a model with {context}-wide cross-attention")


def _controlnet(layout: str, shapes: Mapping[str, Sequence[int]]) -> FileIdentity:
    context = _context_width(shapes)
    base = _base(context) if context else "no cross-attention"
    kind = FileKind.SDXL_CONTROLNET if context == SDXL_CONTEXT_WIDTH else FileKind.CONTROLNET
    return FileIdentity(kind, f"a ControlNet for {base} ({layout} layout, cross-attention width {context or 'none'})")


def _checkpoint(shapes: Mapping[str, Sequence[int]]) -> FileIdentity:
    context = _context_width(shapes)
    has_sdxl_conditioner = any(k.startswith("conditioner.embedders.") for k in shapes)
    if context == SDXL_CONTEXT_WIDTH and has_sdxl_conditioner:
        return FileIdentity(FileKind.SDXL_CHECKPOINT, f"an SDXL checkpoint (cross-attention width {context})")
    if context == 768:
        return FileIdentity(FileKind.SD15_CHECKPOINT, "an SD1.5 checkpoint (cross-attention width 768), not SDXL")
    if context == 1024:
        return FileIdentity(FileKind.SD2_CHECKPOINT, "an SD2.x checkpoint (cross-attention width 1024), not SDXL")
    return FileIdentity(
        FileKind.CHECKPOINT, f"a checkpoint for {_base(context)} (cross-attention width {context or 'unknown'})"
    )

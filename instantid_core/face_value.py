"""A face as a text value: an INSTANTID_FACE that travels inside a prompt, so that no server needs a saved-face file.

    instantid-face:<base64 of a saved face file's bytes>

The bytes are exactly what 'InstantID Save Face' writes to a file (saved_faces.py: the raw embeddings, keypoints,
boxes, detector scores and photo sizes as float32/int64 tensors, the format version, the recogniser and the photo
weights in the metadata), so the round trip is exact and the value is as versioned as the file. One face takes
about 3.5 KB of text (3,519 characters).
"""

from __future__ import annotations

import base64
import binascii
import json
import struct

from safetensors import SafetensorError
from safetensors.torch import load, save

from .errors import InstantIDError
from .faces import InstantIDFaces
from .saved_faces import face_tensors, faces_from_tensors

PREFIX = "instantid-face:"
"""How a face value starts."""


def face_to_text(faces: InstantIDFaces) -> str:
    """The chosen faces of `faces` (and their recogniser and weights) as a face value."""
    tensors, metadata = face_tensors(faces)
    return PREFIX + base64.b64encode(save(tensors, metadata=metadata)).decode("ascii")


def face_from_text(text: str) -> InstantIDFaces:
    """The faces of a face value; an InstantIDError (bad_face_value) saying what is wrong with anything else."""
    value = (text or "").strip()
    if not value.startswith(PREFIX):
        shown = value[:40] + ("..." if len(value) > 40 else "")
        raise InstantIDError(
            f"The face value {shown!r} is not an InstantID face value: one starts with '{PREFIX}' and is the "
            "'face_value' output of 'InstantID Save Face'. Copy it whole.",
            "bad_face_value",
        )
    try:
        data = base64.b64decode(value[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InstantIDError(
            "The face value is not intact (its text after 'instantid-face:' is not base64): it was cut or changed "
            "on the way. Copy the whole value from 'InstantID Save Face' again.",
            "bad_face_value",
        ) from None
    metadata = _metadata(data)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as e:
        raise InstantIDError(f"The face value is damaged ({e}): copy it again.", "bad_face_value") from None
    try:
        return faces_from_tensors(tensors, metadata, "The face value")
    except InstantIDError as e:  # a value, not a file: the client copied something else
        raise InstantIDError(str(e), "bad_face_value") from None


def _metadata(data: bytes) -> dict:
    """The metadata of safetensors bytes, or a bad_face_value error when they are cut short or not safetensors."""
    truncated = InstantIDError(
        f"The face value is truncated ({len(data)} bytes, where one face takes about 2,600): it was cut on the way. "
        "Copy the whole value from 'InstantID Save Face' again.",
        "bad_face_value",
    )
    if len(data) < 8:
        raise truncated
    (header_length,) = struct.unpack("<Q", data[:8])
    if 8 + header_length > len(data):
        raise truncated
    try:
        header = json.loads(data[8 : 8 + header_length])
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise InstantIDError("The face value is damaged: copy it again.", "bad_face_value") from None
    if 8 + header_length + end > len(data):
        raise truncated
    return header.get("__metadata__") or {}

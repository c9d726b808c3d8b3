"""Face analysis done once per photo: the faces found in a picture, kept across prompts, keyed by the picture's
content and the analysis settings.

ComfyUI's own node cache forgets an analysis as soon as another workflow runs in between; this cache does not. Its key
is the SHA-256 of the picture's pixels and shape together with what changes the result: the face pack (its folder
and model files, by name, size and modification time), the onnxruntime provider, the detection size and whether the
photo is resized as the reference pipeline does. What the node then chooses (largest face, index) is not part of the
key: it is applied to the cached faces.

The cache holds at most MAX_PICTURES pictures and MAX_BYTES of faces, the least recently used going first. A face
takes about 2.3 KB (its 512-d float32 embedding, keypoints and box), so the bound is reached only by thousands of
faces; the pixels themselves are never kept.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

import numpy as np

from .faces import DetectedFace

logger = logging.getLogger(__name__)

MAX_PICTURES = 512
"""The most pictures whose faces are kept."""
MAX_BYTES = 16 * 2**20
"""The most memory the kept faces take (16 MiB): arrays and a fixed allowance per face and per picture."""
FACE_OVERHEAD = 400
"""Bytes counted per face beyond its arrays (the Python objects that hold them)."""
PICTURE_OVERHEAD = 200
"""Bytes counted per picture beyond its faces (the key and the entry)."""


def picture_key(rgb: np.ndarray, settings: str) -> str:
    """The cache key of an H×W×3 uint8 picture analysed with `settings`: SHA-256 of both."""
    digest = hashlib.sha256()
    digest.update(repr((rgb.shape, str(rgb.dtype), settings)).encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def faces_size(faces: tuple[DetectedFace, ...]) -> int:
    """The bytes a cache entry of these faces counts."""
    arrays = sum(np.asarray(getattr(face, f)).nbytes for face in faces for f in ("embedding", "kps", "bbox"))
    return PICTURE_OVERHEAD + arrays + FACE_OVERHEAD * len(faces)


class AnalysisCache:
    """A bounded, least-recently-used store of the faces found per picture key (thread-safe)."""

    def __init__(self, max_pictures: int = MAX_PICTURES, max_bytes: int = MAX_BYTES):
        self.max_pictures, self.max_bytes = max_pictures, max_bytes
        self._entries: OrderedDict[str, tuple[tuple[DetectedFace, ...], int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[DetectedFace, ...] | None:
        """The faces kept for `key` (DetectedFace is immutable, its arrays read-only: safe to share), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: str, faces: tuple[DetectedFace, ...]) -> None:
        """Keep the faces of `key`, dropping the least recently used entries beyond the bounds."""
        size = faces_size(faces)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self.bytes -= self._entries.pop(key)[1]
            self._entries[key] = (tuple(faces), size)
            self.bytes += size
            while len(self._entries) > self.max_pictures or self.bytes > self.max_bytes:
                self.bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        """Forget every picture."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0


ANALYSES = AnalysisCache()
"""The process's cache of face analyses (one ComfyUI server: every prompt shares it)."""

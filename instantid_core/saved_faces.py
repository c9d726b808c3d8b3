"""Saved faces: an INSTANTID_FACE kept in a small safetensors file, to reuse a person without analysing photos again.

A file holds the chosen face of every analysed photo (skipped photos are left out): the raw 512-d embedding, the five
keypoints, the box, the detector score and the photo's size as tensors, and in its metadata the format, the recogniser
that made the embeddings (embeddings of different recognisers are not comparable) and the photo weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import model_files
from .errors import InstantIDError
from .face_pack import Recognizer
from .faces import DetectedFace, FaceAnalysisResult, InstantIDFaces

FORMAT = "instantid_face"
VERSION = "1"
TENSORS = {"embedding": (512,), "kps": (5, 2), "bbox": (4,), "det_score": (), "image_size": (2,)}
"""The tensors of a saved face file, each (faces, *shape)."""


def face_tensors(faces: InstantIDFaces) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of the chosen faces (and their recogniser and weights), as a saved face holds them."""
    chosen = faces.chosen_faces
    if not chosen:
        raise InstantIDError("There is no face to save: every photo was skipped.", "no_face")
    tensors = {
        "embedding": torch.from_numpy(np.stack([f.embedding for f in chosen])),
        "kps": torch.from_numpy(np.stack([f.kps for f in chosen])),
        "bbox": torch.from_numpy(np.stack([f.bbox for f in chosen])),
        "det_score": torch.tensor([f.det_score for f in chosen], dtype=torch.float32),
        "image_size": torch.tensor([f.image_size for f in chosen], dtype=torch.int64),
    }
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "recognizer": faces.recognizer.name,
        "recognizer_instantid": json.dumps(faces.recognizer.instantid),
        "weights": json.dumps(list(faces.weights) if faces.weights is not None else None),
    }
    return tensors, metadata


def save_faces(faces: InstantIDFaces, path: str | Path) -> int:
    """Write the chosen faces (and their recogniser and weights) to a safetensors file; returns how many."""
    tensors, metadata = face_tensors(faces)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return tensors["embedding"].shape[0]


def load_faces(path: str | Path) -> InstantIDFaces:
    """Read a saved face file back as INSTANTID_FACE (one 'photo' per saved face); anything else is a clear error."""
    path = Path(path)
    metadata = _metadata(path)
    if metadata.get("format") != FORMAT:
        found = model_files.identify(path)
        raise InstantIDError(
            f"{path.name} is not a saved InstantID face: it is {found.description}. Saved faces are written by "
            "'InstantID Save Face' into models/instantid/faces/.",
            "wrong_model_file",
        )
    return faces_from_tensors(load_file(str(path)), metadata, path.name)


def faces_from_tensors(tensors: dict, metadata: dict, name: str) -> InstantIDFaces:
    """INSTANTID_FACE from a saved face's tensors and metadata (one 'photo' per face); a wrong_model_file error that
    calls the source `name` for another format, another version or damaged data."""
    if metadata.get("format") != FORMAT:
        held = ", ".join(sorted(tensors)) or "nothing"
        raise InstantIDError(
            f"{name} is not a saved InstantID face (it holds {held}): a face is written by 'InstantID Save Face'.",
            "wrong_model_file",
        )
    if metadata.get("version") != VERSION:
        raise InstantIDError(
            f"{name} is a saved InstantID face of format version {metadata.get('version')}, which this version "
            f"of the pack does not read (it reads version {VERSION}): save the face again.",
            "wrong_model_file",
        )
    count = tensors["embedding"].shape[0] if "embedding" in tensors else 0
    for key, shape in TENSORS.items():
        if key not in tensors or tuple(tensors[key].shape) != (count, *shape) or count == 0:
            raise InstantIDError(
                f"{name} is a damaged saved face: its '{key}' data is missing or misshapen.", "wrong_model_file"
            )
    results = [
        FaceAnalysisResult(
            faces=(
                DetectedFace(
                    embedding=tensors["embedding"][i].numpy(),
                    kps=tensors["kps"][i].numpy(),
                    bbox=tensors["bbox"][i].numpy(),
                    det_score=float(tensors["det_score"][i]),
                    image_size=tuple(int(v) for v in tensors["image_size"][i]),
                ),
            ),
            chosen=0,
            batch_index=i,
        )
        for i in range(count)
    ]
    try:
        recognizer = Recognizer(metadata["recognizer"], json.loads(metadata["recognizer_instantid"]))
        weights = json.loads(metadata.get("weights") or "null")
    except (KeyError, ValueError):
        raise InstantIDError(
            f"{name} is a damaged saved face: its recogniser or weights are unreadable.", "wrong_model_file"
        ) from None
    faces = InstantIDFaces(results, recognizer=recognizer)
    return faces if weights is None else faces.with_weights(weights)


def _metadata(path: Path) -> dict:
    """The safetensors metadata of a file; an error naming what the file is when it is not safetensors."""
    try:
        with safe_open(str(path), framework="pt") as opened:
            return opened.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        found = model_files.identify(path) if path.is_file() else None
        what = found.description if found is not None else "missing"
        raise InstantIDError(
            f"{path} is not a saved InstantID face: it is {what}. Saved faces are safetensors files written by "
            "'InstantID Save Face'.",
            "wrong_model_file",
        ) from e

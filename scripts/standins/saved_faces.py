"""Stand-in saved faces: four people as 'InstantID Save Face' writes them (models/instantid/faces/*.safetensors), for
the workflows that start from saved faces. Their embeddings are random (norm ~25, as antelopev2's raw embeddings
are) and their recogniser is the stand-in pack's: stand-ins, not anyone's face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from instantid_core.face_pack import STANDIN_RECOGNIZER
from instantid_core.faces import DetectedFace, FaceAnalysisResult, InstantIDFaces
from instantid_core.saved_faces import save_faces

from .images import KEYPOINTS_IN_FACE

PEOPLE = 4
NAME = "person_{}.safetensors"
PHOTO = (1024, 1024)


def standin_face(person: int) -> InstantIDFaces:
    """Person `person` (1..PEOPLE) as one analysed photo: a random embedding, a frontal face whose box and keypoints
    differ from person to person (size and place), in a PHOTO-sized picture."""
    rng = np.random.default_rng([person, 0x5A])
    embedding = rng.normal(size=512)
    side = 300.0 + 60.0 * person
    left, top = 150.0 + 40.0 * person, 120.0 + 30.0 * (person % 2)
    face = DetectedFace(
        embedding=embedding / np.linalg.norm(embedding) * 25.0,
        kps=KEYPOINTS_IN_FACE * side + [left, top],
        bbox=[left, top, left + side, top + side],
        det_score=0.9,
        image_size=PHOTO,
    )
    return InstantIDFaces((FaceAnalysisResult(faces=(face,), chosen=0, batch_index=0),), recognizer=STANDIN_RECOGNIZER)


def write_saved_faces(folder: Path) -> None:
    """Write the stand-in saved faces into `folder` (models/instantid/faces): a few KB, rewritten on every run."""
    folder.mkdir(parents=True, exist_ok=True)
    for person in range(1, PEOPLE + 1):
        save_faces(standin_face(person), folder / NAME.format(person))

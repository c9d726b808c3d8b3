"""Saved faces: an INSTANTID_FACE written to safetensors and read back, and files that are not saved faces."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from instantid_core.errors import InstantIDError
from instantid_core.face_pack import STANDIN_RECOGNIZER, Recognizer
from instantid_core.faces import DetectedFace, FaceAnalysisResult, InstantIDFaces
from instantid_core.saved_faces import load_faces, save_faces
from scripts.standins.saved_faces import write_saved_faces

pytestmark = pytest.mark.unit

RECOGNIZER = Recognizer("w600k_mbf.onnx (13.6 MB; not antelopev2's glintr100)", False)


def analysed(seed: int, size=(640, 480)) -> FaceAnalysisResult:
    """One analysed photo with two faces, the second chosen."""
    rng = np.random.default_rng(seed)
    faces = tuple(
        DetectedFace(
            embedding=rng.normal(0, 1, 512) * 20,
            kps=rng.uniform(0, 400, (5, 2)),
            bbox=rng.uniform(0, 400, 4),
            det_score=rng.uniform(0.5, 1),
            image_size=size,
        )
        for _ in range(2)
    )
    return FaceAnalysisResult(faces=faces, chosen=1, batch_index=seed)


def test_saved_faces_come_back_with_their_geometry_recogniser_and_weights(tmp_path):
    skipped = FaceAnalysisResult(faces=(), chosen=None, batch_index=1)
    faces = InstantIDFaces([analysed(0), skipped, analysed(2, (1024, 768))], recognizer=RECOGNIZER)
    faces = faces.with_weights([2.0, 5.0, 1.0])

    count = save_faces(faces, tmp_path / "faces" / "anna.safetensors")
    loaded = load_faces(tmp_path / "faces" / "anna.safetensors")

    assert count == 2 and len(loaded.results) == 2 and loaded.skipped_indices == ()
    for saved, back in zip(faces.chosen_faces, loaded.chosen_faces, strict=True):
        assert np.array_equal(saved.embedding, back.embedding) and np.array_equal(saved.kps, back.kps)
        assert np.array_equal(saved.bbox, back.bbox) and saved.image_size == back.image_size
        assert saved.det_score == pytest.approx(back.det_score)
    assert loaded.recognizer == RECOGNIZER and loaded.weights == (2.0, 1.0)


def test_nothing_to_save_when_every_photo_was_skipped(tmp_path):
    with pytest.raises(InstantIDError, match="no face to save"):
        save_faces(InstantIDFaces([FaceAnalysisResult(faces=(), chosen=None, batch_index=0)]), tmp_path / "x")


def test_a_safetensors_file_that_is_not_a_saved_face_says_what_it_is(tmp_path):
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.lora_down.weight": torch.zeros(4, 8)}, str(lora))

    with pytest.raises(InstantIDError, match=r"lora\.safetensors is not a saved InstantID face: it is"):
        load_faces(lora)


@pytest.mark.parametrize("content, says", [(b"", "an empty file"), (b"<html><body>404</body></html>", "HTML")])
def test_a_file_that_is_not_safetensors_says_what_it_is(tmp_path, content, says):
    path = tmp_path / "face.safetensors"
    path.write_bytes(content)

    with pytest.raises(InstantIDError, match="is not a saved InstantID face") as raised:
        load_faces(path)
    assert says in str(raised.value)


def test_a_saved_face_with_missing_data_is_called_damaged(tmp_path):
    path = tmp_path / "person.safetensors"
    save_faces(InstantIDFaces([analysed(0)]), path)
    tensors = {k: v for k, v in load_file(str(path)).items() if k != "kps"}
    save_file(tensors, str(path), metadata={"format": "instantid_face", "version": "1"})

    with pytest.raises(InstantIDError, match="damaged saved face: its 'kps' data"):
        load_faces(path)


def test_the_standin_saved_faces_are_four_different_people_of_the_standin_recogniser(tmp_path):
    write_saved_faces(tmp_path)

    people = [load_faces(tmp_path / f"person_{i}.safetensors") for i in range(1, 5)]

    assert all(p.recognizer == STANDIN_RECOGNIZER and len(p.chosen_faces) == 1 for p in people)
    embeddings = np.stack([p.embeddings()[0] for p in people])
    units = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert np.abs(units @ units.T - np.eye(4)).max() < 0.3  # four people, not one

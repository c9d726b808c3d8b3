"""A face as a text value: exact round trip, the size of one, and a clear error for anything else."""

import base64

import numpy as np
import pytest

from instantid_core.errors import InstantIDError
from instantid_core.face_pack import Recognizer
from instantid_core.face_value import PREFIX, face_from_text, face_to_text
from instantid_core.faces import DetectedFace, FaceAnalysisResult, InstantIDFaces
from instantid_core.saved_faces import load_faces, save_faces

pytestmark = pytest.mark.unit

GLINTR100 = Recognizer("glintr100.onnx", True)


def faces(count: int = 1, recognizer: Recognizer = GLINTR100, weights=None) -> InstantIDFaces:
    """`count` analysed photos of one face each, with random float32 embeddings and keypoints."""
    rng = np.random.default_rng(count)
    results = [
        FaceAnalysisResult(
            faces=(
                DetectedFace(
                    embedding=rng.normal(0, 1, 512).astype(np.float32) * 20,
                    kps=rng.uniform(10, 300, (5, 2)).astype(np.float32),
                    bbox=np.array([5.5, 6.25, 320.0, 410.75], dtype=np.float32),
                    det_score=float(np.float32(rng.uniform(0.5, 1))),  # insightface's scores are float32
                    image_size=(640 + i, 480),
                ),
            ),
            chosen=0,
            batch_index=i,
        )
        for i in range(count)
    ]
    made = InstantIDFaces(results, recognizer=recognizer)
    return made if weights is None else made.with_weights(weights)


def assert_same(a: InstantIDFaces, b: InstantIDFaces) -> None:
    """Every chosen face, the recogniser and the weights are equal, bit for bit."""
    assert a.recognizer == b.recognizer and a.weights == b.weights
    assert len(a.chosen_faces) == len(b.chosen_faces)
    for x, y in zip(a.chosen_faces, b.chosen_faces, strict=True):
        for field in ("embedding", "kps", "bbox"):
            assert np.array_equal(getattr(x, field), getattr(y, field)) and getattr(x, field).dtype == np.float32
        assert (x.det_score, x.image_size) == (y.det_score, y.image_size)


@pytest.mark.parametrize("count, weights", [(1, None), (3, (1.0, 2.0, 0.5))])
def test_a_face_value_round_trips_exactly_and_holds_what_the_saved_file_holds(tmp_path, count, weights):
    original = faces(count, weights=weights)

    text = face_to_text(original)
    save_faces(original, tmp_path / "person.safetensors")

    assert text.startswith(PREFIX) and text.isascii() and "\n" not in text
    assert_same(face_from_text(text), original)
    assert_same(face_from_text(text), load_faces(tmp_path / "person.safetensors"))


def test_one_face_takes_a_few_kilobytes_of_text():
    assert 3000 < len(face_to_text(faces(1))) < 4500


def test_surrounding_whitespace_is_forgiven():
    assert_same(face_from_text("\n  " + face_to_text(faces(1)) + "  \n"), faces(1))


def test_a_face_of_another_recogniser_comes_back_as_one_and_warns_when_made_into_tokens(caplog):
    other = faces(1, recognizer=Recognizer("w600k_mbf.onnx", False))

    back = face_from_text(face_to_text(other))

    assert back.recognizer == other.recognizer
    back.identity_embeddings()
    assert "glintr100" in caplog.text


BROKEN = {
    "empty": ("", "is not an InstantID face value"),
    "a file name": ("person.safetensors", "is not an InstantID face value"),
    "JSON": ('{"embedding": [0.1, 0.2]}', "is not an InstantID face value"),
    "not base64": (PREFIX + "%%%%", "is not intact"),
    "cut at a non-multiple of four": ("half", "is not intact"),
    "cut at a multiple of four": ("quarter", "truncated"),
    "a header cut": ("tiny", "truncated"),
    "changed bytes": ("flipped", "damaged"),
    "another safetensors file": ("foreign", "is not a saved InstantID face"),
}


def broken(kind: str) -> str:
    """A face value broken in one way."""
    text = face_to_text(faces(1))
    body = text[len(PREFIX) :]
    if kind == "half":
        return text[: len(PREFIX) + len(body) // 2 + 1]
    if kind == "quarter":
        return PREFIX + body[: (len(body) // 4) // 4 * 4 + 8]
    if kind == "tiny":
        return PREFIX + base64.b64encode(b"\x10\x00").decode()
    if kind == "flipped":
        data = bytearray(base64.b64decode(body))
        data[8:20] = b"{{{{{{{{{{{{"
        return PREFIX + base64.b64encode(bytes(data)).decode()
    if kind == "foreign":
        import torch
        from safetensors.torch import save

        return PREFIX + base64.b64encode(save({"weight": torch.zeros(4)}, metadata={"format": "pt"})).decode()
    return kind


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_or_foreign_value_is_a_bad_face_value_error_that_says_what_is_wrong(kind):
    value, message = BROKEN[kind]

    with pytest.raises(InstantIDError, match=message) as raised:
        face_from_text(broken(value))

    assert raised.value.code == "bad_face_value"

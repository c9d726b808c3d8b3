"""Face similarity: cosine of raw embeddings, the best face of each picture, ranking, and what is refused."""

import numpy as np
import pytest

from instantid_core.errors import InstantIDError
from instantid_core.face_pack import Recognizer
from instantid_core.faces import DetectedFace, FaceAnalysisResult, InstantIDFaces
from instantid_core.similarity import cosine, draw_score, ranking, score_images, summary

pytestmark = pytest.mark.unit

RECOGNIZER = Recognizer("glintr100 (antelopev2)", True)
rng = np.random.default_rng(5)
PERSON, OTHER, THIRD = (rng.normal(0, 1, 512) * 22 for _ in range(3))


def face(embedding) -> DetectedFace:
    """A face with this raw embedding."""
    return DetectedFace(
        embedding=embedding, kps=np.ones((5, 2)), bbox=[0, 0, 10, 10], det_score=0.9, image_size=(64, 64)
    )


def pictures(*faces_per_picture, recognizer=RECOGNIZER) -> InstantIDFaces:
    """INSTANTID_FACE with one result per picture (an empty tuple: a picture without a face, skipped)."""
    results = [
        FaceAnalysisResult(faces=tuple(face(e) for e in faces), chosen=0 if faces else None, batch_index=i)
        for i, faces in enumerate(faces_per_picture)
    ]
    return InstantIDFaces(results, recognizer=recognizer)


def test_cosine_ignores_the_raw_norm():
    assert cosine(PERSON, 3 * PERSON) == pytest.approx(1.0) and abs(cosine(PERSON, OTHER)) < 0.2


def test_each_picture_scores_its_best_face_and_pictures_without_a_face_come_last():
    near = PERSON + rng.normal(0, 1, 512) * 15
    scores = score_images(pictures((PERSON,)), pictures((OTHER,), (), (OTHER, near)))

    assert [s.index for s in ranking(scores)] == [2, 0, 1]
    assert scores[2].face == 1 and scores[2].score == pytest.approx(cosine(PERSON, near))
    assert scores[1].score is None and scores[1].label == "no face"


def test_several_references_score_against_their_combined_identity_and_each_one():
    reference = pictures((PERSON,), (THIRD,))
    (score,) = score_images(reference, pictures((PERSON,)))

    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    identity = unit(unit(PERSON) + unit(THIRD))
    assert score.score == pytest.approx(float(unit(PERSON) @ identity))
    assert score.per_reference == pytest.approx((1.0, cosine(THIRD, PERSON)))
    assert "per reference: 1.000" in summary([score], 2)


def test_embeddings_of_different_recognisers_are_never_compared():
    other = Recognizer("w600k_mbf.onnx (13.6 MB; not antelopev2's glintr100)", False)

    with pytest.raises(InstantIDError, match="live in different spaces"):
        score_images(pictures((PERSON,)), pictures((PERSON,), recognizer=other))


def test_the_summary_names_a_picture_without_a_face():
    text = summary(score_images(pictures((PERSON,)), pictures((), (PERSON,))), 1)

    assert text.splitlines()[1:] == ["1. image 1: 1.000 (face 0)", "2. image 0: no face found"]


def test_the_score_is_written_on_a_copy_of_the_picture():
    picture = np.zeros((64, 96, 3), np.uint8)
    (score,) = score_images(pictures((PERSON,)), pictures((PERSON,)))

    drawn = draw_score(picture, score)

    assert drawn.shape == picture.shape and drawn.any() and not picture.any()


def test_picture_i_scores_against_reference_i_when_paired_per_picture():
    references = pictures((PERSON,), (OTHER,), (THIRD,))
    generated = pictures((OTHER, PERSON), (OTHER,), (PERSON,))  # picture 2 shows the wrong person

    scores = score_images(references, generated, per_picture=True)

    assert [s.score for s in scores] == pytest.approx([1.0, 1.0, cosine(THIRD, PERSON)])
    assert scores[0].face == 1 and scores[0].per_reference == pytest.approx((1.0,))
    assert ranking(scores)[-1].index == 2
    assert "each picture to its own reference" in summary(scores, 3, per_picture=True)


def test_per_picture_pairing_needs_one_reference_face_per_picture():
    with pytest.raises(InstantIDError, match=r"2 reference face\(s\) for 3 picture\(s\)"):
        score_images(pictures((PERSON,), (OTHER,)), pictures((PERSON,), (OTHER,), (THIRD,)), per_picture=True)

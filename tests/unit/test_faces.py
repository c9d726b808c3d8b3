"""Detected faces: reading order, face choice, combining several embeddings, and skipped reference images."""

import numpy as np
import pytest
import torch

from instantid_core.errors import InstantIDError
from instantid_core.face_pack import Recognizer
from instantid_core.faces import (
    COMBINE_METHODS,
    DetectedFace,
    FaceAnalysisResult,
    InstantIDFaces,
    choose_face,
    combine_embeddings,
    join_faces,
    parse_weights,
    sort_reading_order,
)

pytestmark = pytest.mark.unit


def face(x1: float, y1: float, x2: float, y2: float, seed: int = 0) -> DetectedFace:
    """A face with the given box and a random embedding of norm ~22 (raw antelopev2 embeddings are not normalised)."""
    embedding = np.random.default_rng(seed).normal(size=512)
    kps = np.array([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]])
    return DetectedFace(embedding=embedding, kps=kps, bbox=[x1, y1, x2, y2], det_score=0.9, image_size=(640, 480))


def boxes(faces) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in f.bbox) for f in faces]


def test_a_detected_face_holds_read_only_float32_arrays():
    f = face(0, 0, 10, 20)

    assert f.embedding.dtype == f.kps.dtype == f.bbox.dtype == np.float32
    assert f.area == 200.0
    with pytest.raises(ValueError):
        f.embedding[0] = 1.0


@pytest.mark.parametrize(
    "field, value", [("embedding", np.zeros(511)), ("kps", np.zeros((4, 2))), ("bbox", np.zeros(5))]
)
def test_a_detected_face_of_the_wrong_shape_is_refused(field, value):
    fields = dict(embedding=np.zeros(512), kps=np.zeros((5, 2)), bbox=np.zeros(4), det_score=1, image_size=(8, 8))

    with pytest.raises(ValueError, match=f"DetectedFace.{field} must have shape"):
        DetectedFace(**{**fields, field: value})


# top-left, top-right, bottom-left, bottom-right
GRID = [(0, 0, 10, 10), (20, 0, 30, 10), (0, 20, 10, 30), (20, 20, 30, 30)]


@pytest.mark.parametrize("given", [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]])
def test_a_two_by_two_grid_is_read_left_to_right_then_top_to_bottom(given):
    faces = [face(*GRID[i]) for i in given]

    assert boxes(sort_reading_order(faces)) == GRID


def test_faces_in_slightly_misaligned_rows_are_still_read_row_by_row():
    # Top row: the right face sits higher than the left one; bottom row: the right face sits higher again,
    # so sorting by box centre alone would read right-before-left in both rows.
    top_left, top_right = (0, 3, 10, 13), (20, 0, 30, 10)
    bottom_left, bottom_right = (0, 20, 10, 30), (20, 18, 30, 28)
    faces = [face(*b) for b in (bottom_right, top_right, bottom_left, top_left)]

    assert boxes(sort_reading_order(faces)) == [top_left, top_right, bottom_left, bottom_right]


def test_a_group_with_heads_at_different_heights_is_one_row_read_left_to_right():
    # Six people as in insightface's t1.jpg: the fifth from the left stands a face height above the others.
    staircase = [(55, 260, 168, 395), (269, 145, 373, 271), (465, 267, 573, 416), (747, 342, 847, 480)]
    staircase += [(906, 57, 1009, 207), (1132, 274, 1225, 399)]
    faces = [face(*b) for b in reversed(staircase)]

    assert boxes(sort_reading_order(faces)) == staircase


def test_staggered_rows_of_many_faces_are_read_row_by_row():
    # Two rows whose faces sit between each other's (as the seated rows of a conference photo): 60 px apart.
    upper = [(x, 1020 + (x % 7) * 5, x + 85, 1135 + (x % 7) * 5) for x in range(140, 2700, 300)]
    lower = [(x + 150, 1130 + (x % 5) * 6, x + 240, 1250 + (x % 5) * 6) for x in range(140, 2700, 300)]
    shuffled = [face(*b) for b in lower[::2] + upper[::-1] + lower[1::2]]

    assert boxes(sort_reading_order(shuffled)) == upper + lower


@pytest.mark.parametrize("shift", [(0, 0), (37, -12), (500, 300)])
def test_the_numbering_does_not_change_when_the_picture_is_shifted_or_scaled(shift):
    dx, dy = shift
    layout = [(55, 260, 168, 395), (269, 145, 373, 271), (465, 267, 573, 416), (0, 600, 100, 720)]
    moved = [face(x1 + dx, y1 + dy, x2 + dx, y2 + dy) for x1, y1, x2, y2 in layout]
    scaled = [face(2 * x1, 2 * y1, 2 * x2, 2 * y2) for x1, y1, x2, y2 in layout]

    order = [layout.index(b) for b in boxes(sort_reading_order([face(*b) for b in layout]))]
    assert [moved.index(f) for f in sort_reading_order(moved)] == order
    assert [scaled.index(f) for f in sort_reading_order(scaled)] == order


def test_reading_order_of_no_faces_is_empty():
    assert sort_reading_order([]) == ()


def test_choose_largest_picks_the_biggest_box():
    faces = [face(0, 0, 10, 10), face(20, 0, 50, 30), face(60, 0, 80, 20)]

    assert choose_face(faces, "largest", index=0) == 1


def test_choose_largest_among_equal_boxes_picks_the_first_in_reading_order():
    faces = [face(0, 0, 10, 10), face(20, 0, 40, 20), face(60, 0, 80, 20)]

    assert choose_face(faces, "largest", index=0) == 1


@pytest.mark.parametrize("index", [0, 2])
def test_choose_by_index_returns_that_index(index):
    faces = [face(0, 0, 10, 10), face(20, 0, 50, 30), face(60, 0, 80, 20)]

    assert choose_face(faces, "index", index) == index


@pytest.mark.parametrize("index", [3, -1])
def test_an_out_of_range_index_names_how_many_faces_were_found(index):
    faces = [face(0, 0, 10, 10), face(20, 0, 50, 30), face(60, 0, 80, 20)]

    with pytest.raises(InstantIDError) as raised:
        choose_face(faces, "index", index)

    message = str(raised.value)
    assert f"Face index {index} was requested but 3 face(s) were found" in message
    assert "valid indices 0..2" in message


def test_choosing_from_no_faces_or_by_an_unknown_mode_is_refused():
    with pytest.raises(InstantIDError, match="No face was found"):
        choose_face([], "largest", 0)
    with pytest.raises(InstantIDError, match="Unknown face choice 'biggest'"):
        choose_face([face(0, 0, 1, 1)], "biggest", 0)


ROWS = np.array([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 10.0], [6.0, 0.0, 8.0, 0.0]])  # norms 5, 10, 10


def expected_combination(rows: np.ndarray, method: str) -> np.ndarray:
    if method == "average":
        return rows.mean(axis=0, keepdims=True)
    if method == "norm average":
        norms = np.linalg.norm(rows, axis=1)
        direction = (rows / norms[:, None]).mean(axis=0)
        return (direction / np.linalg.norm(direction) * norms.mean())[None]
    if method == "joint":
        return rows[None]
    return rows


@pytest.mark.parametrize("method", COMBINE_METHODS)
def test_combining_numpy_embeddings_gives_float32_numpy(method):
    combined = combine_embeddings(ROWS, method)

    assert isinstance(combined, np.ndarray) and combined.dtype == np.float32
    assert combined.shape == expected_combination(ROWS, method).shape
    assert np.allclose(combined, expected_combination(ROWS, method), atol=1e-5)


@pytest.mark.parametrize("method", COMBINE_METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_combining_torch_embeddings_gives_a_tensor_of_the_same_dtype_and_device(method, dtype):
    combined = combine_embeddings(torch.from_numpy(ROWS).to(dtype), method)

    assert isinstance(combined, torch.Tensor) and combined.dtype == dtype and combined.device.type == "cpu"
    assert tuple(combined.shape) == expected_combination(ROWS, method).shape
    assert np.allclose(combined.double().numpy(), expected_combination(ROWS, method), atol=1e-2)


def test_norm_average_has_the_mean_direction_and_the_mean_norm():
    combined = combine_embeddings(ROWS, "norm average")[0]

    assert np.isclose(np.linalg.norm(combined), (5 + 10 + 10) / 3, atol=1e-5)
    units = ROWS / np.linalg.norm(ROWS, axis=1, keepdims=True)
    mean_unit = units.mean(axis=0)
    assert np.allclose(combined / np.linalg.norm(combined), mean_unit / np.linalg.norm(mean_unit), atol=1e-6)
    assert not np.allclose(combined, combine_embeddings(ROWS, "average")[0], atol=1e-2)  # not the plain mean


def test_a_single_embedding_is_unchanged_by_every_method():
    row = ROWS[:1]

    for method in COMBINE_METHODS:
        assert np.allclose(combine_embeddings(row, method).reshape(row.shape), row, atol=1e-6)


def test_joint_stacks_every_embedding_as_one_sample_of_n_inputs():
    combined = combine_embeddings(ROWS, "joint")

    assert combined.shape == (1, *ROWS.shape) and np.array_equal(combined[0], ROWS.astype(np.float32))


def test_opposite_embeddings_cannot_be_norm_averaged():
    with pytest.raises(InstantIDError, match="cancel out"):
        combine_embeddings(np.array([[1.0, 2.0], [-2.0, -4.0]]), "norm average")


@pytest.mark.parametrize(
    "embeddings, method, message",
    [
        (np.array([[1.0, 2.0], [0.0, 0.0]]), "norm average", r"row\(s\) \[1\] are all zeros"),
        (np.zeros(4), "average", r"shape \(N, D\) with N >= 1, got shape \(4,\)"),
        (np.zeros((0, 4)), "concat", r"got shape \(0, 4\)"),
        (np.zeros((2, 4)), "median", "Unknown embedding combination 'median'"),
    ],
)
def test_embeddings_that_cannot_be_combined_are_refused(embeddings, method, message):
    with pytest.raises(InstantIDError, match=message):
        combine_embeddings(embeddings, method)


def result(batch_index: int, *faces: DetectedFace) -> FaceAnalysisResult:
    return FaceAnalysisResult(faces=faces, chosen=0 if faces else None, batch_index=batch_index)


def test_embeddings_are_those_of_the_chosen_faces_of_the_images_not_skipped_in_batch_order():
    a, b = face(0, 0, 10, 10, seed=1), face(0, 0, 10, 10, seed=2)
    faces = InstantIDFaces([result(0, a), result(1), result(2, b)])

    assert np.array_equal(faces.embeddings(), np.stack([a.embedding, b.embedding]))
    assert faces.skipped_indices == (1,)
    assert faces.chosen_faces == (a, b)


def test_embeddings_of_a_batch_where_every_image_was_skipped_is_an_error():
    faces = InstantIDFaces([result(0), result(1), result(2)])

    assert faces.skipped_indices == (0, 1, 2)
    with pytest.raises(InstantIDError, match=r"No face in any of the 3 reference image\(s\)"):
        faces.embeddings()


@pytest.mark.parametrize(
    "index, message",
    [
        (1, "Reference image 1 has no face"),
        (2, r"holds 2 image\(s\) \(indices 0..1\)"),
        (-1, "Reference image -1 was requested"),
    ],
)
def test_asking_for_a_skipped_or_missing_reference_image_is_an_error(index, message):
    faces = InstantIDFaces([result(0, face(0, 0, 1, 1)), result(1)])

    with pytest.raises(InstantIDError, match=message):
        faces.result(index)


@pytest.mark.parametrize("faces, chosen", [((), 0), ((face(0, 0, 1, 1),), None), ((face(0, 0, 1, 1),), 1)])
def test_an_analysis_result_must_choose_one_of_its_faces_or_none_when_it_has_none(faces, chosen):
    with pytest.raises(ValueError):
        FaceAnalysisResult(faces=faces, chosen=chosen, batch_index=4)


# --- weighted references -----------------------------------------------------------------------------------------------


def test_a_photo_of_weight_2_counts_as_two_photos_in_both_averages():
    a, b = (np.random.default_rng(seed).normal(0, 1, 512) * (20 + seed) for seed in (1, 2))

    for method in ("average", "norm average"):
        weighted = combine_embeddings(np.stack([a, b]), method, weights=[2, 1])
        repeated = combine_embeddings(np.stack([a, a, b]), method)
        assert np.allclose(weighted, repeated, atol=1e-5), method


def test_weights_move_the_average_towards_the_heavier_photo():
    a, b = np.eye(512)[0] * 20, np.eye(512)[1] * 20

    light, heavy = (combine_embeddings(np.stack([a, b]), "average", weights=w)[0] for w in ([1, 1], [3, 1]))

    assert heavy[0] == pytest.approx(15.0) and heavy[1] == pytest.approx(5.0) and light[0] == pytest.approx(10.0)


@pytest.mark.parametrize("method", ["concat", "joint"])
def test_unequal_weights_are_refused_where_nothing_is_averaged(method):
    rows = np.ones((2, 512))

    with pytest.raises(InstantIDError, match="apply to average and norm average"):
        combine_embeddings(rows, method, weights=[1, 2])
    assert combine_embeddings(rows, method, weights=[2, 2]).shape[-2:] == (2, 512)


@pytest.mark.parametrize("weights", [[1], [1, -1], [0, 0], [1, float("nan")]])
def test_weights_of_the_wrong_count_or_sign_are_refused(weights):
    with pytest.raises(InstantIDError, match="Expected 2 weights"):
        combine_embeddings(np.ones((2, 512)), "average", weights=weights)


def test_weights_are_read_from_text_and_a_skipped_photo_drops_its_weight():
    faces = InstantIDFaces(
        [
            FaceAnalysisResult(faces=(face(0, 0, 10, 10),), chosen=0, batch_index=0),
            FaceAnalysisResult(faces=(), chosen=None, batch_index=1),
            FaceAnalysisResult(faces=(face(0, 0, 10, 10, seed=3),), chosen=0, batch_index=2),
        ]
    )

    assert parse_weights("1, 0.5 2") == (1.0, 0.5, 2.0) and parse_weights("  ") is None
    assert faces.with_weights(parse_weights("1, 0.5, 2")).weights == (1.0, 2.0)
    with pytest.raises(InstantIDError, match="one number per photo"):
        parse_weights("1, a")
    with pytest.raises(InstantIDError, match="2 weights for 3 reference picture"):
        faces.with_weights([1, 2])


def test_joined_faces_are_every_photo_of_the_faces_in_order_renumbered():
    a, b, c = (face(0, 0, 10, 10, seed=s) for s in (1, 2, 3))
    first, second = InstantIDFaces([result(0, a), result(1)]), InstantIDFaces([result(0, b), result(1, c)])

    joined = join_faces([first, second, first])

    assert [r.batch_index for r in joined.results] == [0, 1, 2, 3, 4, 5]
    assert joined.chosen_faces == (a, b, c, a) and joined.skipped_indices == (1, 5)
    assert joined.photo_weights is None and joined.recognizer == first.recognizer


def test_joined_faces_keep_their_weights_and_refusal_and_count_unweighted_photos_once():
    a, b = face(0, 0, 10, 10, seed=1), face(0, 0, 10, 10, seed=2)
    weighted = InstantIDFaces([result(0, a), result(1, b)]).with_weights([2.0, 0.5])
    strict = InstantIDFaces([result(0, b)], refuse_other_recognizer=True)

    joined = join_faces([weighted, strict])

    assert joined.photo_weights == (2.0, 0.5, 1.0) and joined.refuse_other_recognizer


def test_faces_of_different_recognisers_are_not_joined():
    a = face(0, 0, 10, 10, seed=1)
    other = Recognizer("w600k_mbf.onnx", False)

    with pytest.raises(InstantIDError, match="different recognisers"):
        join_faces([InstantIDFaces([result(0, a)]), InstantIDFaces([result(0, a)], recognizer=other)])

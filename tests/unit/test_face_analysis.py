"""Face analysis on the stand-in antelopev2 pack with the real insightface: choice, retries, odd inputs, errors."""
import logging
import shutil

import numpy as np
import pytest

from instantid_core.errors import InstantIDError
from instantid_core.face_analysis import FACE_PACK_FILES, FacePack, check_face_pack, draw_preview, resolve_providers
from scripts.standins.images import standin_photo

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pack_dir(standins):
    """The stand-in antelopev2 folder."""
    return standins / "models" / "insightface" / "models" / "antelopev2"


@pytest.fixture(scope="module")
def faces_pack(pack_dir):
    """The stand-in pack loaded on the CPU."""
    return FacePack.load(pack_dir, "CPU", 640)


def photo(width, height, faces, seed=0):
    """A stand-in photo with faces (cx, cy, size, identity)."""
    return standin_photo(width, height, faces, seed)


def test_loads_only_the_detector_and_the_recogniser(faces_pack):
    assert set(faces_pack.app.models) == {"detection", "recognition"}
    assert faces_pack.providers[0] == "CPUExecutionProvider"


def test_finds_the_face_where_it_is_drawn_with_a_512d_embedding(faces_pack):
    (result,) = faces_pack.analyze([photo(768, 1024, [(384, 430, 300, 1)])]).results

    face = result.face
    assert face.embedding.shape == (512,) and face.kps.shape == (5, 2) and face.image_size == (768, 1024)
    x1, y1, x2, y2 = face.bbox
    assert abs((x1 + x2) / 2 - 384) < 15 and abs((y1 + y2) / 2 - 430) < 15


def test_faces_come_in_reading_order_and_the_choice_picks_by_size_or_index(faces_pack):
    two = photo(1024, 768, [(730, 360, 240, 4), (290, 340, 200, 3)])

    largest = faces_pack.analyze([two], "largest").results[0]
    first = faces_pack.analyze([two], "index", 0).results[0]

    assert [round(float(f.bbox[0] + f.bbox[2]) / 2) // 100 for f in largest.faces] == [2, 7]  # left, then right
    assert largest.chosen == 1 and first.chosen == 0
    with pytest.raises(InstantIDError, match=r"Reference image 0 .*Face index 5 was requested but 2 face\(s\)"):
        faces_pack.analyze([two], "index", 5)


def test_a_photo_without_a_face_is_an_error_naming_its_batch_index(faces_pack):
    batch = [photo(512, 512, [(256, 240, 180, 1)]), np.full((512, 512, 3), 128, np.uint8), photo(512, 512, [])]

    with pytest.raises(InstantIDError, match=r"Reference image 1 \(of 3, 512×512\): no face found"):
        faces_pack.analyze(batch)


def test_skip_leaves_faceless_photos_out_with_a_warning(faces_pack, caplog):
    batch = [np.full((400, 300, 3), 90, np.uint8), photo(512, 512, [(256, 240, 180, 1)])]

    with caplog.at_level(logging.WARNING):
        faces = faces_pack.analyze(batch, no_face="skip")

    assert faces.skipped_indices == (0,) and len(faces.chosen_faces) == 1
    assert "Reference image 0" in caplog.text and "skipped" in caplog.text


@pytest.mark.parametrize("shape", ["rgba", "grey", "odd size", "6000x4000"])
def test_unusual_pictures_are_analysed(faces_pack, shape):
    from instantid_core.images import to_uint8_rgb
    import torch

    if shape == "6000x4000":
        pictures = [photo(6000, 4000, [(3000, 1800, 1500, 2)])]
    else:
        base = photo(777, 555, [(390, 260, 200, 2)]) if shape == "odd size" else photo(512, 512, [(256, 240, 180, 2)])
        image = torch.from_numpy(base.copy()).float()[None] / 255
        if shape == "rgba":
            image = torch.cat([image, torch.ones_like(image[..., :1])], dim=-1)
        if shape == "grey":  # a grey picture has no magenta stand-in face: it must be analysed, and find nothing
            image = image.mean(dim=-1, keepdim=True)
        pictures = to_uint8_rgb(image)

    faces = faces_pack.analyze(pictures, no_face="skip")

    assert len(faces.chosen_faces) == (0 if shape == "grey" else 1)


def test_a_close_up_is_found_by_the_retries(faces_pack):
    close_up = photo(400, 400, [(200, 200, 380, 5)])

    assert faces_pack.detect(np.ascontiguousarray(close_up[..., ::-1]), 640) == []  # one try at 640 misses it
    face = faces_pack.analyze([close_up]).results[0].face
    assert abs(float(face.bbox[2] - face.bbox[0]) - 380) < 40


def test_a_missing_pack_names_the_folder_and_the_five_files(tmp_path):
    with pytest.raises(InstantIDError) as raised:
        check_face_pack(tmp_path / "antelopev2")

    assert str(tmp_path / "antelopev2") in str(raised.value)
    assert all(name in str(raised.value) for name in FACE_PACK_FILES)


def test_a_pack_nested_one_folder_too_deep_says_to_move_the_files_up(tmp_path, pack_dir):
    shutil.copytree(pack_dir, tmp_path / "antelopev2" / "antelopev2")

    with pytest.raises(InstantIDError, match="nested one folder too deep"):
        check_face_pack(tmp_path / "antelopev2")


def test_a_partial_pack_names_the_missing_file(tmp_path, pack_dir):
    shutil.copytree(pack_dir, tmp_path / "antelopev2")
    (tmp_path / "antelopev2" / "glintr100.onnx").unlink()

    with pytest.raises(InstantIDError, match="lacks glintr100.onnx"):
        check_face_pack(tmp_path / "antelopev2")


def test_an_empty_model_file_is_named(tmp_path, pack_dir):
    shutil.copytree(pack_dir, tmp_path / "antelopev2")
    (tmp_path / "antelopev2" / "glintr100.onnx").write_bytes(b"")

    with pytest.raises(InstantIDError, match=r"glintr100.onnx is not a usable ONNX model: it is an empty file"):
        check_face_pack(tmp_path / "antelopev2")


def test_a_stray_onnx_file_is_reported_and_ignored(tmp_path, pack_dir, caplog):
    shutil.copytree(pack_dir, tmp_path / "antelopev2")
    shutil.copy(pack_dir / "genderage.onnx", tmp_path / "antelopev2" / "inswapper_128.onnx")

    with caplog.at_level(logging.WARNING):
        check_face_pack(tmp_path / "antelopev2")

    assert "inswapper_128.onnx" in caplog.text and "ignored" in caplog.text


@pytest.mark.parametrize("requested, available, providers, warns", [
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"], False),
    ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"], False),
    ("CUDA", ["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], True),
    ("CPU", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], False),
])
def test_providers_resolve_and_an_unavailable_one_falls_back_to_cpu_with_advice(requested, available, providers,
                                                                                  warns):
    chosen, warning = resolve_providers(requested, available)

    assert chosen == providers
    assert (warning is not None) == warns
    if warns:
        assert "CUDA provider is not available" in warning and "onnxruntime-gpu (never both)" in warning


def test_an_unavailable_provider_loads_on_the_cpu_instead_of_crashing(pack_dir, caplog):
    with caplog.at_level(logging.WARNING):
        loaded = FacePack.load(pack_dir, "CoreML", 640)

    assert loaded.providers[0] == "CPUExecutionProvider" and "CoreML provider is not available" in caplog.text


def test_the_preview_marks_the_faces(faces_pack):
    picture = photo(512, 512, [(256, 240, 180, 1)])
    result = faces_pack.analyze([picture]).results[0]

    preview = draw_preview(picture, result)

    assert preview.shape == picture.shape and not np.array_equal(preview, picture)
    x1, y1 = (int(v) for v in result.face.bbox[:2])
    assert tuple(preview[y1 + 1, x1 + 1]) != tuple(picture[y1 + 1, x1 + 1]) or tuple(preview[y1, x1]) == (0, 220, 0)

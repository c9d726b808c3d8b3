"""Face analysis on the stand-in antelopev2 pack with the real insightface: choice, retries, inputs, errors, preview.

The pack and the photos are generated here, small and in seconds, by the stand-in generators: no cached files.
"""

import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from instantid_core import face_pack
from instantid_core.errors import InstantIDError
from instantid_core.face_analysis import (
    CHOSEN_COLOUR,
    OTHER_COLOUR,
    FaceModels,
    as_rgb_uint8,
    draw_preview,
    resolve_providers,
)
from instantid_core.face_pack import ANTELOPEV2_FILES, check_face_pack
from instantid_core.faces import FaceAnalysisResult
from instantid_core.keypoints import KEYPOINT_COLORS
from scripts.standins.face_pack import write_face_pack
from scripts.standins.images import input_image, standin_photo

pytestmark = pytest.mark.unit

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    """A stand-in antelopev2 folder, written by the stand-in generator."""
    folder = tmp_path_factory.mktemp("face_pack") / "antelopev2"
    write_face_pack(folder)
    return folder


@pytest.fixture(scope="module")
def faces_pack(pack_dir):
    """The stand-in pack loaded once on the CPU."""
    return FaceModels.load(pack_dir, "CPU", 640)


@pytest.fixture
def pack_copy(tmp_path, pack_dir):
    """A writable copy of the stand-in pack, tmp_path/antelopev2."""
    return shutil.copytree(pack_dir, tmp_path / "antelopev2")


def stand_in_input(name):
    """A stand-in input photo as (1, H, W, 3) float32 0..1, the layout of a ComfyUI IMAGE."""
    return input_image(name)[None].astype(np.float32) / 255.0


def stand_in_face_batch(width, height):
    """A (1, height, width, 3) float32 batch of one stand-in photo with a face in the middle."""
    face = standin_photo(width, height, [(width / 2, height / 2, min(width, height) / 2, 1)])
    return face[None].astype(np.float32) / 255.0


def centre(face):
    """Centre (x, y) of a face's box."""
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    return (x1 + x2) / 2, (y1 + y2) / 2


def near(point, expected, tolerance=15):
    """True when point lies within tolerance pixels of expected on both axes."""
    return abs(point[0] - expected[0]) <= tolerance and abs(point[1] - expected[1]) <= tolerance


def test_only_the_detector_and_the_recogniser_are_kept(faces_pack):
    assert (faces_pack.detector.taskname, faces_pack.recognizer.taskname) == ("detection", "recognition")
    assert faces_pack.providers[0] == CPU and faces_pack.det_size == 640
    assert faces_pack.recognizer_id == face_pack.Recognizer("glintr100 (stand-in, random weights)", True)


def test_the_face_of_the_stand_in_photo_is_found_where_it_is_drawn_with_its_raw_embedding(faces_pack):
    (result,) = faces_pack.analyze(stand_in_input("instantid_face.png")).results

    face = result.face
    assert near(centre(face), (384, 430)) and abs(float(face.bbox[2] - face.bbox[0]) - 300) < 30
    assert face.image_size == (768, 1024) and face.kps.shape == (5, 2) and face.embedding.shape == (512,)
    assert np.linalg.norm(face.embedding) > 5  # raw, as the Resampler expects; a normalised one has norm 1


def test_two_faces_come_left_first_and_index_picks_in_reading_order(faces_pack):
    two = stand_in_input("instantid_two_people.png")

    first = faces_pack.analyze(two, "index", 0).results[0]
    second = faces_pack.analyze(two, "index", 1).results[0]

    assert near(centre(first.faces[0]), (290, 340)) and near(centre(first.faces[1]), (730, 360))
    assert first.chosen == 0 and second.chosen == 1
    assert near(centre(second.face), (730, 360))


def test_largest_picks_the_bigger_face(faces_pack):
    result = faces_pack.analyze(stand_in_input("instantid_two_people.png"), "largest").results[0]

    assert near(centre(result.face), (730, 360))  # 240 px, against 200 px on the left


def test_an_index_out_of_range_names_the_image_and_how_many_faces_were_found(faces_pack):
    two = stand_in_input("instantid_two_people.png")

    with pytest.raises(InstantIDError, match=r"Reference image 0 \(of 1.*Face index 5 was requested but 2 face\(s\)"):
        faces_pack.analyze(two, "index", 5)


def test_a_photo_without_a_face_is_an_error_naming_its_index_size_and_what_to_try(faces_pack):
    faceless = [standin_photo(512, 384, [])]  # a muted gradient with noise: no face, and not one flat colour

    with pytest.raises(InstantIDError) as raised:
        faces_pack.analyze(faceless)

    message = str(raised.value)
    assert "Reference image 0 (of 1, counted from 0; 512×384 px): no face found" in message
    assert "clearly visible" in message and "crop closer" in message and "detection size" in message


def test_in_a_batch_of_three_the_error_names_image_1_the_one_without_a_face(faces_pack):
    batch = np.stack(
        [
            standin_photo(512, 512, [(256, 240, 180, 1)]),
            standin_photo(512, 512, [], seed=2),
            standin_photo(512, 512, [(256, 240, 180, 2)], seed=1),
        ]
    )

    with pytest.raises(InstantIDError, match=r"^Reference image 1 \(of 3, counted from 0; 512×512 px\): no face"):
        faces_pack.analyze(batch)


def test_a_no_face_error_names_no_option_unless_the_caller_gives_its_own(faces_pack):
    faceless = [standin_photo(320, 320, [])]

    with pytest.raises(InstantIDError) as plain:
        faces_pack.analyze(faceless)
    with pytest.raises(InstantIDError) as hinted:
        faces_pack.analyze(faceless, no_face_hint="Or set no_face to 'whatever'.")

    assert "'skip'" not in str(plain.value) and "no_face" not in str(plain.value)
    assert str(hinted.value) == f"{plain.value} Or set no_face to 'whatever'."


def test_a_picture_without_a_face_is_named_as_the_input_the_caller_says_it_came_from(faces_pack):
    with pytest.raises(InstantIDError) as raised:
        faces_pack.analyze([standin_photo(320, 256, [])], photo="Pose photo (image_kps)")

    assert str(raised.value).startswith("Pose photo (image_kps) 0 (of 1, counted from 0; 320×256 px): no face found")
    assert "Reference image" not in str(raised.value)


def test_an_empty_batch_is_named_as_the_callers_input(faces_pack):
    with pytest.raises(InstantIDError, match=r"^Pose photo \(image_kps\) batch is empty: connect at least one"):
        faces_pack.analyze(np.zeros((0, 64, 64, 3), np.uint8), photo="Pose photo (image_kps)")


def test_a_flat_colour_picture_is_reported_as_one_flat_colour_with_its_index_and_how_to_re_save_it(faces_pack):
    white = np.ones((1, 300, 200, 3), np.float32)  # what ComfyUI's Load Image gives for a 16-bit greyscale PNG

    with pytest.raises(InstantIDError) as raised:
        faces_pack.analyze(np.concatenate([stand_in_face_batch(200, 300), white]))

    message = str(raised.value)
    assert message.startswith(
        "Reference image 1 (of 2, counted from 0; 200×300 px) is a single flat colour "
        "(every pixel is RGB 255, 255, 255)"
    )
    assert "16-bit PNG" in message and "re-save the picture as an 8-bit PNG" in message
    assert "no face found" not in message and "detection size" not in message


def test_a_picture_of_pure_black_and_white_is_reported_as_a_file_the_loader_could_not_read(faces_pack):
    # ComfyUI's Load Image on a 16-bit greyscale PNG: every value above 255 is clipped to white, zero stays black
    clipped = np.full((1, 120, 160, 3), 255, np.uint8)
    clipped[0, 40:60, 50:90] = 0

    with pytest.raises(InstantIDError) as raised:
        faces_pack.analyze(clipped)

    message = str(raised.value)
    assert message.startswith(
        "Reference image 0 (of 1, counted from 0; 160×120 px) is only pure black and white (96% white)"
    )
    assert "16-bit PNG" in message and "re-save the picture as an 8-bit PNG" in message


def test_a_flat_colour_pose_photo_is_named_as_the_pose_photo_with_the_callers_hint(faces_pack):
    with pytest.raises(InstantIDError) as raised:
        faces_pack.analyze(
            np.full((1, 64, 96, 3), 17, np.uint8),
            photo="Pose photo (image_kps)",
            no_face_hint="Or set no_face to 'whatever'.",
        )

    message = str(raised.value)
    assert message.startswith(
        "Pose photo (image_kps) 0 (of 1, counted from 0; 96×64 px) is a single flat colour "
        "(every pixel is RGB 17, 17, 17)"
    )
    assert message.endswith(" Or set no_face to 'whatever'.")


def test_skipping_a_flat_colour_picture_logs_that_it_is_one_flat_colour(faces_pack, caplog):
    with caplog.at_level(logging.WARNING, logger="instantid_core.face_analysis"):
        faces = faces_pack.analyze(np.zeros((1, 64, 64, 3), np.float32), on_no_face="skip")

    assert faces.skipped_indices == (0,)
    assert (
        "Reference image 0 (of 1, counted from 0; 64×64 px) is a single flat colour (every pixel is RGB 0, 0, 0)"
        in caplog.text
        and "skipped as requested" in caplog.text
    )


def test_skip_marks_the_faceless_image_skipped_and_logs_a_warning(faces_pack, caplog):
    batch = [np.full((400, 300, 3), 90, np.uint8), standin_photo(512, 512, [(256, 240, 180, 1)])]

    with caplog.at_level(logging.WARNING, logger="instantid_core.face_analysis"):
        faces = faces_pack.analyze(batch, on_no_face="skip")

    assert faces.skipped_indices == (0,) and len(faces.chosen_faces) == 1 and faces.results[1].chosen == 0
    assert "Reference image 0 (of 2" in caplog.text and "skipped" in caplog.text


def test_an_rgba_float_batch_as_comfyui_gives_it_is_analysed(faces_pack):
    rgb = standin_photo(512, 512, [(256, 240, 180, 2)]).astype(np.float32) / 255.0
    rgba = np.concatenate([rgb, np.full((512, 512, 1), 0.3, np.float32)], axis=-1)[None]

    (result,) = faces_pack.analyze(rgba).results

    assert near(centre(result.face), (256, 240))


def test_a_grey_one_channel_picture_reaches_the_detector_as_three_equal_channels(faces_pack, monkeypatch):
    seen = []
    real_detect = FaceModels.detect
    monkeypatch.setattr(FaceModels, "detect", lambda self, bgr, size: seen.append(bgr) or real_detect(self, bgr, size))
    grey = np.full((1, 300, 200, 1), 0.4, np.float32)

    faces = faces_pack.analyze(grey, on_no_face="skip")

    assert faces.skipped_indices == (0,)  # stand-in faces are magenta: a grey picture has none
    # 200×300 resized as the reference does before analysis: 853×1280, then 832×1280 (multiples of 64)
    assert seen[0].shape == (1280, 832, 3) and seen[0].dtype == np.uint8 and (seen[0] == 102).all()


@pytest.mark.parametrize(
    "picture, expected",
    [
        (np.array([[0, 65535]], np.uint16), [[0, 0, 0], [255, 255, 255]]),
        (np.array([[[-0.5], [1.5]]], np.float32), [[0, 0, 0], [255, 255, 255]]),
        (np.array([[[10, 20, 30, 0]]], np.uint8), [[10, 20, 30]]),
    ],
)
def test_pictures_of_any_depth_and_channel_count_become_rgb_uint8(picture, expected):
    rgb = as_rgb_uint8(picture)

    assert rgb.dtype == np.uint8 and rgb.shape[-1] == 3 and rgb.reshape(-1, 3).tolist() == expected


def test_an_odd_sized_777x555_picture_gives_the_face_in_its_own_pixels(faces_pack):
    (result,) = faces_pack.analyze([standin_photo(777, 555, [(390, 260, 200, 2)])]).results

    assert near(centre(result.face), (390, 260)) and result.face.image_size == (777, 555)


def test_a_6000x4000_photo_has_its_face_found(faces_pack):
    small = standin_photo(1500, 1000, [(750, 450, 375, 2)])  # drawn small and enlarged: drawing 6000x4000 is slow
    photo = cv2.resize(small, (6000, 4000), interpolation=cv2.INTER_LINEAR)

    (result,) = faces_pack.analyze(photo[None]).results

    assert near(centre(result.face), (3000, 1800)) and abs(float(result.face.bbox[2] - result.face.bbox[0]) - 1500) < 60


def test_a_close_up_missed_at_640_is_found_by_the_smaller_retries(faces_pack):
    # The stand-in detector sees faces of 12..326 px in its input: 360 of 400 px is 576 px at 640, 230 px at 256.
    close_up = standin_photo(400, 400, [(200, 200, 360, 5)])

    assert faces_pack.detect(np.ascontiguousarray(close_up[..., ::-1]), 640) == []
    (result,) = faces_pack.analyze([close_up]).results
    assert near(centre(result.face), (200, 200)) and abs(float(result.face.bbox[2] - result.face.bbox[0]) - 360) < 30


def test_the_bordered_retry_gives_the_face_in_the_pixels_of_the_original(faces_pack, monkeypatch):
    picture = standin_photo(400, 320, [(150, 170, 150, 3)])
    real_detect = FaceModels.detect
    # A detector that (like real ones on tight crops) needs the border: it finds nothing in the picture itself.
    monkeypatch.setattr(
        FaceModels,
        "detect",
        lambda self, bgr, size: [] if bgr.shape[:2] == picture.shape[:2] else real_detect(self, bgr, size),
    )

    (result,) = faces_pack.analyze([picture]).results

    assert near(centre(result.face), (150, 170)) and result.face.image_size == (400, 320)
    assert near(result.face.kps[2], (150 + 0.0002 * 150, 170 + 0.1405 * 150))  # nose, as placed in a stand-in face


def test_a_missing_pack_names_the_folder_the_five_files_and_where_they_go(tmp_path):
    with pytest.raises(InstantIDError) as raised:
        check_face_pack(tmp_path / "antelopev2")

    message = str(raised.value)
    assert str(tmp_path / "antelopev2") in message and all(name in message for name in ANTELOPEV2_FILES)
    assert "a face detector with keypoints and a 512-d face recogniser" in message
    assert "models/insightface/models/antelopev2/" in message


def test_a_pack_nested_one_folder_too_deep_says_to_move_the_files_up(tmp_path, pack_dir):
    shutil.copytree(pack_dir, tmp_path / "antelopev2" / "antelopev2")

    with pytest.raises(InstantIDError, match=r"nested one folder too deep.*Move the \.onnx files up"):
        check_face_pack(tmp_path / "antelopev2")


def test_an_empty_pack_folder_says_what_it_must_hold(tmp_path):
    (tmp_path / "empty").mkdir()

    with pytest.raises(InstantIDError, match=r"holds no \.onnx file: it must hold a face detector with keypoints"):
        check_face_pack(tmp_path / "empty")


def test_a_pack_without_a_recogniser_says_none_of_its_files_is_one(pack_copy):
    (pack_copy / "glintr100.onnx").unlink()

    with pytest.raises(InstantIDError, match=r"has no 512-d face recogniser \(insightface routes every \.onnx"):
        FaceModels.load(pack_copy, "CPU")


@pytest.mark.parametrize(
    "content, says",
    [
        (lambda real: b"", "an empty file"),
        (
            lambda real: b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 260665334\n",
            "a Git LFS pointer",
        ),
        (lambda real: real[: len(real) // 2], "truncated"),
    ],
)
def test_a_broken_recogniser_file_says_what_it_is(pack_copy, content, says):
    target = pack_copy / "glintr100.onnx"
    target.write_bytes(content(target.read_bytes()))

    with pytest.raises(InstantIDError, match=r"opens every \.onnx file .*glintr100\.onnx is") as raised:
        check_face_pack(pack_copy)

    assert says in str(raised.value)


def test_models_are_found_by_their_graphs_whatever_the_files_are_called(pack_copy):
    (pack_copy / "scrfd_10g_bnkps.onnx").rename(pack_copy / "my_detector.onnx")
    (pack_copy / "glintr100.onnx").rename(pack_copy / "recogniser.onnx")

    loaded = FaceModels.load(pack_copy, "CPU")

    assert type(loaded.detector).__name__ == "SCRFD" and type(loaded.recognizer).__name__ == "ArcFaceONNX"
    assert Path(loaded.recognizer.model_file).name == "recogniser.onnx"
    assert loaded.recognizer_id.instantid  # still known as the stand-in glintr100, by its graph
    (result,) = loaded.analyze(stand_in_input("instantid_face.png")).results
    assert result.face is not None


def test_a_stray_inswapper_file_is_not_used_and_the_pack_still_loads(pack_copy, caplog):
    shutil.copy(pack_copy / "genderage.onnx", pack_copy / "inswapper_128.onnx")

    with caplog.at_level(logging.INFO, logger="instantid_core.face_pack"):
        loaded = FaceModels.load(pack_copy, "CPU")

    assert "not used by InstantID" in caplog.text and "inswapper_128.onnx" in caplog.text
    assert Path(loaded.detector.model_file).name == "scrfd_10g_bnkps.onnx"


def test_a_broken_unused_pack_file_is_named_instead_of_an_onnxruntime_error(pack_copy):
    (pack_copy / "1k3d68.onnx").write_bytes(b"")

    with pytest.raises(InstantIDError, match=r"opens every \.onnx file .*1k3d68\.onnx is an empty file"):
        FaceModels.load(pack_copy, "CPU")


def test_of_two_detectors_antelopev2s_is_used_and_the_choice_is_said(pack_copy, caplog):
    shutil.copy(pack_copy / "scrfd_10g_bnkps.onnx", pack_copy / "det_10g.onnx")

    with caplog.at_level(logging.WARNING, logger="instantid_core.face_pack"):
        loaded = FaceModels.load(pack_copy, "CPU")

    assert Path(loaded.detector.model_file).name == "scrfd_10g_bnkps.onnx"
    assert "several face detectors with the five keypoints (det_10g.onnx, scrfd_10g_bnkps.onnx)" in caplog.text


def test_two_recognisers_and_neither_antelopev2s_is_an_error_naming_both(pack_copy):
    (pack_copy / "glintr100.onnx").rename(pack_copy / "a.onnx")
    shutil.copy(pack_copy / "a.onnx", pack_copy / "b.onnx")

    with pytest.raises(InstantIDError, match=r"several 512-d face recognisers \(a\.onnx, b\.onnx\).*keep one"):
        FaceModels.load(pack_copy, "CPU")


def test_another_recogniser_loads_with_a_warning_and_its_identity_tokens_warn_or_are_refused(pack_copy, caplog):
    other = onnx.load(pack_copy / "glintr100.onnx")
    other.graph.name = "some_other_recogniser"
    onnx.save(other, pack_copy / "glintr100.onnx")

    with caplog.at_level(logging.WARNING):
        loaded = FaceModels.load(pack_copy, "CPU")
        faces = loaded.analyze(stand_in_input("instantid_face.png"))
        assert faces.identity_embeddings().shape == (1, 512)

    assert not loaded.recognizer_id.instantid and "not antelopev2's glintr100" in loaded.recognizer_id.name
    assert caplog.text.count("will not transfer well") == 2  # at load, and when tokens are made
    refusing = dataclasses.replace(loaded, refuse_other_recognizer=True)
    with pytest.raises(InstantIDError, match=r"trained on antelopev2's glintr100.*set other_recognizer to 'warn'"):
        refusing.analyze(stand_in_input("instantid_face.png")).identity_embeddings()
    assert refusing.analyze(stand_in_input("instantid_face.png")).embeddings().shape == (1, 512)  # raw: any pack


def test_glintr100_is_known_by_its_size_and_sha256(tmp_path, monkeypatch):
    fake = tmp_path / "r.onnx"
    fake.write_bytes(b"x" * 8)
    known = face_pack.KnownFile("glintr100", 8, hashlib.sha256(b"x" * 8).hexdigest())
    monkeypatch.setattr(face_pack, "GLINTR100", known)
    no_meta = type("Model", (), {"session": type("S", (), {"get_modelmeta": lambda self: None})()})()

    assert face_pack.identify_recognizer(fake, no_meta) == face_pack.Recognizer("glintr100 (antelopev2)", True)


@pytest.mark.parametrize(
    "requested, available, providers",
    [
        ("auto", [CUDA, CPU], [CUDA, CPU]),
        ("auto", ["ROCMExecutionProvider", "CoreMLExecutionProvider", CPU], ["ROCMExecutionProvider", CPU]),
        ("auto", ["DmlExecutionProvider", CPU], ["DmlExecutionProvider", CPU]),
        ("auto", ["AzureExecutionProvider", CPU], [CPU]),
        ("CPU", [CUDA, CPU], [CPU]),
        ("CoreML", ["CoreMLExecutionProvider", CPU], ["CoreMLExecutionProvider", CPU]),
    ],
)
def test_providers_resolve_to_the_best_or_the_chosen_one_with_the_cpu_last(requested, available, providers):
    assert resolve_providers(requested, available) == (providers, None)


@pytest.mark.parametrize("requested, install", [("CUDA", "onnxruntime-gpu"), ("DirectML", "onnxruntime-directml")])
def test_an_unavailable_provider_falls_back_to_the_cpu_with_what_to_install(requested, install):
    providers, warning = resolve_providers(requested, ["AzureExecutionProvider", CPU])

    assert providers == [CPU]
    assert (
        f"the {requested} provider" in warning and "available: AzureExecutionProvider, CPUExecutionProvider" in warning
    )
    assert install in warning and "never both" in warning


def test_an_unknown_provider_name_is_refused():
    with pytest.raises(InstantIDError, match="Unknown execution provider 'TPU'"):
        resolve_providers("TPU", [CPU])


def test_loading_with_an_unavailable_provider_runs_on_the_cpu_with_a_warning(pack_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="instantid_core.face_analysis"):
        loaded = FaceModels.load(pack_dir, "CoreML")

    assert loaded.providers[0] == CPU and "CoreML provider (CoreMLExecutionProvider) is not available" in caplog.text


def test_a_provider_onnxruntime_lists_but_cannot_start_is_reported(pack_dir, caplog, monkeypatch):
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime really runs CUDA")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])

    with caplog.at_level(logging.WARNING, logger="instantid_core.face_analysis"):
        loaded = FaceModels.load(pack_dir, "auto")

    assert loaded.providers[0] == CPU
    assert f"asked onnxruntime for {CUDA}, but it runs on {CPU}" in caplog.text


@pytest.mark.parametrize(
    "images, on_no_face, says",
    [
        (np.zeros((64, 64, 3), np.uint8), "error", "Expected a batch of pictures"),
        (np.zeros((0, 64, 64, 3), np.uint8), "error", "empty"),
        (np.zeros((1, 64, 64, 3), np.uint8), "ignore", "Unknown no-face policy 'ignore'"),
        (np.zeros((1, 64, 64, 2), np.uint8), "error", r"shape \(64, 64, 2\)"),
    ],
)
def test_malformed_batches_and_policies_are_refused_with_what_was_given(faces_pack, images, on_no_face, says):
    with pytest.raises(InstantIDError, match=says):
        faces_pack.analyze(images, on_no_face=on_no_face)


def test_the_preview_draws_the_chosen_box_green_the_other_yellow_and_the_keypoints(faces_pack):
    picture = as_rgb_uint8(stand_in_input("instantid_two_people.png")[0])
    result = faces_pack.analyze([picture], "largest").results[0]

    preview = draw_preview(picture, result)

    assert preview.shape == picture.shape and preview.dtype == np.uint8
    for number, colour in ((result.chosen, CHOSEN_COLOUR), (1 - result.chosen, OTHER_COLOUR)):
        x1, y1, x2, _ = (int(v) for v in np.round(result.faces[number].bbox))
        assert tuple(preview[y1, (x1 + x2) // 2]) == colour  # the middle of the box's top edge
    nose = np.round(result.face.kps[2]).astype(int)
    assert tuple(preview[nose[1], nose[0]]) == KEYPOINT_COLORS[2]
    assert np.array_equal(preview[700:], picture[700:])  # nothing drawn far from the faces


def test_the_preview_of_a_skipped_image_says_no_face():
    picture = np.full((200, 300, 3), 128, np.uint8)

    preview = draw_preview(picture, FaceAnalysisResult(faces=(), chosen=None, batch_index=0))

    assert preview.shape == picture.shape and not np.array_equal(preview[:40, :120], picture[:40, :120])
    assert np.array_equal(preview[100:], picture[100:])

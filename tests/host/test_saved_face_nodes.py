"""InstantID Save Face and Load Face as ComfyUI runs them: the file lands in models/instantid/faces/, the Load node
lists it (and the adapter list does not), and the loaded face drives the nodes as the analysed one did."""

import numpy as np
import pytest

from helpers.host_runs import face_photo

pytestmark = pytest.mark.host


def test_a_saved_face_is_listed_loaded_and_gives_the_same_tokens_and_keypoints(
    comfy_host, face_pack, adapter, standins
):
    import folder_paths

    faces = face_pack.analyze(face_photo(standins).numpy())
    comfy_host.node("InstantIDSaveFace").execute(faces, "anna", False)

    assert "anna.safetensors" in comfy_host.pack_module("nodes.comfy_glue.folders").saved_face_files()
    assert not any("anna" in name for name in comfy_host.pack_module("nodes.comfy_glue.folders").adapter_files())
    schema = comfy_host.node("InstantIDLoadFace").define_schema()
    assert "anna.safetensors" in schema.inputs[0].options
    (loaded,) = comfy_host.node("InstantIDLoadFace").execute("anna.safetensors").result

    assert np.array_equal(loaded.embeddings(), faces.embeddings()) and loaded.recognizer == faces.recognizer
    keypoints = comfy_host.node("InstantIDKeypoints")
    drawn = [keypoints.execute(f, 512, 512, "as in source", 0.35, 0, False).result[0] for f in (faces, loaded)]
    assert (drawn[0] == drawn[1]).all()
    assert folder_paths.get_full_path("instantid", "faces/anna.safetensors") is not None


def test_saving_over_an_existing_face_needs_overwrite(comfy_host, face_pack, standins):
    errors = comfy_host.pack_module("instantid_core.errors")
    faces = face_pack.analyze(face_photo(standins).numpy())
    save = comfy_host.node("InstantIDSaveFace")
    save.execute(faces, "ben", False)

    with pytest.raises(errors.InstantIDError, match="ben.safetensors exists: choose another name"):
        save.execute(faces, "ben", False)
    save.execute(faces, "ben", True)
    with pytest.raises(errors.InstantIDError, match="cannot be a file name"):
        save.execute(faces, "../escape", False)


def test_save_face_gives_the_face_as_a_value_that_load_face_takes_in_place_of_the_file(comfy_host, face_pack, standins):
    faces = face_pack.analyze(face_photo(standins).numpy())
    load = comfy_host.node("InstantIDLoadFace")

    (value,) = comfy_host.node("InstantIDSaveFace").execute(faces, "carla", True).result
    (from_value,) = load.execute(face_value=value).result
    (from_file,) = load.execute("carla.safetensors").result

    assert value.startswith("instantid-face:") and len(value) < 5000
    assert np.array_equal(from_value.embeddings(), faces.embeddings()) and from_value.recognizer == faces.recognizer
    assert all(
        np.array_equal(a.kps, b.kps) for a, b in zip(from_value.chosen_faces, from_file.chosen_faces, strict=True)
    )
    # with a value, the file is neither needed nor checked (a server without it still takes the prompt) ...
    assert load.validate_inputs(saved_face="not-on-this-server.safetensors", face_value=value) is True
    # ... without one, a file that is not there, no choice, and a broken value are refused with their codes
    assert load.validate_inputs(saved_face="gone.safetensors").endswith("[instantid.model_not_found]")
    assert load.validate_inputs().endswith("[instantid.missing_input]")
    assert load.validate_inputs(face_value=value[:-9]).endswith("[instantid.bad_face_value]")

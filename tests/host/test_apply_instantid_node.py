"""The all-in-one Apply InstantID node on tiny models and the stand-in face pack: it applies everything, and a
photo without a face is an error by default or, when asked, passes the inputs through unchanged. No-face errors name
the input at fault and only an option the node really has."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.host_runs import as_image, face_photo
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning
from scripts.standins.images import standin_photo

pytestmark = pytest.mark.host


def faceless(width=256, height=256) -> torch.Tensor:
    """A photo without a face that is not one flat colour (a muted gradient with noise)."""
    return as_image(standin_photo(width, height, []))


def run(comfy_host, face_pack, adapter, photo, no_face="error", image_kps=None, node_id="InstantIDApply"):
    """Apply InstantID (or Apply InstantID Advanced) as the node does; returns (model, positive, negative) and the
    inputs."""
    inputs = (tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))
    settings = {
        "InstantIDApply": (0.8, 0.0, 1.0, no_face),
        "InstantIDApplyAdvanced": (0.8, 0.8, 0.0, 1.0, "linear", "average", 0.0, "largest", 0, no_face),
    }
    node = comfy_host.node(node_id)
    result = node.execute(
        adapter, face_pack, tiny_controlnet(seed=4), *inputs, *settings[node_id], image=photo, image_kps=image_kps
    ).result
    return result, inputs


def run_compat(comfy_host, face_pack, adapter, node_id, photo):
    """Run a ComfyUI_InstantID alias that analyses `photo` with its default settings."""
    model, positive, negative = tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2)
    node = comfy_host.node(node_id)
    graph = (adapter, face_pack, tiny_controlnet(seed=4), photo, model, positive, negative)
    if node_id == "ApplyInstantID":
        return node.execute(*graph, 0.8, 0.0, 1.0)
    if node_id == "ApplyInstantIDAdvanced":
        return node.execute(*graph, 0.8, 0.8, 0.0, 1.0, 0.0, "average")
    if node_id == "InstantIDAttentionPatch":
        return node.execute(adapter, face_pack, photo, model, 1.0, 0.0, 1.0, 0.0)
    return node.execute(face_pack, photo)  # FaceKeypointsPreprocessor


def sixteen_bit_grey_png_as_comfyui_loads_it(comfy_host, name, standins) -> torch.Tensor:
    """The stand-in face photo saved as a 16-bit greyscale PNG in ComfyUI's input folder (newer ComfyUI loads only
    from there) and read back by ComfyUI's own Load Image."""
    import folder_paths

    grey = np.array(Image.open(standins / "input" / "instantid_face.png").convert("L"), dtype=np.uint16) * 257
    path = Path(folder_paths.get_input_directory()) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode == "I;16"
    image, _mask = comfy_host.nodes.LoadImage().load_image(name)
    return image


def test_apply_instantid_patches_the_model_and_attaches_identitynet(comfy_host, face_pack, adapter, standins):
    (model, positive, negative), (model_in, positive_in, _) = run(comfy_host, face_pack, adapter, face_photo(standins))

    assert model is not model_in and len(model.model_options["transformer_options"]["patches_replace"]["attn2"]) == 70
    assert type(positive[0][1]["control"]).__name__ == "IdentityNetControl"
    assert positive[0][1]["control"] is negative[0][1]["control"] and "control" not in positive_in[0][1]


def test_no_face_is_an_error_naming_the_photo_by_default(comfy_host, face_pack, adapter):
    errors = comfy_host.pack_module("instantid_core.errors")

    with pytest.raises(errors.InstantIDError, match="Reference image 0 .* no face found"):
        run(comfy_host, face_pack, adapter, faceless())


def test_no_face_passes_the_inputs_through_unchanged_when_asked(comfy_host, face_pack, adapter, caplog):
    with caplog.at_level(logging.WARNING):
        outputs, inputs = run(comfy_host, face_pack, adapter, torch.full((1, 256, 256, 3), 0.5), "pass through")

    assert len(outputs) == len(inputs) == 3 and all(out is given for out, given in zip(outputs, inputs, strict=False))
    assert "passing model and conditioning through unchanged" in caplog.text


@pytest.mark.parametrize("node_id", ["InstantIDApply", "InstantIDApplyAdvanced"])
def test_a_pose_photo_without_a_face_is_an_error_naming_the_pose_photo_not_a_reference_image(
    comfy_host, face_pack, adapter, standins, node_id
):
    errors = comfy_host.pack_module("instantid_core.errors")

    with pytest.raises(errors.InstantIDError) as raised:
        run(comfy_host, face_pack, adapter, face_photo(standins), image_kps=faceless(320, 240), node_id=node_id)

    message = str(raised.value)
    assert message.startswith("Pose photo (image_kps) 0 (of 1, counted from 0; 320×240 px): no face found")
    assert "Reference image" not in message


@pytest.mark.parametrize("node_id", ["InstantIDApply", "InstantIDApplyAdvanced"])
def test_the_all_in_one_nodes_no_face_error_names_their_pass_through_option_not_skip(
    comfy_host, face_pack, adapter, node_id
):
    errors = comfy_host.pack_module("instantid_core.errors")

    with pytest.raises(errors.InstantIDError) as raised:
        run(comfy_host, face_pack, adapter, faceless(), node_id=node_id)

    assert "set no_face to 'pass through'" in str(raised.value) and "'skip'" not in str(raised.value)


def test_the_face_analysis_nodes_no_face_error_names_its_skip_option(comfy_host, face_pack):
    errors = comfy_host.pack_module("instantid_core.errors")

    with pytest.raises(errors.InstantIDError) as raised:
        comfy_host.node("InstantIDAnalyzeFaces").execute(face_pack, faceless(), "largest", 0, "error")

    message = str(raised.value)
    assert message.startswith("Reference image 0 (of 1") and "set no_face to 'skip'" in message
    assert "pass through" not in message


@pytest.mark.parametrize(
    "node_id, photo",
    [
        ("ApplyInstantID", "Reference image"),
        ("ApplyInstantIDAdvanced", "Reference image"),
        ("InstantIDAttentionPatch", "Reference image"),
        ("FaceKeypointsPreprocessor", "Pose photo"),
    ],
)
def test_the_compat_aliases_no_face_error_names_no_option_they_lack(comfy_host, face_pack, adapter, node_id, photo):
    errors = comfy_host.pack_module("instantid_core.errors")
    offered = {spec.id for spec in comfy_host.node(node_id).define_schema().inputs}

    with pytest.raises(errors.InstantIDError) as raised:
        run_compat(comfy_host, face_pack, adapter, node_id, faceless())

    message = str(raised.value)
    assert "no_face" not in offered  # none of ComfyUI_InstantID's nodes has one
    assert message.startswith(f"{photo} 0 (of 1, counted from 0; 256×256 px): no face found")
    assert "no_face" not in message and "'skip'" not in message and "pass through" not in message


def test_a_16_bit_grey_png_through_load_image_is_reported_as_flat_where_the_host_flattens_it(
    comfy_host, face_pack, standins
):
    errors = comfy_host.pack_module("instantid_core.errors")
    image = sixteen_bit_grey_png_as_comfyui_loads_it(comfy_host, "face_16bit_grey.png", standins)
    flattened = bool((image == image.reshape(-1, 3)[0]).all())  # ComfyUI 0.3.75 does; 0.33 reads the grey photo

    with pytest.raises(errors.InstantIDError) as raised:
        comfy_host.node("InstantIDAnalyzeFaces").execute(face_pack, image, "largest", 0, "error")

    message = str(raised.value)
    if flattened:
        assert message.startswith(
            "Reference image 0 (of 1, counted from 0; 768×1024 px) is a single flat colour "
            "(every pixel is RGB 255, 255, 255)"
        )
        assert "16-bit" in message and "8-bit" in message and "no face found" not in message
    else:  # a grey photo without the stand-in detector's magenta face
        assert message.startswith("Reference image 0 (of 1, counted from 0; 768×1024 px): no face found")
        assert "flat colour" not in message


def test_a_flat_colour_pose_photo_is_reported_as_the_flat_pose_photo(comfy_host, face_pack, adapter, standins):
    errors = comfy_host.pack_module("instantid_core.errors")
    pose = torch.ones(1, 1024, 768, 3)  # what ComfyUI 0.3.75's Load Image gives for a 16-bit grey PNG

    with pytest.raises(errors.InstantIDError) as raised:
        run(comfy_host, face_pack, adapter, face_photo(standins), image_kps=pose)

    message = str(raised.value)
    assert message.startswith("Pose photo (image_kps) 0 (of 1, counted from 0; 768×1024 px) is a single flat colour")
    assert "8-bit" in message and "set no_face to 'pass through'" in message

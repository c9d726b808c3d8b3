"""The all-in-one Apply InstantID node on tiny models and the stand-in face pack: it applies everything, and a
photo without a face is an error by default or, when asked, passes the inputs through unchanged."""
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.tiny_models import sdxl_conditioning, tiny_controlnet, tiny_sdxl

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def face_pack(comfy_host, standins):
    """The stand-in antelopev2 pack, loaded by the pack's loader."""
    return comfy_host.pack_module("instantid_core.face_analysis").FacePack.load(
        standins / "models" / "insightface" / "models" / "antelopev2", "CPU", 640)


def as_image(array: np.ndarray) -> torch.Tensor:
    """An HxWx3 uint8 picture as a ComfyUI IMAGE batch of one."""
    return torch.from_numpy(array.copy()).float().unsqueeze(0) / 255


def run(comfy_host, face_pack, adapter, photo, no_face="error"):
    """Apply InstantID as the node does; returns (model, positive, negative) and the inputs."""
    inputs = (tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))
    node = comfy_host.node("InstantIDApply")
    result = node.execute(adapter, face_pack, tiny_controlnet(seed=4), photo, *inputs, 0.8, 0.0, 1.0, no_face).result
    return result, inputs


def test_apply_instantid_patches_the_model_and_attaches_identitynet(comfy_host, face_pack, adapter, standins):
    photo = as_image(np.array(Image.open(standins / "input" / "instantid_face.png").convert("RGB")))

    (model, positive, negative), (model_in, positive_in, _) = run(comfy_host, face_pack, adapter, photo)

    assert model is not model_in and len(model.model_options["transformer_options"]["patches_replace"]["attn2"]) == 70
    assert type(positive[0][1]["control"]).__name__ == "IdentityNetControl"
    assert positive[0][1]["control"] is negative[0][1]["control"] and "control" not in positive_in[0][1]


def test_no_face_is_an_error_naming_the_photo_by_default(comfy_host, face_pack, adapter):
    errors = comfy_host.pack_module("instantid_core.errors")

    with pytest.raises(errors.InstantIDError, match="Reference image 0 .* no face found"):
        run(comfy_host, face_pack, adapter, torch.full((1, 256, 256, 3), 0.5))


def test_no_face_passes_the_inputs_through_unchanged_when_asked(comfy_host, face_pack, adapter, caplog):
    with caplog.at_level(logging.WARNING):
        outputs, inputs = run(comfy_host, face_pack, adapter, torch.full((1, 256, 256, 3), 0.5), "pass through")

    assert len(outputs) == len(inputs) == 3 and all(out is given for out, given in zip(outputs, inputs))
    assert "passing model and conditioning through unchanged" in caplog.text

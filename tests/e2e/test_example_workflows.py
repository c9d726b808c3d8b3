"""The example workflows and ComfyUI_InstantID's published ones run end to end through a real ComfyUI server on the
full-size stand-in models (the compat workflows' file names are linked to the stand-ins by make_standins.py).

Lowered for a CPU: every empty latent is 256×256, every face crop 256 px and every KSampler runs 2 steps; nothing else
in a workflow changes.
"""

import io
import json

import numpy as np
import pytest
from PIL import Image

from scripts.harness.paths import COMPAT, WORKFLOWS
from scripts.harness.workflow_api import lowered_prompt
from scripts.standins.images import input_image

pytestmark = pytest.mark.e2e

SIZE, STEPS = 256, 2
PHOTO_SIZES = {"instantid_face_swap": (1024, 768)}
"""Workflows whose result is a photo with a face pasted in, not a generated picture: the photo's size."""


def test_the_compat_workflows_are_there():
    assert len(list(COMPAT.glob("*.json"))) == 2, f"expected the two ComfyUI_InstantID workflows in {COMPAT}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_and_produces_an_image(comfy_server, path):
    prompt = lowered_prompt(json.loads(path.read_text()), comfy_server.get_json("/object_info"), SIZE, STEPS)

    entry = comfy_server.run(prompt)

    images = [Image.open(io.BytesIO(data)) for data in comfy_server.output_images(entry)]
    expected = PHOTO_SIZES.get(path.stem, (SIZE, SIZE))
    assert any(image.size == expected for image in images), [image.size for image in images]


def test_the_face_swap_replaces_the_largest_face_and_leaves_the_rest_of_the_photo_bit_identical(comfy_server):
    (path,) = [path for path in WORKFLOWS if path.stem == "instantid_face_swap"]
    workflow = json.loads(path.read_text())
    prompt = lowered_prompt(workflow, comfy_server.get_json("/object_info"), SIZE, STEPS)
    (save_id,) = [node_id for node_id, node in prompt.items() if node["class_type"] == "SaveImage"]
    prompt[save_id]["inputs"]["filename_prefix"] = "face_swap_check"  # a new output: the run above left all cached

    (data,) = comfy_server.output_images(comfy_server.run(prompt), save_id)

    swapped = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    changed = (swapped != input_image("instantid_two_people.png")).any(axis=-1)
    assert changed[300:420, 670:790].mean() > 0.5  # the largest face: 240 px round (730, 360)
    assert not changed[:, :450].any()  # the other person, and everything left of them

"""The example workflows run end to end through a real ComfyUI server on the full-size stand-in models.

Lowered for a CPU: every empty latent is 256×256 and every KSampler runs 2 steps; nothing else in a workflow changes.
"""
import io
import json

import pytest
from PIL import Image

from helpers.paths import REPO
from helpers.workflow_api import ui_to_api

pytestmark = pytest.mark.e2e

SIZE, STEPS = 256, 2


def lowered_prompt(workflow: dict, object_info: dict) -> dict:
    """The workflow as the frontend would queue it, at SIZE×SIZE and STEPS steps."""
    prompt = ui_to_api(workflow, object_info)
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"] |= {"width": SIZE, "height": SIZE}
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = STEPS
    return prompt


@pytest.mark.parametrize("path", sorted((REPO / "workflows").glob("*.json")), ids=lambda p: p.stem)
def test_example_workflow_runs_and_saves_an_image(comfy_server, path):
    prompt = lowered_prompt(json.loads(path.read_text()), comfy_server.get_json("/object_info"))

    entry = comfy_server.run(prompt)

    saved = [img for out in entry["outputs"].values() for img in out.get("images", []) if img["type"] == "output"]
    assert saved, "the workflow saved no image"
    image = Image.open(io.BytesIO(comfy_server.get_bytes("/view", filename=saved[0]["filename"],
                                                         subfolder=saved[0]["subfolder"], type="output")))
    assert image.size == (SIZE, SIZE)

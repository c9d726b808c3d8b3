"""The example workflows and ComfyUI_InstantID's published ones run end to end through a real ComfyUI server on the
full-size stand-in models (the compat workflows' file names are linked to the stand-ins by make_standins.py).

Lowered for a CPU: every empty latent is 256×256 and every KSampler runs 2 steps; nothing else in a workflow changes.
"""

import io
import json

import pytest
from PIL import Image

from scripts.harness.paths import COMPAT, WORKFLOWS
from scripts.harness.workflow_api import lowered_prompt

pytestmark = pytest.mark.e2e

SIZE, STEPS = 256, 2


def test_the_compat_workflows_are_there():
    assert len(list(COMPAT.glob("*.json"))) == 2, f"expected the two ComfyUI_InstantID workflows in {COMPAT}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_and_produces_an_image(comfy_server, path):
    prompt = lowered_prompt(json.loads(path.read_text()), comfy_server.get_json("/object_info"), SIZE, STEPS)

    entry = comfy_server.run(prompt)

    images = [Image.open(io.BytesIO(data)) for data in comfy_server.output_images(entry)]
    assert any(image.size == (SIZE, SIZE) for image in images), [image.size for image in images]

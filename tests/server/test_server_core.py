"""A real ComfyUI server (the session's) runs the provisioned ComfyUI with this pack loaded, and the harness converts a
UI workflow with its /object_info into the prompt the frontend would queue. (ComfyUI's own loaders on the full-size
stand-ins are the e2e lane's: tests/e2e/test_example_workflows.py.)"""

import pytest

from scripts.harness.paths import PACK_LINK_NAME, comfy_dir

pytestmark = pytest.mark.server


def test_server_reports_the_provisioned_comfyui_at_least_0_3_75_and_loads_this_pack(comfy_server):
    stats = comfy_server.get_json("/system_stats")

    version = stats["system"]["comfyui_version"]
    assert tuple(int(part) for part in version.split(".")[:3]) >= (0, 3, 75)
    assert version in (comfy_dir() / "comfyui_version.py").read_text()
    log = comfy_server.log_tail(200_000)
    pack_lines = [line for line in log.splitlines() if line.rstrip().endswith(PACK_LINK_NAME)]
    assert "Import times for custom nodes" in log and pack_lines, log[-2000:]
    assert not any("IMPORT FAILED" in line for line in pack_lines), pack_lines


def test_ui_workflow_converts_to_the_prompt_the_frontend_would_queue(comfy_server):
    import json

    from scripts.harness.paths import REPO
    from scripts.harness.workflow_api import ui_to_api

    workflow = json.loads((REPO / "workflows" / "instantid_basic.json").read_text())
    sampler_id = next(str(n["id"]) for n in workflow["nodes"] if n["type"] == "KSampler")

    prompt = ui_to_api(workflow, comfy_server.get_json("/object_info"))

    sampler = prompt[sampler_id]["inputs"]
    # widgets_values [seed, "fixed", steps, cfg, sampler, scheduler, denoise]: the hidden "control after generate"
    # value after the seed is skipped, links take the socket inputs.
    assert {k: sampler[k] for k in ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")} == {
        "seed": 42,
        "steps": 30,
        "cfg": 4.5,
        "sampler_name": "euler",
        "scheduler": "karras",
        "denoise": 1.0,
    }
    assert all(isinstance(sampler[k], list) for k in ("model", "positive", "negative", "latent_image"))
    assert not any(node["class_type"] == "Note" for node in prompt.values())

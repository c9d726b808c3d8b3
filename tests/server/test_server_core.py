"""A real ComfyUI server (started by the test, stand-in models) runs core SDXL graphs and loads the stand-in IdentityNet."""

import io

import pytest
from PIL import Image

from scripts.harness.paths import PACK_LINK_NAME, comfy_dir

pytestmark = pytest.mark.server

STANDIN_CHECKPOINT = "sdxl_standin.safetensors"
IDENTITYNET = "instantid/diffusion_pytorch_model.safetensors"


def core_sdxl_prompt(size: int = 128, steps: int = 1) -> dict:
    """Checkpoint loader -> text encode -> empty latent -> KSampler -> VAE decode -> SaveImage, in API format."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": STANDIN_CHECKPOINT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a portrait photo", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["4", 0],
                "seed": 1,
                "steps": steps,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "core_sdxl"}},
    }


def test_server_reports_the_provisioned_comfyui_at_least_0_3_75_and_loads_this_pack(comfy_server):
    stats = comfy_server.get_json("/system_stats")

    version = stats["system"]["comfyui_version"]
    assert tuple(int(part) for part in version.split(".")[:3]) >= (0, 3, 75)
    assert version in (comfy_dir() / "comfyui_version.py").read_text()
    log = comfy_server.log_tail(200_000)
    pack_lines = [line for line in log.splitlines() if line.rstrip().endswith(PACK_LINK_NAME)]
    assert "Import times for custom nodes" in log and pack_lines, log[-2000:]
    assert not any("IMPORT FAILED" in line for line in pack_lines), pack_lines


def test_core_sdxl_graph_on_the_standin_checkpoint_saves_an_image(comfy_server):
    entry = comfy_server.run(core_sdxl_prompt())

    images = comfy_server.output_images(entry)
    assert len(images) == 1
    image = Image.open(io.BytesIO(images[0]))
    assert image.size == (128, 128)
    assert any(low != high for low, high in image.getextrema())  # not one flat colour


def test_comfyui_controlnet_loader_loads_the_standin_identitynet(comfy_server):
    prompt = core_sdxl_prompt()
    prompt |= {
        "10": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": IDENTITYNET}},
        "11": {"class_type": "EmptyImage", "inputs": {"width": 128, "height": 128, "batch_size": 1, "color": 0}},
        "12": {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {
                "positive": ["2", 0],
                "negative": ["3", 0],
                "control_net": ["10", 0],
                "image": ["11", 0],
                "strength": 0.8,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
    }
    prompt["5"]["inputs"] |= {"positive": ["12", 0], "negative": ["12", 1]}
    prompt["7"]["inputs"]["filename_prefix"] = "core_sdxl_controlnet"

    entry = comfy_server.run(prompt)

    assert len(comfy_server.output_images(entry)) == 1
    assert (
        IDENTITYNET
        in comfy_server.get_json("/object_info/ControlNetLoader")["ControlNetLoader"]["input"]["required"][
            "control_net_name"
        ][0]
    )


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

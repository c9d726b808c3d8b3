"""Where the provisioned ComfyUI host, the stand-in models and this repo live. scripts/provision.sh writes the same
facts from the shell; tests/unit/test_harness.py checks that the two agree."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("INSTANTID_CACHE", Path.home() / ".cache" / "instantid-comfy"))
"""The cache outside the repo: the extracted ComfyUI hosts and the stand-in models."""
PACK_LINK_NAME = "comfyui-instantid-suite"
"""The name this repo is linked under in ComfyUI's custom_nodes/."""
COMFY_RECORD = "comfyui_dir"
"""The file in a venv that names the ComfyUI folder that venv's Python imports."""

STANDINS = CACHE / "standins"
"""The stand-in models (models/, laid out like ComfyUI's) and input pictures (input/)."""
CHECKPOINT = Path("checkpoints/sdxl_standin.safetensors")
CHECKPOINT_ALIASES = (Path("checkpoints/sd_xl_base_1.0.safetensors"), Path("checkpoints/sdxl/AlbedoBaseXL.safetensors"))
"""Links to the checkpoint under the names the example and compat workflows load."""
IDENTITYNET = Path("controlnet/instantid/diffusion_pytorch_model.safetensors")
CONTROLNET_ALIASES = (Path("controlnet/OpenPoseXL2.safetensors"),)
"""Links to the IdentityNet stand-in under the names of full-size SDXL ControlNets the workflows load (an OpenPose
SDXL ControlNet has exactly IdentityNet's format: a full diffusers SDXL ControlNet)."""
MID_CONTROLNET = Path("controlnet/diffusers_xl_canny_mid.safetensors")
"""A "mid" SDXL ControlNet with its own weights: the canny workflow's second ControlNet."""
ADAPTER = Path("instantid/ip-adapter.bin")
SAVED_FACES = Path("instantid/faces")
"""Where the stand-in saved faces lie (scripts/standins/saved_faces.py), as 'InstantID Save Face' keeps faces."""
FACE_PACK = Path("insightface/models/antelopev2")

COMPAT = REPO / "tests" / "data" / "compat"
"""Two workflows published with cubiq's ComfyUI_InstantID (UI format, Apache-2.0), vendored as test data."""
TEST_PACK = REPO / "tests" / "comfy_test_pack"
"""The test-only node pack the test servers load beside this one: tiny SDXL-topology models (server tier)."""
WORKFLOWS = sorted((REPO / "workflows").glob("*.json")) + sorted(COMPAT.glob("*.json"))
"""Every workflow the e2e and browser tiers run: this pack's examples, then the compat ones."""


def comfy_dir() -> Path:
    """The ComfyUI folder this Python imports, as scripts/provision.sh recorded it in the venv."""
    recorded = Path(sys.prefix) / COMFY_RECORD
    if not recorded.is_file():
        raise RuntimeError(
            f"No ComfyUI is provisioned for this Python ({sys.prefix} has no {COMFY_RECORD}): run "
            "`make host`, or `COMFYUI_DIR=/path/to/ComfyUI bash scripts/provision.sh` for your own."
        )
    return Path(recorded.read_text().strip())


def standin_models() -> Path:
    """The stand-in `models/` folder written by scripts/make_standins.py; fails loudly when it is missing."""
    if not (STANDINS / "COMPLETE").is_file():
        raise RuntimeError(f"Stand-in models are missing or incomplete in {STANDINS}: run `make standins`.")
    return STANDINS / "models"

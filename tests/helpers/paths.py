"""Where the provisioned ComfyUI host, the stand-in models and this repo live (see scripts/provision.sh)."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("INSTANTID_CACHE", Path.home() / ".cache" / "instantid-comfy"))
STANDINS = CACHE / "standins"
PACK_LINK_NAME = "comfyui-instantid-suite"
COMPAT = REPO / "tests" / "data" / "compat"
"""Two workflows published with cubiq's ComfyUI_InstantID (UI format, Apache-2.0), vendored as test data."""
WORKFLOWS = sorted((REPO / "workflows").glob("*.json")) + sorted(COMPAT.glob("*.json"))
"""Every workflow the e2e and browser tiers run: this pack's examples, then the compat ones."""


def comfy_dir() -> Path:
    """The ComfyUI folder: $COMFYUI_DIR, else the one scripts/provision.sh recorded."""
    if os.environ.get("COMFYUI_DIR"):
        return Path(os.environ["COMFYUI_DIR"])
    recorded = CACHE / "comfyui_dir"
    if not recorded.is_file():
        raise RuntimeError(f"No provisioned ComfyUI found ({recorded} is missing): run `make test` or scripts/provision.sh first.")
    return Path(recorded.read_text().strip())


def standin_models() -> Path:
    """The stand-in `models/` folder written by scripts/make_standins.py; fails loudly when it is missing."""
    models = STANDINS / "models"
    if not (STANDINS / "COMPLETE").is_file():
        raise RuntimeError(f"Stand-in models are missing or incomplete in {STANDINS}: run `python scripts/make_standins.py`.")
    return models

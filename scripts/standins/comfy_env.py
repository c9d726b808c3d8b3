"""Importing the provisioned ComfyUI (scripts/provision.sh) on the CPU, for the generators that use its model classes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from instantid_core.errors import InstantIDError

CACHE = Path(os.environ.get("INSTANTID_CACHE", Path.home() / ".cache" / "instantid-comfy"))


def comfy_dir() -> Path:
    """The ComfyUI folder: $COMFYUI_DIR, else the one scripts/provision.sh recorded in the cache."""
    if os.environ.get("COMFYUI_DIR"):
        folder = Path(os.environ["COMFYUI_DIR"])
    else:
        recorded = CACHE / "comfyui_dir"
        if not recorded.is_file():
            raise InstantIDError(f"No provisioned ComfyUI found ({recorded} is missing): run scripts/provision.sh "
                                 "or set COMFYUI_DIR to a ComfyUI folder.")
        folder = Path(recorded.read_text().strip())
    if not (folder / "comfy" / "sd.py").is_file():
        raise InstantIDError(f"{folder} is not a ComfyUI folder (no comfy/sd.py): run scripts/provision.sh "
                             "or set COMFYUI_DIR to a ComfyUI folder.")
    return folder


def import_comfy() -> Path:
    """Put ComfyUI on sys.path and switch it to the CPU before comfy.model_management loads; returns its folder."""
    folder = comfy_dir()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    from comfy.cli_args import args

    args.cpu = True
    return folder

"""InstantID Doctor's and Download Models' ComfyUI side: the host's version and folders in, progress out."""

import logging
from pathlib import Path

import comfy.utils
import folder_paths
import torch

from ...instantid_core import doctor, download
from ...instantid_core.doctor import ModelFolders
from ...instantid_core.model_facts import IDENTITYNET
from .folders import ADAPTER_FOLDER, FACE_PACK_FOLDER

log = logging.getLogger(__name__)


def doctor_report() -> tuple[str, int]:
    """InstantID Doctor's report on this ComfyUI (its version and the folders it searches for each kind of model),
    and how many problems it found."""
    try:
        from comfyui_version import __version__ as comfyui
    except ImportError:
        comfyui = "unknown (no comfyui_version module)"
    folders = ModelFolders(
        *(
            tuple(Path(p) for p in folder_paths.get_folder_paths(name))
            for name in (ADAPTER_FOLDER, IDENTITYNET.folder, FACE_PACK_FOLDER)
        )
    )
    return doctor.report(comfyui, torch, folders)


def download_models(models) -> list[str]:
    """Download these ModelDownloads into ComfyUI's own models folder (not a shared extra_model_paths.yaml one), with
    a progress bar on the node and progress lines in the console; what happened to each."""
    said = []
    for model in models:
        destination = Path(folder_paths.models_dir, model.folder, model.relative)
        bar = comfy.utils.ProgressBar(model.size)
        logged = [0]

        def progress(done: int, total: int, model=model, bar=bar, logged=logged) -> None:
            tenth = done * 10 // total
            if tenth > logged[0]:
                logged[0] = tenth
                log.info(
                    "InstantID download: %s %d%% (%s of %s bytes)", model.name, tenth * 10, f"{done:,}", f"{total:,}"
                )
            bar.update_absolute(done, total)

        said.append(download.download(model, destination, progress))
    return said

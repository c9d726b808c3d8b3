"""Host glue: the one place outside the node classes that talks to ComfyUI (folders, devices, model manager, patches)."""
import logging
import os

import folder_paths

log = logging.getLogger(__name__)

ADAPTER_FOLDER = "instantid"
FACE_PACK_FOLDER = "insightface"


def _register_folder(name: str, extensions: set[str]) -> None:
    """Add `models/<name>` to ComfyUI's folder table, keeping paths that extra_model_paths.yaml already added."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, known_extensions = folder_paths.folder_names_and_paths[name]
    folder_paths.folder_names_and_paths[name] = (paths, set(extensions) | set(known_extensions))


def register_model_folders() -> None:
    """Register `models/instantid` (adapter files) and `models/insightface` (face model packs)."""
    _register_folder(ADAPTER_FOLDER, set(folder_paths.supported_pt_extensions))
    _register_folder(FACE_PACK_FOLDER, set())

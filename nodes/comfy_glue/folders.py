"""ComfyUI's model folders and file lists, as the pack's loaders and pickers see them."""

import os

import folder_paths

from ...instantid_core.errors import InstantIDError
from ...instantid_core.model_facts import ADAPTER

ADAPTER_FOLDER = ADAPTER.folder
FACE_PACK_FOLDER = "insightface"
SAVED_FACES = "faces"
"""The sub-folder of models/instantid that holds saved faces (not adapters)."""


def _register_folder(name: str, extensions: set[str]) -> None:
    """Add `models/<name>` to ComfyUI's folder table, keeping paths that extra_model_paths.yaml already added."""
    folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
    paths, known_extensions = folder_paths.folder_names_and_paths[name]
    folder_paths.folder_names_and_paths[name] = (paths, set(extensions) | set(known_extensions))


def register_model_folders() -> None:
    """Register `models/instantid` (adapter files) and `models/insightface` (face model packs)."""
    _register_folder(ADAPTER_FOLDER, set(folder_paths.supported_pt_extensions))
    _register_folder(FACE_PACK_FOLDER, set())


def adapter_files() -> list[str]:
    """Adapter files ComfyUI lists in models/instantid (and extra_model_paths.yaml folders), saved faces left out."""
    return [name for name in folder_paths.get_filename_list(ADAPTER_FOLDER) if not _is_saved_face(name)]


def _is_saved_face(name: str) -> bool:
    """Whether a file name ComfyUI lists in models/instantid lies in its faces/ sub-folder."""
    return name.replace("\\", "/").startswith(f"{SAVED_FACES}/")


def saved_face_files() -> list[str]:
    """Saved faces in models/instantid/faces (of every registered instantid folder), without the folder prefix."""
    return [
        name.replace("\\", "/")[len(SAVED_FACES) + 1 :]
        for name in folder_paths.get_filename_list(ADAPTER_FOLDER)
        if _is_saved_face(name)
    ]


def saved_face_path(name: str) -> str:
    """Full path of a saved face, or an error naming the folders searched."""
    path = folder_paths.get_full_path(ADAPTER_FOLDER, f"{SAVED_FACES}/{name}")
    if path is None:
        folders = [os.path.join(p, SAVED_FACES) for p in folder_paths.get_folder_paths(ADAPTER_FOLDER)]
        raise InstantIDError(
            f"Saved face '{name}' not found in {folders}: save it with 'InstantID Save Face'.", "model_not_found"
        )
    return path


def new_saved_face_path(name: str) -> str:
    """Where 'InstantID Save Face' writes a face called `name`: ComfyUI's own models/instantid/faces/<name>.safetensors
    (not a folder of extra_model_paths.yaml, which may be shared or read-only)."""
    stem = name.strip()
    if not stem or any(c in stem for c in '/\\:*?"<>|') or stem.startswith("."):
        raise InstantIDError(
            f"'{name}' cannot be a file name: use letters, digits, spaces, '-' or '_' (no folders or dots first).",
            "bad_name",
        )
    return os.path.join(folder_paths.models_dir, ADAPTER_FOLDER, SAVED_FACES, f"{stem}.safetensors")


def adapter_path(name: str) -> str:
    """Full path of an adapter file, or an error naming the folders searched."""
    path = folder_paths.get_full_path(ADAPTER_FOLDER, name)
    if path is None:
        raise InstantIDError(
            f"InstantID adapter '{name}' not found in {folder_paths.get_folder_paths(ADAPTER_FOLDER)}: "
            f"put ip-adapter.bin into models/instantid/.",
            "model_not_found",
        )
    return path


def face_pack_names() -> list[str]:
    """Face model packs (sub-folders of models/insightface/models/ in every registered insightface folder)."""
    names = set()
    for root in folder_paths.get_folder_paths(FACE_PACK_FOLDER):
        packs = os.path.join(root, "models")
        if os.path.isdir(packs):
            names.update(d for d in os.listdir(packs) if os.path.isdir(os.path.join(packs, d)))
    return sorted(names, key=lambda name: (name != "antelopev2", name)) or ["antelopev2"]


def face_pack_path(name: str) -> str:
    """The folder of a face pack: the first registered insightface folder that has models/<name>, else the first
    candidate (so the pack check names the exact folder it looked in)."""
    candidates = [os.path.join(root, "models", name) for root in folder_paths.get_folder_paths(FACE_PACK_FOLDER)]
    if not candidates:
        raise InstantIDError(
            "No insightface model folder is registered: the InstantID pack did not start properly.", "model_not_found"
        )
    return next((c for c in candidates if os.path.isdir(c)), candidates[0])

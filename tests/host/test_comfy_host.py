"""The in-process host has this pack loaded and its model folders registered (the host's version and internals:
test_comfy_internals.py)."""
import pytest

pytestmark = pytest.mark.host


def test_pack_registers_its_model_folders_without_dropping_existing_paths(comfy_host):
    import folder_paths

    for name in ("instantid", "insightface"):
        paths, _ = folder_paths.folder_names_and_paths[name]
        assert any(p.endswith(f"models/{name}") for p in paths), paths
    _, adapter_exts = folder_paths.folder_names_and_paths["instantid"]
    assert {".bin", ".safetensors"} <= adapter_exts

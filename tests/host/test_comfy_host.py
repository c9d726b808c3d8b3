"""The in-process host is the real ComfyUI 0.3.75 with this pack loaded and its model folders registered."""
import pytest

pytestmark = pytest.mark.host


def test_host_is_real_comfyui_0_3_75(comfy_host):
    import comfy.model_management as mm

    assert comfy_host.version == "0.3.75"
    assert (comfy_host.root / "comfy" / "model_patcher.py").is_file()
    assert mm.get_torch_device().type == "cpu"


def test_pack_registers_its_model_folders_without_dropping_existing_paths(comfy_host):
    import folder_paths

    for name in ("instantid", "insightface"):
        paths, _ = folder_paths.folder_names_and_paths[name]
        assert any(p.endswith(f"models/{name}") for p in paths), paths
    _, adapter_exts = folder_paths.folder_names_and_paths["instantid"]
    assert {".bin", ".safetensors"} <= adapter_exts

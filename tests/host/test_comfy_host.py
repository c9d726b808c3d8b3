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


def test_own_node_classes_are_named_as_their_node_ids_and_compat_classes_carry_one_marker(comfy_host):
    compat_ids = {
        "InstantIDModelLoader",
        "InstantIDFaceAnalysis",
        "FaceKeypointsPreprocessor",
        "ApplyInstantID",
        "ApplyInstantIDAdvanced",
        "InstantIDAttentionPatch",
        "ApplyInstantIDControlNet",
    }

    names = {node_id: cls.__name__ for node_id, cls in comfy_host.pack_nodes.items()}

    assert set(names) >= compat_ids and len(names) == 25  # 18 own nodes, 7 aliases
    assert {node_id: name for node_id, name in names.items() if node_id not in compat_ids} == {
        node_id: node_id for node_id in names if node_id not in compat_ids
    }
    assert {node_id: names[node_id] for node_id in compat_ids} == {
        node_id: node_id + "Compat" for node_id in compat_ids
    }

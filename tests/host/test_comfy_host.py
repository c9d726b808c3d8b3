"""The in-process host has this pack loaded and its model folders registered (the host's version and internals:
test_comfy_internals.py)."""

import asyncio
import importlib
import pkgutil

import pytest

pytestmark = pytest.mark.host


def test_pack_registers_its_model_folders_without_dropping_existing_paths(comfy_host):
    import folder_paths

    for name in ("instantid", "insightface"):
        paths, _ = folder_paths.folder_names_and_paths[name]
        assert any(p.endswith(f"models/{name}") for p in paths), paths
    _, adapter_exts = folder_paths.folder_names_and_paths["instantid"]
    assert {".bin", ".safetensors"} <= adapter_exts


COMPAT_IDS = {
    "InstantIDModelLoader",
    "InstantIDFaceAnalysis",
    "FaceKeypointsPreprocessor",
    "ApplyInstantID",
    "ApplyInstantIDAdvanced",
    "InstantIDAttentionPatch",
    "ApplyInstantIDControlNet",
}
"""The node ids of cubiq's ComfyUI_InstantID that the pack's drop-in aliases take over."""


def defined_node_classes(package) -> list[type]:
    """Every node class the pack's nodes/ modules define: a ComfyNode subclass with a schema of its own."""
    from comfy_api.latest import io

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found += [
            cls
            for cls in vars(module).values()
            if isinstance(cls, type)
            and issubclass(cls, io.ComfyNode)
            and cls.__module__ == module.__name__
            and "define_schema" in vars(cls)
        ]
    return found


def test_every_node_class_the_pack_defines_is_registered_under_its_id_and_nothing_else_of_the_pack_is(comfy_host):
    package = comfy_host.pack_module("nodes")
    listed = asyncio.run(package.InstantIDExtension().get_node_list())
    defined = defined_node_classes(package)
    ids = [cls.define_schema().node_id for cls in defined]
    root = package.__name__.removesuffix(".nodes")
    registered = {
        node_id: cls
        for node_id, cls in comfy_host.nodes.NODE_CLASS_MAPPINGS.items()
        if cls.__module__ == root or cls.__module__.startswith(f"{root}.")
    }

    assert len(listed) == len(set(listed)), f"listed twice: {[c.__name__ for c in listed if listed.count(c) > 1]}"
    assert set(listed) == set(defined), f"listed or defined only: {sorted(c.__name__ for c in {*listed} ^ {*defined})}"
    assert len(ids) == len(set(ids)), f"node ids used twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    expected = dict(zip(ids, defined, strict=True))
    assert registered == expected, (
        f"stray: {sorted({*registered} - {*expected})}, missing: {sorted({*expected} - {*registered})}"
    )
    assert COMPAT_IDS <= set(registered)


def test_own_node_classes_are_named_as_their_node_ids_and_compat_classes_carry_one_marker(comfy_host):
    names = {node_id: cls.__name__ for node_id, cls in comfy_host.pack_nodes.items()}

    assert set(names) >= COMPAT_IDS
    assert {node_id: name for node_id, name in names.items() if node_id not in COMPAT_IDS} == {
        node_id: node_id for node_id in names if node_id not in COMPAT_IDS
    }
    assert {node_id: names[node_id] for node_id in COMPAT_IDS} == {
        node_id: node_id + "Compat" for node_id in COMPAT_IDS
    }

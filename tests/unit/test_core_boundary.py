"""The core (instantid_core) is host-free: it imports nothing of ComfyUI and reads none of ComfyUI's per-call data
(those live in nodes/comfy_glue, the one package that touches ComfyUI besides the node classes)."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parents[2] / "instantid_core"
COMFY_MODULES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "folder_paths", "nodes", "server"}
COMFY_KEYS = {
    "extra_options",
    "transformer_options",
    "cond_or_uncond",
    "activations_shape",
    "original_shape",
    "n_heads",
    "block_index",
    "attn_precision",
    "patches_replace",
    "model_options",
}
"""Names and dict keys of ComfyUI's attention patch protocol and model options."""


def core_files() -> list[Path]:
    """Every Python file of the core."""
    return sorted(CORE.glob("*.py"))


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_the_core_imports_nothing_of_comfyui(path):
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}

    assert not {name for name in imported if name.split(".")[0] in COMFY_MODULES}


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_the_core_reads_none_of_comfyuis_per_call_data(path):
    tree = ast.parse(path.read_text())
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}

    assert not (strings | names) & COMFY_KEYS


def test_the_check_sees_what_it_looks_for():
    """The control: the glue that speaks the protocol is caught by both checks."""
    glue = (CORE.parent / "nodes" / "comfy_glue" / "attn2_protocol.py").read_text()
    tree = ast.parse(glue)

    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert {"cond_or_uncond", "activations_shape"} <= strings and "import comfy" in glue

"""The facts the shell provisioning and the Python harness both use are the same in both (scripts/provision.sh,
scripts/harness/paths.py)."""

import importlib
import re
from pathlib import Path

import pytest

from scripts.harness import paths

pytestmark = pytest.mark.unit

PROVISION = (paths.REPO / "scripts" / "provision.sh").read_text()


def shell_value(name: str) -> str:
    """The value provision.sh assigns to a variable (its first plain assignment)."""
    match = re.search(rf'^{name}="([^"]*)"', PROVISION, re.MULTILINE)
    assert match, f"provision.sh assigns no {name}"
    return match.group(1)


def test_the_pack_link_name_is_the_same_in_the_shell_and_the_harness():
    assert shell_value("PACK_NAME") == paths.PACK_LINK_NAME


def test_the_venvs_record_of_its_comfyui_is_the_same_file():
    assert shell_value("COMFY_RECORD") == paths.COMFY_RECORD


def test_the_cache_defaults_to_the_same_folder_and_follows_instantid_cache(monkeypatch, tmp_path):
    assert shell_value("CACHE") == "${INSTANTID_CACHE:-$HOME/.cache/instantid-comfy}"
    monkeypatch.delenv("INSTANTID_CACHE", raising=False)
    assert importlib.reload(paths).CACHE == Path.home() / ".cache" / "instantid-comfy"
    monkeypatch.setenv("INSTANTID_CACHE", str(tmp_path))
    assert importlib.reload(paths).CACHE == tmp_path
    monkeypatch.undo()
    importlib.reload(paths)

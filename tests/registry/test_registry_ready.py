"""Ready for the Comfy registry: the registry's own command-line tool (comfy-cli, `comfy node validate`, offline)
accepts the pack with no warning and refuses a broken pyproject.toml, and the repo carries the registry's publish
workflow."""

import os
import shutil
import subprocess

import pytest
import yaml

from scripts.harness.paths import REPO

pytestmark = pytest.mark.registry

COMFY = REPO / ".venv-registry" / "bin" / "comfy"


def validate(folder, home) -> subprocess.CompletedProcess:
    """`comfy node validate` in a folder (comfy-cli's settings kept in `home`), as the registry runs it."""
    assert COMFY.exists(), f"{COMFY} is missing: run `make registry`"
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    command = [str(COMFY), "--skip-prompt", "--no-enable-telemetry", "node", "validate"]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_the_pack_passes_the_registrys_node_validation_without_a_warning(tmp_path):
    result = validate(REPO, tmp_path)

    said = result.stdout + result.stderr  # comfy-cli prints its verdict on stderr
    assert result.returncode == 0, said
    assert "All validation checks passed successfully" in said
    assert "Warning" not in said and "Security warnings" not in said and "not installed" not in said, said


def test_the_validation_refuses_a_pyproject_without_a_version_and_warns_of_a_bad_licence_and_of_exec(tmp_path):
    folder = tmp_path / "pack"
    folder.mkdir()
    text = (REPO / "pyproject.toml").read_text()
    (folder / "pyproject.toml").write_text(text.replace('version = "', 'old_version = "', 1))

    assert validate(folder, tmp_path).returncode == 1
    (folder / "pyproject.toml").write_text(text.replace('license = { file = "LICENSE" }', "license = 3"))
    shutil.copy(REPO / "LICENSE", folder)
    warned = validate(folder, tmp_path)
    said = warned.stdout + warned.stderr
    assert warned.returncode == 0 and "Warning: License should be in one of these two formats" in said
    (folder / "nodes.py").write_text('exec("print(1)")\n')  # the registry's security check: ruff S102
    flagged = validate(folder, tmp_path)
    assert "S102" in flagged.stdout + flagged.stderr


def test_the_publish_workflow_is_the_registrys_action_with_the_publishing_key():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "publish.yml").read_text())

    (job,) = workflow["jobs"].values()
    (publish,) = [step for step in job["steps"] if step.get("uses", "").startswith("Comfy-Org/publish-node-action@")]
    assert publish["with"]["personal_access_token"] == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["paths"] == ["pyproject.toml"] and "workflow_dispatch" in triggers

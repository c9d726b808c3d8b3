"""ComfyUI-Distributed (robertvoy/ComfyUI-Distributed 1.4.4, Apache-2.0) for the tests that run this pack under it:
the custom node pack that spreads one workflow over several ComfyUI servers. It is not on the package registry; a
`git archive` snapshot of it lies in ../shared/peers/ beside the clone, checked here by its sha256.

How it works, as its documentation and code say: a master ComfyUI with the pack queues a workflow through
`POST /distributed/queue` ({"prompt", "client_id", "enabled_worker_ids"}); it sends the prompt to each enabled worker
(an ordinary ComfyUI server with the pack) with `POST /prompt`, runs it itself too, and its `DistributedCollector` node
gathers the workers' pictures (each worker's collector posts them to the master's `/distributed/job_complete`),
master's first. Workers are listed in the pack's own `gpu_config.json`; a "remote" worker is a host and a port.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from scripts.harness.paths import REPO

TARBALL = REPO.parent / "shared" / "peers" / "comfyui-distributed-1.4.4-a91f9fb0.tar.gz"
SHA256 = "df124cd73ddb2b46c931dde401a0fd327461e385423cce7604e6d901f2d50475"
FOLDER = "ComfyUI-Distributed"


def missing_reason() -> str | None:
    """Why the ComfyUI-Distributed tests cannot run here, or None."""
    if not TARBALL.is_file():
        return f"ComfyUI-Distributed's snapshot {TARBALL} is missing: the test needs ../shared/peers/ beside the clone"
    return None


def extract_pack(destination: Path) -> Path:
    """Check the snapshot's sha256 and extract it into `destination`; the pack's folder."""
    digest = hashlib.sha256(TARBALL.read_bytes()).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{TARBALL} has sha256 {digest}, not {SHA256}: it is not the snapshot the tests know")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(TARBALL) as archive:
        archive.extractall(destination, filter="data")
    return destination / FOLDER


def configure_workers(pack: Path, workers: dict[str, int]) -> None:
    """Write the pack's gpu_config.json: the master on 127.0.0.1 and one enabled "remote" worker per (id: port) on
    127.0.0.1, as its worker set-up guide configures a remote worker (by host and port)."""
    config = {
        "master": {"host": "127.0.0.1"},
        "workers": [
            {"id": worker_id, "name": f"worker {worker_id}", "host": "127.0.0.1", "port": port, "enabled": True,
             "type": "remote"}
            for worker_id, port in workers.items()
        ],
        "settings": {"auto_launch_workers": False, "stop_workers_on_master_exit": False},
    }  # fmt: skip
    (pack / "gpu_config.json").write_text(json.dumps(config, indent=1))

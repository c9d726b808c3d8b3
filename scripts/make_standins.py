"""Write the stand-in models and input pictures, once, into a cache folder laid out like ComfyUI's `models/`
(docs/design.md, "Stand-in models"); the layout is defined in scripts/harness/paths.py.

    $INSTANTID_CACHE/standins/models/checkpoints/sdxl_standin.safetensors        SDXL checkpoint (~6.9 GB, fp16)
    $INSTANTID_CACHE/standins/models/checkpoints/sd_xl_base_1.0.safetensors and sdxl/AlbedoBaseXL.safetensors:
                                             links to it, under the names the example and compat workflows load
    $INSTANTID_CACHE/standins/models/controlnet/instantid/diffusion_pytorch_model.safetensors   IdentityNet (~2.5 GB)
    $INSTANTID_CACHE/standins/models/controlnet/OpenPoseXL2.safetensors   a link to it: the body-pose workflow's
                                             OpenPose SDXL ControlNet (a full SDXL ControlNet, IdentityNet's format)
    $INSTANTID_CACHE/standins/models/controlnet/diffusers_xl_canny_mid.safetensors   "mid" SDXL canny ControlNet,
                                             its own weights (~0.55 GB, fp16): the canny workflow's second ControlNet
    $INSTANTID_CACHE/standins/models/instantid/ip-adapter.bin                    InstantID adapter (~1.7 GB, fp32)
    $INSTANTID_CACHE/standins/models/insightface/models/antelopev2/*.onnx         face pack (small ONNX graphs)
    $INSTANTID_CACHE/standins/models/instantid/faces/person_1..4.safetensors   four saved faces (random
                                             embeddings; written on every run, a few KB)
    $INSTANTID_CACHE/standins/input/*.png, *.jpg                                 stand-in photos with stand-in faces,
                                             and the body-pose workflow's skeleton picture (written on every run)

Every file has the real format and random weights: it is a stand-in, never a real model. A `COMPLETE` marker holding the
generator version is written last; a run with a complete, current cache does nothing. `--force` rebuilds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import time
from pathlib import Path

from scripts.harness.paths import (
    ADAPTER,
    CHECKPOINT,
    CHECKPOINT_ALIASES,
    CONTROLNET_ALIASES,
    FACE_PACK,
    IDENTITYNET,
    MID_CONTROLNET,
    SAVED_FACES,
    STANDINS,
)
from scripts.standins.adapter import write_ip_adapter
from scripts.standins.body_pose import write_skeleton_picture
from scripts.standins.face_pack import write_face_pack
from scripts.standins.identitynet import write_identitynet
from scripts.standins.images import write_input_images
from scripts.standins.mid_controlnet import write_mid_controlnet
from scripts.standins.saved_faces import write_saved_faces
from scripts.standins.sdxl import write_sdxl_checkpoint

logger = logging.getLogger("make_standins")

GENERATOR_VERSION = "2"
"""Bump when a generator changes what it writes, so existing caches are rebuilt."""


def _write(target: Path, writer) -> None:
    """Run writer(partial_path) and move the result into place, so an interrupted run leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    started = time.perf_counter()
    writer(partial)
    os.replace(partial, target)
    logger.info("stand-in %s: %.2f GB in %.1f s", target, target.stat().st_size / 1e9, time.perf_counter() - started)


def _write_face_pack(target: Path) -> None:
    """Write the face pack into a sibling folder, then swap it in whole."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    write_face_pack(partial)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)


def link_aliases(models: Path) -> None:
    """Link the file names the example and compat workflows load to the stand-ins (cheap: done on every run)."""
    for aliases, target in ((CHECKPOINT_ALIASES, CHECKPOINT), (CONTROLNET_ALIASES, IDENTITYNET)):
        for alias in aliases:
            link = models / alias
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(os.path.relpath(models / target, link.parent))


def make_standins(root: Path, force: bool = False) -> dict:
    """Write every stand-in under root (models/ and input/) unless a current COMPLETE marker says they are there."""
    marker = root / "COMPLETE"
    if not force and marker.is_file() and json.loads(marker.read_text()).get("version") == GENERATOR_VERSION:
        logger.info("stand-in models are already complete in %s (delete it or pass --force to rebuild)", root)
        link_aliases(root / "models")
        write_saved_faces(root / "models" / SAVED_FACES)
        write_skeleton_picture(root / "input")
        return json.loads(marker.read_text())
    marker.unlink(missing_ok=True)
    models = root / "models"
    started = time.perf_counter()
    _write(models / CHECKPOINT, write_sdxl_checkpoint)
    _write(models / IDENTITYNET, write_identitynet)
    _write(models / MID_CONTROLNET, write_mid_controlnet)
    _write(models / ADAPTER, write_ip_adapter)
    _write_face_pack(models / FACE_PACK)
    write_input_images(root / "input")
    write_skeleton_picture(root / "input")
    link_aliases(models)
    write_saved_faces(models / SAVED_FACES)
    summary = {
        "version": GENERATOR_VERSION,
        "note": "stand-in models with random weights, not real models",
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "disk_gb": round(sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink()) / 1e9, 2),
    }
    marker.write_text(json.dumps(summary, indent=1))
    logger.info("stand-ins complete in %s: %s", root, summary)
    return summary


def main() -> None:
    """Command line: python scripts/make_standins.py [--force] [--root DIR]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=STANDINS, help="where to write (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is complete")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[standins] %(message)s")
    make_standins(args.root, args.force)


if __name__ == "__main__":
    main()

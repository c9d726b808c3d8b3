"""`make demo`: run workflows/instantid_basic.json end to end through a real ComfyUI server and print the image's path.

The server is the provisioned ComfyUI (scripts/provision.sh) with this pack. Models come from that ComfyUI's own
`models/` folder when every file the workflow needs is there (the real models), otherwise from the stand-ins
(scripts/make_standins.py: random weights, so the picture is noise-like; it shows the pipeline runs, not quality).
With the stand-ins the resolution and step count are lowered (it says so on the console); pass --size/--steps to
choose them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from scripts.harness.comfy_server import start_server
from scripts.harness.paths import CACHE, REPO, STANDINS, comfy_dir, standin_models
from scripts.harness.workflow_api import ui_to_api

logger = logging.getLogger("demo")

WORKFLOW = REPO / "workflows" / "instantid_basic.json"
STANDIN_SIZE, STANDIN_STEPS = 256, 4
MODEL_INPUTS = {
    "ckpt_name": "checkpoints",
    "control_net_name": "controlnet",
    "adapter_file": "instantid",
    "instantid_file": "instantid",
}
"""Prompt inputs that name model files, and the models/ subfolder each lives in."""


def model_files(prompt: dict) -> list[Path]:
    """The model files a prompt names, relative to a models/ folder."""
    return [
        Path(MODEL_INPUTS[name]) / value
        for node in prompt.values()
        for name, value in node["inputs"].items()
        if name in MODEL_INPUTS and isinstance(value, str)
    ]


def image_files(prompt: dict) -> list[str]:
    """The input pictures a prompt loads."""
    return [node["inputs"]["image"] for node in prompt.values() if node["class_type"] == "LoadImage"]


def lower_cost(prompt: dict, size: int | None, steps: int | None) -> None:
    """Set every empty latent to size×size and every KSampler to `steps` steps (where given), in place."""
    for node in prompt.values():
        if size and node["class_type"] == "EmptyLatentImage":
            node["inputs"] |= {"width": size, "height": size}
        if steps and node["class_type"] == "KSampler":
            node["inputs"]["steps"] = steps


def main() -> None:
    """Start the server, queue the workflow, wait, copy the image out and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, default=WORKFLOW, help="UI-format workflow (default: %(default)s)")
    parser.add_argument("--size", type=int, help="latent width and height in pixels (stand-ins default: 256)")
    parser.add_argument("--steps", type=int, help="sampling steps (stand-ins default: 4)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")

    real_models = comfy_dir() / "models"
    base_dir = CACHE / "demo"
    shutil.rmtree(base_dir, ignore_errors=True)
    base_dir.mkdir(parents=True)
    workflow = json.loads(args.workflow.read_text())

    # The object_info of the pack's nodes decides how the UI workflow maps onto a prompt; a first server answers it.
    probe = start_server(base_dir / "probe", standin_models(), [])
    try:
        prompt = ui_to_api(workflow, probe.get_json("/object_info"))
    finally:
        probe.stop()

    use_real = (
        all((real_models / f).exists() for f in model_files(prompt))
        and (real_models / "insightface" / "models" / "antelopev2").is_dir()
    )
    if use_real:
        models, inputs_dir = real_models, comfy_dir() / "input"
        logger.info("using the real models in %s", models)
    else:
        models, inputs_dir = standin_models(), STANDINS / "input"
        missing = [str(f) for f in model_files(prompt) if not (real_models / f).exists()]
        logger.info(
            "real models not found in %s (missing: %s): using the STAND-IN models in %s (random weights, "
            "the picture shows that the pipeline runs, not what InstantID looks like)",
            real_models,
            ", ".join(missing) or "antelopev2",
            models,
        )
    size = args.size or (None if use_real else STANDIN_SIZE)
    steps = args.steps or (None if use_real else STANDIN_STEPS)
    if size or steps:
        lower_cost(prompt, size, steps)
        logger.info(
            "running at %s px, %s steps (lowered for the %s)",
            size,
            steps,
            "command line" if use_real else "stand-ins on this machine",
        )
    pictures = [inputs_dir / name for name in image_files(prompt)]
    absent = [str(p) for p in pictures if not p.is_file()]
    if absent:
        sys.exit(f"the workflow loads pictures that are not there: {', '.join(absent)}")

    server = start_server(base_dir / "server", models, pictures)
    try:
        started = time.perf_counter()
        entry = server.run(prompt, timeout=3600)
        saved = [img for out in entry["outputs"].values() for img in out.get("images", []) if img["type"] == "output"]
        if not saved:
            sys.exit("the workflow finished without saving an image")
        path = base_dir / "server" / "output" / saved[0]["subfolder"] / saved[0]["filename"]
        logger.info("finished in %.1f s", time.perf_counter() - started)
    finally:
        server.stop()
    print(f"demo image ({'real models' if use_real else 'stand-in models'}): {os.path.normpath(path)}")


if __name__ == "__main__":
    main()

"""One benchmark phase, run by benchmarks/run.py in a fresh process so that each phase's memory peak is its own.

    .venv/bin/python benchmarks/measure.py PHASE SETTINGS_JSON OUT_JSON

Phases: steps (interleaved step times, and synchronisations on CUDA), memory (one configuration), scaling, faces
(face analysis latency and load times), identities (several identities in one batch).
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from statistics import fmean

import harness as h

log = logging.getLogger("bench")


def steps_phase(s: dict) -> dict:
    """Step times of A, B, D, C interleaved round by round after a warm-up sample each, C's samples also timing the
    patch's own work call by call; on CUDA, the synchronisations per step."""
    host = h.start_host(s["device"], s["dtype"])
    stack = h.load_stack(host, h.NEEDS["instantid"], s["keep_dtype"])
    stack.drop_adapter()
    size, batch, steps = s["size"], s["batch"], s["steps"]
    setups = {config: h.configure(stack, config, size, size) for config in h.STEP_CONFIGS}
    for setup in setups.values():
        h.sample(setup, size, size, batch, 2)
    rounds = {config: [] for config in setups}
    for number in range(s["runs"]):
        for config, setup in setups.items():
            if config == "instantid":
                with h.PatchTimer(stack) as timer:
                    rounds[config].append(h.step_seconds(setup, size, size, batch, steps, timer))
            else:
                rounds[config].append(h.step_seconds(setup, size, size, batch, steps))
        log.info(
            "round %d/%d, s/step: %s",
            number + 1,
            s["runs"],
            ", ".join(f"{c} {fmean(r[-1]['wall']):.2f}" for c, r in rounds.items()),
        )
    result = {
        "step_seconds": rounds,
        "patch_seconds": [run["patch"] for run in rounds["instantid"]],
        "layer_calls": [run["layer_calls"] for run in rounds["instantid"]],
        "patch_bytes": h.patch_bytes(setups["instantid"][0]),
        "compute_dtype": str(stack.module("nodes.comfy_glue.unet_patching").model_compute_dtype(stack.model)),
        "weight_dtype": str(stack.model.model.get_dtype()),
    }
    if s["device"] == "cuda":
        result["syncs"] = {
            config: h.syncs_per_step(setup, size, size, batch, steps) for config, setup in setups.items()
        }
    return result


def memory_phase(s: dict) -> dict:
    """Memory of one configuration alone in this process: its peak while loading, what it holds once loaded (after a
    first 1-step sample, which puts the models on the device), and its peak during one sample."""
    host = h.start_host(s["device"], s["dtype"])
    probe = h.MemoryProbe(s["device"])
    stack = h.load_stack(host, h.NEEDS[s["config"]], s["keep_dtype"])
    setup = h.configure(stack, s["config"], s["size"], s["size"])
    load_peak = probe.peak()
    h.sample(setup, s["size"], s["size"], s["batch"], 1)
    after_load = probe.reset()
    h.sample(setup, s["size"], s["size"], s["batch"], s["steps"])
    return {
        "after_load": after_load,
        "load_peak": load_peak,
        "sampling_peak": probe.peak(),
        "load_seconds": stack.load_seconds,
    }


def scaling_phase(s: dict) -> dict:
    """Step time and memory of A, B, C at every size (batch 1) and every batch (at the main size), and the time
    inside the patch in C's samples."""
    host = h.start_host(s["device"], s["dtype"])
    probe = h.MemoryProbe(s["device"])
    stack = h.load_stack(host, h.NEEDS["instantid"], s["keep_dtype"])
    stack.drop_adapter()
    points = [(size, 1) for size in s["sizes"]] + [(s["size"], batch) for batch in s["batches"] if batch != 1]
    for config in h.CONFIGS:  # first calls (and on CUDA, weights moving to the GPU) out of the first point
        h.sample(h.configure(stack, config, points[0][0], points[0][0]), points[0][0], points[0][0], 1, 1)
    rows = []
    for size, batch in points:
        for config in h.CONFIGS:
            setup = h.configure(stack, config, size, size)
            before = probe.reset()
            with h.PatchTimer(stack) as timer:
                seconds = h.step_seconds(setup, size, size, batch, s["scaling_steps"], timer)
            rows.append(
                {
                    "size": size,
                    "batch": batch,
                    "config": config,
                    "step_seconds": seconds,
                    "before": before,
                    "peak": probe.peak(),
                }
            )
            log.info("%d² batch %d %s: %.2f s/step", size, batch, config, fmean(seconds["wall"]))
    return {"rows": rows}


def faces_phase(s: dict) -> dict:
    """Load times of the face pack, the adapter and IdentityNet; detection + recognition latency per size and
    provider (the CUDA provider where this onnxruntime has it)."""
    import onnxruntime

    host = h.start_host(s["device"], s["dtype"])
    loads = {
        role: [h.timed(lambda role=role: h.load_model(host, role))[1] for _ in range(s["load_runs"])]
        for role in ("face_pack", "adapter", "control_net")
    }
    available = onnxruntime.get_available_providers()
    providers = ["CPU"] + (["CUDA"] if "CUDAExecutionProvider" in available else [])
    rgb = h.photo_rgb()
    bgr = rgb[..., ::-1].copy()
    latency = {}
    for provider in providers:
        pack = h.load_model(host, "face_pack", provider)
        for size in pack.detection_sizes:
            faces = pack.detect(bgr, size)
            latency[f"{provider} {size}"] = {
                "faces": len(faces),
                "seconds": [
                    h.timed(lambda pack=pack, size=size: pack.detect(bgr, size))[1] for _ in range(s["face_runs"])
                ],
            }
        latency[f"{provider} analyze"] = {
            "faces": len(pack.find_faces(rgb)),
            "seconds": [h.timed(lambda pack=pack: pack.analyze([rgb]))[1] for _ in range(s["face_runs"])],
        }
        log.info("face analysis on %s: %s", provider, pack.providers[0])
    return {
        "loads": loads,
        "latency": latency,
        "providers_available": available,
        "photo_size": [rgb.shape[1], rgb.shape[0]],
        "face_sizes": list(pack.detection_sizes),
        "real": real_faces_latency(s, providers),
    }


REAL_PHOTOS = ("t1.jpg", "solvay_conference_1927.jpg")
"""Real photos timed with the real face models: 6 faces at 1280×886, 29 faces at 3000×2171."""


def real_faces_latency(s: dict, providers: list[str]) -> dict:
    """Face analysis latency (ms per photo, with the reference resize) of real InsightFace models on real photos."""
    import numpy as np
    from PIL import Image

    from instantid_core.face_analysis import FaceModels
    from scripts.harness.real_faces import real_faces

    real = real_faces(fetch=False)
    rows = {}
    for provider in providers:
        pack = FaceModels.load(real.pack_dir, provider, 640)
        for name in REAL_PHOTOS:
            rgb = np.array(Image.open(real.photos[name]).convert("RGB"))
            found = len(pack.find_faces_in_photo(rgb))
            seconds = [h.timed(lambda pack=pack, rgb=rgb: pack.analyze([rgb]))[1] for _ in range(s["face_runs"])]
            rows[f"{provider} {name}"] = {"faces": found, "size": [rgb.shape[1], rgb.shape[0]], "seconds": seconds}
    return {
        "models": f"{real.detector.name} + {real.recognizer.name} (real InsightFace weights, not antelopev2)",
        "rows": rows,
    }


def identities_phase(s: dict) -> dict:
    """Several identities in one batch ('per picture'): for N identities, the time of an apply (identity tokens, the
    identity K/V of every layer and the patch) and the K/V's size; then the step time of a batch of identity_batch
    pictures with one identity per picture against the same batch with one identity, interleaved round by round."""
    host = h.start_host(s["device"], s["dtype"])
    stack = h.load_stack(host, h.NEEDS["instantid"], s["keep_dtype"])
    unet_patching = stack.module("nodes.comfy_glue.unet_patching")
    applies = []
    for people in s["identities"]:
        embeddings = h.identity_embeddings(stack, people)

        def apply(embeddings=embeddings):
            tokens = stack.adapter.tokens(embeddings, "per picture")
            return unet_patching.apply_identity_attention(stack.model, stack.adapter, tokens, h.STRENGTH, 0.0, 1.0)

        seconds = []
        for _ in range(s["load_runs"]):
            patched, elapsed = h.timed(apply)
            seconds.append(elapsed)
        applies.append({"identities": people, "apply_seconds": seconds, "kv_bytes": h.patch_bytes(patched)})
        log.info("%d identities: apply %.2f s, K/V %.1f MiB", people, fmean(seconds), applies[-1]["kv_bytes"] / 2**20)
    size, batch = s["size"], s["identity_batch"]
    one = stack.adapter.tokens(h.identity_embeddings(stack, 1), "average")
    each = stack.adapter.tokens(h.identity_embeddings(stack, batch), "per picture")
    setups = {
        "one": h.configure_identities(stack, one, size, size),
        "each": h.configure_identities(stack, each, size, size),
    }
    stack.drop_adapter()
    for setup in setups.values():
        h.sample(setup, size, size, batch, 2)
    rounds = {name: [] for name in setups}
    for number in range(s["identity_runs"]):
        for name, setup in setups.items():
            rounds[name].append(h.step_seconds(setup, size, size, batch, s["steps"]))
        log.info("identities round %d: %s", number + 1, {k: round(fmean(v[-1]["wall"]), 2) for k, v in rounds.items()})
    return {"applies": applies, "batch": batch, "rounds": rounds}


PHASES = {
    "steps": steps_phase,
    "memory": memory_phase,
    "scaling": scaling_phase,
    "faces": faces_phase,
    "identities": identities_phase,
}


def main() -> None:
    """Run the phase named on the command line with the given settings; write its figures as JSON."""
    phase, settings, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    log.setLevel(logging.INFO)
    warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")  # its own deprecation notices
    out.write_text(json.dumps(PHASES[phase](settings)))


if __name__ == "__main__":
    main()

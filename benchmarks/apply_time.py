"""Time one InstantID apply on the full-size stand-ins, in-process on the real ComfyUI: face analysis, identity
tokens, the identity K/V of all layers + patching, and IdentityNet attachment.

    .venv/bin/python benchmarks/apply_time.py [--runs 5] [--device cpu]

Stand-in weights are random, but every shape is the real one, so the times are the real ones for this machine.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def timed(fn, runs: int) -> tuple[object, list[float]]:
    """fn's last result and the wall time of each of `runs` calls."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return result, times


def main() -> None:
    """Load the stand-ins, time each stage of an apply, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from helpers.comfy_host import start_in_process
    from helpers.paths import STANDINS, standin_models

    host = start_in_process(Path(tempfile.mkdtemp(prefix="instantid-bench-")))
    import comfy.controlnet
    import comfy.sd

    models = standin_models()
    pack = host.pack_module("nodes.host")
    identity = host.pack_module("instantid_core.identity")
    face_analysis = host.pack_module("instantid_core.face_analysis")
    images = host.pack_module("instantid_core.images")
    keypoints = host.pack_module("instantid_core.keypoints")

    model, clip, _vae, _ = comfy.sd.load_checkpoint_guess_config(str(models / "checkpoints" / "sdxl_standin.safetensors"))
    control_net = comfy.controlnet.load_controlnet(str(models / "controlnet" / "instantid" / "diffusion_pytorch_model.safetensors"))
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a portrait"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    (adapter, t_adapter) = timed(lambda: identity.InstantIDAdapter.load(models / "instantid" / "ip-adapter.bin"), 1)
    (faces_pack, t_pack) = timed(lambda: face_analysis.FacePack.load(
        models / "insightface" / "models" / "antelopev2", "CPU", 640), 1)
    photo = np.array(Image.open(STANDINS / "input" / "instantid_face.png").convert("RGB"))

    faces, t_faces = timed(lambda: faces_pack.analyze([photo]), args.runs)
    tokens, t_tokens = timed(lambda: adapter.tokens(faces.embeddings()), args.runs)
    _, t_patch = timed(lambda: pack.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0), args.runs)

    def attach():
        result = faces.results[0]
        kps = images.to_image_batch([keypoints.keypoint_image(result, result.face.image_size, "as in source")])
        return pack.apply_identitynet(positive, negative, control_net, tokens, kps, 0.8, 0.0, 1.0)

    _, t_net = timed(attach, args.runs)
    rows = [("load adapter (1.7 GB)", t_adapter), ("load face pack", t_pack), ("face analysis (1 photo)", t_faces),
            ("identity tokens (Resampler)", t_tokens), ("identity K/V + patch 70 layers", t_patch),
            ("keypoints + attach IdentityNet", t_net)]
    apply_without = [a + b + c for a, b, c in zip(t_tokens, t_patch, t_net)]
    apply_with = [f + a for f, a in zip(t_faces, apply_without)]
    rows += [("one apply, face analysis excluded", apply_without), ("one apply, face analysis included", apply_with)]
    print(f"stand-in models, ComfyUI {host.version}, device {pack.work_device()}, median of {args.runs} (min-max)")
    for name, times in rows:
        print(f"  {name:36s} {statistics.median(times):8.3f} s  ({min(times):.3f}-{max(times):.3f})")


if __name__ == "__main__":
    main()

"""Time one InstantID apply on the full-size stand-ins, in-process on the real ComfyUI (CPU): face analysis, identity
tokens, the identity K/V of all layers + patching, and IdentityNet attachment.

    .venv/bin/python benchmarks/apply_time.py [--runs 5]

Stand-in weights are random, but every shape is the real one, so the times are the real ones for this machine.
"""

from __future__ import annotations

import argparse
import statistics

import harness as h


def repeat_timed(fn, runs: int) -> tuple[object, list[float]]:
    """fn's last result and the wall time of each of `runs` calls."""
    times, result = [], None
    for _ in range(runs):
        result, seconds = h.timed(fn)
        times.append(seconds)
    return result, times


def main() -> None:
    """Load the stand-ins, time each stage of an apply, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    host = h.start_host("cpu", "fp32")
    import comfy.controlnet
    import comfy.model_management
    import comfy.sd

    paths = h.model_paths()
    unet_patching = host.pack_module("nodes.comfy_glue.unet_patching")
    controlnet = host.pack_module("nodes.comfy_glue.controlnet")
    images = host.pack_module("instantid_core.images")
    keypoints = host.pack_module("instantid_core.keypoints")

    model, clip, _vae, _ = comfy.sd.load_checkpoint_guess_config(str(paths["model"]))
    control_net = comfy.controlnet.load_controlnet(str(paths["control_net"]))
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a portrait"))
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    adapter, t_adapter = repeat_timed(lambda: h.load_model(host, "adapter"), args.runs)
    face_pack, t_pack = repeat_timed(lambda: h.load_model(host, "face_pack"), args.runs)
    photo = h.photo_rgb()

    faces, t_faces = repeat_timed(lambda: face_pack.analyze([photo]), args.runs)
    tokens, t_tokens = repeat_timed(lambda: adapter.tokens(faces.embeddings()), args.runs)
    _, t_patch = repeat_timed(
        lambda: unet_patching.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0), args.runs
    )

    def attach():
        result = faces.results[0]
        layout = keypoints.KeypointLayout.of(result, "as in source")
        picture = images.to_image_batch([layout.draw(layout.source_size)])
        return controlnet.apply_identitynet(
            positive, negative, control_net, tokens, picture, 0.8, 0.0, 1.0, layouts=[layout]
        )

    _, t_net = repeat_timed(attach, args.runs)
    layers = len(unet_patching.attn2_modules(model))
    adapter_gb = paths["adapter"].stat().st_size / 1e9
    rows = [
        (f"load adapter ({adapter_gb:.2f} GB)", t_adapter),
        ("load face pack", t_pack),
        ("face analysis (1 photo)", t_faces),
        ("identity tokens (Resampler)", t_tokens),
        (f"identity K/V + patch {layers} layers", t_patch),
        ("keypoints + attach IdentityNet", t_net),
    ]
    apply_without = [a + b + c for a, b, c in zip(t_tokens, t_patch, t_net, strict=False)]
    apply_with = [f + a for f, a in zip(t_faces, apply_without, strict=False)]
    rows += [("one apply, face analysis excluded", apply_without), ("one apply, face analysis included", apply_with)]
    device = comfy.model_management.get_torch_device()
    print(f"stand-in models, ComfyUI {host.version}, device {device}, median of {args.runs} (min-max)")
    for name, times in rows:
        print(f"  {name:36s} {statistics.median(times):8.3f} s  ({min(times):.3f}-{max(times):.3f})")


if __name__ == "__main__":
    main()

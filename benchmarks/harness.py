"""What every benchmark phase shares: ComfyUI in-process on the stand-ins, the configurations, timed denoising steps,
the time inside the patch, memory probes and the GPU→CPU synchronisation counter."""

from __future__ import annotations

import ctypes
import gc
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from scripts.harness.comfy_host import start_in_process
from scripts.harness.conditioning import sdxl_conditioning
from scripts.harness.paths import PACK_LINK_NAME, REPO, STANDINS, standin_models

log = logging.getLogger("bench")

CONFIGS = ("sdxl", "controlnet", "instantid")
"""The three configurations of the memory and scaling tables: A, B and C."""
STEP_CONFIGS = ("sdxl", "controlnet", "identitynet", "instantid")
"""The step-time run adds D, our IdentityNet without the attention patch, so that C/D is the patch alone."""
CONFIG_LABELS = {
    "sdxl": "A: plain SDXL",
    "controlnet": "B: SDXL + IdentityNet as a plain ControlNet (text context)",
    "identitynet": "D: SDXL + our Apply IdentityNet (face-token context), no attention patch",
    "instantid": "C: SDXL + full InstantID (our Apply IdentityNet + Patch Attention)",
}
NEEDS = {
    "sdxl": ("model",),
    "controlnet": ("model", "face_pack", "control_net"),
    "instantid": ("model", "face_pack", "control_net", "adapter"),
}
"""The models each configuration loads."""
PHOTO = STANDINS / "input" / "instantid_face.png"
CFG, STRENGTH, SEED, SCHEDULE_STEPS = 5.0, 0.8, 0, 20
DEFAULTS = {
    "cpu": {
        "dtype": "bf16",
        "size": 256,
        "batch": 1,
        "steps": 3,
        "runs": 8,
        "sizes": [256, 384, 512],
        "batches": [1, 2],
        "scaling_steps": 3,
        "load_runs": 3,
        "face_runs": 10,
        "identities": [1, 4, 16],
        "identity_batch": 4,
        "identity_runs": 2,
    },
    "cuda": {
        "dtype": "fp16",
        "size": 1024,
        "batch": 1,
        "steps": 20,
        "runs": 5,
        "sizes": [512, 768, 1024],
        "batches": [1, 2, 4],
        "scaling_steps": 6,
        "load_runs": 3,
        "face_runs": 20,
        "identities": [1, 4, 16],
        "identity_batch": 4,
        "identity_runs": 3,
    },
}
"""Per device; every one can be overridden on the command line."""
PATCH_END = 0.95
"""End percent of C's attention patch: below 1, so that the start/end gate runs in every step (the costlier path, and
the one whose synchronisations matter)."""
PACK_CODE = (REPO / "nodes", REPO / "instantid_core")
"""The pack's runtime code: synchronisations raised from these files are the pack's own."""
_on_cuda = False
"""Whether this process measures on CUDA (start_host's device), so timing and synchronising follow the setting, not
whatever torch can see."""


def model_paths() -> dict[str, Path]:
    """The stand-in files, by role."""
    models = standin_models()
    return {
        "model": models / "checkpoints" / "sdxl_standin.safetensors",
        "control_net": models / "controlnet" / "instantid" / "diffusion_pytorch_model.safetensors",
        "adapter": models / "instantid" / "ip-adapter.bin",
        "face_pack": models / "insightface" / "models" / "antelopev2",
    }


def start_host(device: str, dtype: str):
    """ComfyUI imported in-process with this pack, computing on `device`, storing UNet and ControlNet weights in
    `dtype` (ComfyUI's --{dtype}-unet)."""
    global _on_cuda
    _on_cuda = device == "cuda"
    if device == "cuda":
        # start_in_process puts ComfyUI in CPU mode, which model_management reads once, on its first import:
        # importing it before, with the default arguments, keeps the GPU.
        import comfy.model_management  # noqa: F401

    base = tempfile.TemporaryDirectory(prefix="instantid-bench-")
    host = start_in_process(Path(base.name))
    host.base_dir = base  # removed when the host goes
    from comfy.cli_args import args

    setattr(args, f"{dtype}_unet", True)
    return host


def timed(fn):
    """fn()'s result and the seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def synchronize() -> None:
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    if _on_cuda:
        torch.cuda.synchronize()


@dataclass
class Stack:
    """The loaded models, one analysed face, its identity tokens and the model our Patch Attention makes of them;
    load_seconds per role."""

    host: object
    model: object = None
    control_net: object = None
    adapter: object = None
    face_pack: object = None
    face: object = None
    tokens: object = None
    patched: object = None
    load_seconds: dict[str, float] = field(default_factory=dict)

    def module(self, name: str):
        """A module of this pack as ComfyUI imported it."""
        return self.host.pack_module(name)

    def drop_adapter(self) -> None:
        """Free the adapter (its 1.7 GB of host memory): once the patch is made, sampling never reads it."""
        self.adapter = None
        gc.collect()


def load_model(host, role: str, provider: str = "CPU", keep_dtype: bool = False):
    """Load one stand-in file the way the nodes do: 'model' (the SDXL checkpoint's UNet), 'control_net' (IdentityNet),
    'adapter' or 'face_pack' (on `provider`, detection size 640). keep_dtype: compute in the weights' own dtype where
    ComfyUI would upcast every weight at every call (what it does for bf16 weights on the CPU)."""
    import comfy.controlnet
    import comfy.sd

    path = model_paths()[role]
    if role == "model":
        model = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clip=False)[0]
        if keep_dtype:
            model.model.manual_cast_dtype = None
        return model
    if role == "control_net":
        control_net = comfy.controlnet.load_controlnet(str(path))
        if keep_dtype:
            control_net.manual_cast_dtype = None
        return control_net
    if role == "adapter":
        return host.pack_module("instantid_core.identity").InstantIDAdapter.load(path)
    return host.pack_module("instantid_core.face_analysis").FaceModels.load(path, provider, 640)


def photo_rgb() -> np.ndarray:
    """The stand-in face photo as H×W×3 uint8 RGB."""
    from PIL import Image

    return np.array(Image.open(PHOTO).convert("RGB"))


def load_stack(host, roles, keep_dtype: bool) -> Stack:
    """Load `roles` (timing each), analyse the stand-in photo and make identity tokens where those are loaded."""
    stack = Stack(host=host)
    for role in roles:
        value, stack.load_seconds[role] = timed(lambda role=role: load_model(host, role, keep_dtype=keep_dtype))
        setattr(stack, role, value)
        log.info("loaded %s in %.1f s", role, stack.load_seconds[role])
    if stack.face_pack is not None:
        stack.face = stack.face_pack.analyze([photo_rgb()], "largest", 0, "error")
    if stack.adapter is not None:
        stack.tokens = stack.adapter.tokens(stack.face.embeddings(), "average", 0.0)
        stack.patched = stack.module("nodes.comfy_glue.unet_patching").apply_identity_attention(
            stack.model, stack.adapter, stack.tokens, STRENGTH, 0.0, PATCH_END
        )
    return stack


def keypoint_batch(stack: Stack, width: int, height: int) -> torch.Tensor:
    """IdentityNet's keypoint picture of the analysed face at width×height, as an IMAGE batch of one."""
    keypoints = stack.module("instantid_core.keypoints")
    picture = keypoints.KeypointLayout.of(stack.face.results[0], "centered").draw((width, height))
    return stack.module("instantid_core.images").to_image_batch([picture])


def configure(stack: Stack, config: str, width: int, height: int) -> tuple[object, list, list]:
    """(model, positive, negative) of one configuration; the text conditioning is random, with a prompt's shapes."""
    positive, negative = sdxl_conditioning(1), sdxl_conditioning(2)
    if config == "sdxl":
        return stack.model, positive, negative
    kps = keypoint_batch(stack, width, height)
    if config == "controlnet":
        node = stack.host.nodes.NODE_CLASS_MAPPINGS["ControlNetApplyAdvanced"]()
        positive, negative = node.apply_controlnet(positive, negative, stack.control_net, kps, STRENGTH, 0.0, 1.0)
        return stack.model, positive, negative
    controlnet = stack.module("nodes.comfy_glue.controlnet")
    positive, negative = controlnet.apply_identitynet(
        positive, negative, stack.control_net, stack.tokens, kps, STRENGTH, 0.0, 1.0
    )
    return (stack.model if config == "identitynet" else stack.patched), positive, negative


def identity_embeddings(stack: Stack, people: int) -> np.ndarray:
    """(people, 512) embeddings: the analysed face's, then seeded variations of it (as many stand-in people)."""
    face = stack.face.embeddings()[0]
    noise = np.random.default_rng(SEED).normal(0, float(np.linalg.norm(face)) / 20, (people, face.size))
    noise[0] = 0
    return (face + noise).astype(np.float32)


def configure_identities(stack: Stack, tokens, width: int, height: int) -> tuple[object, list, list]:
    """(model, positive, negative) of full InstantID with these identity tokens (one or one per picture): the
    attention patch made from them and IdentityNet with them as context, the analysed face's keypoints for every
    picture."""
    patched = stack.module("nodes.comfy_glue.unet_patching").apply_identity_attention(
        stack.model, stack.adapter, tokens, STRENGTH, 0.0, PATCH_END
    )
    positive, negative = stack.module("nodes.comfy_glue.controlnet").apply_identitynet(
        sdxl_conditioning(1), sdxl_conditioning(2), stack.control_net, tokens, keypoint_batch(stack, width, height),
        STRENGTH, 0.0, 1.0,
    )  # fmt: skip
    return patched, positive, negative


def patch_bytes(model) -> int:
    """Bytes of the tensors our attention patch hands to ComfyUI's model manager (the identity K/V)."""
    held = {id(patcher): patcher for patcher in model.model_patches_models()}
    return sum(p.numel() * p.element_size() for patcher in held.values() for p in patcher.model.parameters())


def sample(setup: tuple[object, list, list], width: int, height: int, batch: int, steps: int, on_step=None) -> None:
    """Euler with CFG over the first `steps` sigmas of a SCHEDULE_STEPS normal schedule; on_step() after each step."""
    import comfy.sample
    import comfy.samplers

    model, positive, negative = setup
    noise = torch.randn((batch, 4, height // 8, width // 8), generator=torch.Generator().manual_seed(SEED))
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", SCHEDULE_STEPS)
    callback = (lambda *_: on_step()) if on_step else None
    comfy.sample.sample_custom(
        model,
        noise,
        CFG,
        comfy.samplers.sampler_object("euler"),
        sigmas[: steps + 1],
        positive,
        negative,
        torch.zeros_like(noise),
        callback=callback,
        disable_pbar=True,
        seed=SEED,
    )


class PatchTimer:
    """While entered, the time spent in our patch's own work, call by call: each layer's identity term added to the
    layer's output (the layer call's options read, the gate, the laid-out K/V, the attention over the identity
    tokens, the region, the multiply-add, the mark for the guard), and the guard's input hook and its check. Clock
    reads on the CPU, CUDA events on a GPU (so it adds no synchronisation). A call made from inside another timed
    one is counted once, in the outer one; `calls` counts the layer calls (identity terms added)."""

    def __init__(self, stack: Stack):
        protocol = stack.module("nodes.comfy_glue.attn2_protocol")
        patch, guard = protocol.IdentityAttentionPatch, protocol.IdentityAttentionGuard
        self.originals = {
            (patch, "add_identity"): patch.add_identity,
            (guard, "remember_input"): guard.remember_input,
            (guard, "__call__"): guard.__call__,
        }
        self.counted = patch.add_identity
        self.spent = 0.0
        self.calls = 0
        self.pending = []  # CUDA (start, end) event pairs not yet added to spent
        self.depth = 0

    def _timing(self, original):
        """original, timed at every outermost call."""

        def timed_call(*args, **kwargs):
            self.depth += 1
            self.calls += original is self.counted
            start = _mark() if self.depth == 1 else None
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                if isinstance(start, float):
                    self.spent += time.perf_counter() - start
                elif start is not None:
                    self.pending.append((start, _mark()))

        return timed_call

    def __enter__(self) -> PatchTimer:
        """Wrap the patch's methods."""
        for (cls, name), original in self.originals.items():
            setattr(cls, name, self._timing(original))
        return self

    def __exit__(self, *exc) -> None:
        """Put the patch's methods back."""
        for (cls, name), original in self.originals.items():
            setattr(cls, name, original)

    def seconds(self) -> float:
        """Seconds inside the patch so far; on CUDA, once the GPU has caught up (after synchronize())."""
        self.spent += sum(start.elapsed_time(end) for start, end in self.pending) / 1000
        self.pending.clear()
        return self.spent


def _mark():
    """Now: a clock reading on the CPU, a recorded CUDA event on a GPU."""
    if not _on_cuda:
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def step_seconds(
    setup, width: int, height: int, batch: int, steps: int, timer: PatchTimer | None = None
) -> dict[str, list[float]]:
    """Seconds of each denoising step but the first (which also carries the sampler's setup): 'wall', 'cpu' (the
    process's CPU time, all threads, which other work on the machine inflates far less) and, with a timer entered,
    'patch' (inside our patch) and 'layer_calls' (identity terms added in the step)."""
    stamps = []

    def stamp():
        synchronize()
        inside = (timer.seconds(), timer.calls) if timer else (0.0, 0)
        stamps.append((time.perf_counter(), time.process_time(), *inside))

    sample(setup, width, height, batch, steps, stamp)
    kinds = ("wall", "cpu", "patch", "layer_calls") if timer else ("wall", "cpu")
    return {kind: [b[i] - a[i] for a, b in zip(stamps, stamps[1:], strict=False)] for i, kind in enumerate(kinds)}


def syncs_per_step(setup, width: int, height: int, batch: int, steps: int) -> dict[str, list[int]]:
    """GPU→CPU synchronisations in each step but the first, from torch's sync debug mode: all of them, and those
    raised from this pack's files."""
    counts = {"all": [], "pack": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def count():
            syncs = [w for w in caught if "synchroniz" in str(w.message)]
            counts["all"].append(len(syncs))
            counts["pack"].append(sum(_is_pack_code(w.filename) for w in syncs))

        torch.cuda.set_sync_debug_mode("warn")
        try:
            sample(setup, width, height, batch, steps, count)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return {kind: [b - a for a, b in zip(seen, seen[1:], strict=False)] for kind, seen in counts.items()}


def _is_pack_code(filename: str) -> bool:
    """Whether a source file is the pack's runtime code (through ComfyUI's custom_nodes link or this checkout)."""
    path = Path(filename)
    linked = PACK_LINK_NAME in path.parts and path.parts[path.parts.index(PACK_LINK_NAME) + 1 :][:1] in (
        ("nodes",),
        ("instantid_core",),
    )
    return linked or any(path.is_relative_to(code) for code in PACK_CODE)


class MemoryProbe:
    """Resident memory (CPU: the process's RSS from /proc) or allocated VRAM (CUDA), with a resettable peak."""

    def __init__(self, device: str):
        self.device = device

    def current(self) -> int:
        """Bytes now."""
        return torch.cuda.memory_allocated() if self.device == "cuda" else _proc_status_bytes("VmRSS")

    def peak(self) -> int:
        """Highest bytes since the last reset (or the process's start)."""
        return torch.cuda.max_memory_allocated() if self.device == "cuda" else _proc_status_bytes("VmHWM")

    def reset(self) -> int:
        """Start a new peak from the current value, and return it. CPU (glibc Linux): return the freed heap to the
        system first, so that memory freed earlier is not reused unseen; writing 5 to clear_refs resets VmHWM."""
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")
        return self.current()


def _proc_status_bytes(name: str) -> int:
    """One kB field of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {name}")

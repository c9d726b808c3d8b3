"""benchmarks/RESULTS.md from the figures of one run of benchmarks/run.py."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from statistics import fmean

from harness import (
    CFG,
    CONFIG_LABELS,
    CONFIGS,
    DEFAULTS,
    PATCH_END,
    SCHEDULE_STEPS,
    STEP_CONFIGS,
    STRENGTH,
    model_paths,
)

RATIO_TARGET = 1.02
"""C/B: full InstantID's step over the ControlNet run's."""
SHARE_TARGETS = {256: 0.010, 512: 0.007}
"""The patch's own work as a share of the ControlNet step, per size (CPU, bf16): at most 1.0 % at 256², 0.7 % at
512² (the share falls as the image grows)."""
PATCH_MEMORY_TARGET = 100 * 2**20
"""'Tens of MB', read as under 100 MiB."""
PATCH_FIX = (
    "The patch's work per layer call is the attention over the 16 identity tokens (most of it: its K/V are laid "
    "out once per batch layout, the scale is in V, the gate is decided once per model call) and one addition into "
    "the layer's output, and the guard's check; the share falls as the image grows (see 5). Measure on a quiet "
    "machine before reading more into it"
)
"""What target 1 would take when it is missed."""
RATIOS = (
    ("controlnet", "sdxl", "B/A: IdentityNet as a ControlNet, over plain SDXL"),
    ("instantid", "sdxl", "C/A: full InstantID, over plain SDXL"),
    ("instantid", "controlnet", "C/B: full InstantID, over the ControlNet run (target ≤ 1.02)"),
    ("instantid", "identitynet", "C/D: the attention patch alone"),
    ("identitynet", "controlnet", "D/B: face-token context (16 tokens) instead of text (77 tokens)"),
)


def file_gb(role: str) -> str:
    """Size of a stand-in file, in GB."""
    return f"{model_paths()[role].stat().st_size / 1e9:.2f} GB"


def spread(values, scale: float = 1.0, digits: int = 2) -> str:
    """'median (min–max)' of values × scale."""
    values = [v * scale for v in values]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def gib(n: int) -> str:
    """Bytes as GiB."""
    return f"{n / 2**30:.2f} GiB"


def mib(n: int) -> str:
    """Bytes as MiB."""
    return f"{n / 2**20:.1f} MiB"


def fmt_load(load) -> str:
    """A load-average triple."""
    return " / ".join(f"{x:.1f}" for x in load)


def table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def round_means(steps: dict, kind: str = "wall") -> dict[str, list[float]]:
    """Per configuration, the mean step time ('wall' or 'cpu') of each round."""
    return {config: [fmean(run[kind]) for run in runs] for config, runs in steps["step_seconds"].items()}


def per_round_ratios(means: dict, top: str, bottom: str) -> list[float]:
    """top/bottom of the rounds, each from samples run back to back."""
    return [a / b for a, b in zip(means[top], means[bottom], strict=False)]


def header(env: dict, s: dict, results: dict, command: str) -> list[str]:
    """Title, what the figures are, the GPU statement and the setup table."""
    steps = results["steps"]
    gpu = env["gpu"]
    device = (
        f"CUDA: {gpu}; host CPU {env['cpu']}, {env['cores']} cores"
        if gpu
        else f"CPU: {env['cpu']}, {env['cores']} cores ({env['torch_threads']} torch threads), "
        f"{gib(env['memory'])} memory"
    )
    compute = steps["compute_dtype"].replace("torch.", "")
    weights = steps["weight_dtype"].replace("torch.", "")
    dtype_note = f"UNet and IdentityNet weights {weights}, computed in {compute}" + (
        " (ComfyUI on a CPU would upcast every weight to fp32 at every call, a per-step cost a GPU fp16 "
        "run does not have; `--upcast` measures that instead)"
        if s["keep_dtype"]
        else ""
    )
    lines = [
        "# InstantID benchmarks",
        "",
        f"Written by `make bench` on {env['date']}. **Every figure comes from the stand-in models: random weights with "
        "the real shapes and file formats** (the full-size SDXL checkpoint, IdentityNet and `ip-adapter.bin` that "
        "`scripts/make_standins.py` writes), so the times and the memory are those of the real models on this "
        "machine. The face detector and recogniser are the exception: tiny stand-in graphs (see 4).",
        "",
    ]
    if not gpu:
        cuda = DEFAULTS["cuda"]
        why = (
            "This run was asked for the CPU (`--device cpu`) on a machine with a CUDA device"
            if env["cuda_seen"]
            else "**No GPU was lent to this session; GPU figures are not measured.** This run saw no CUDA device"
        )
        lines += [
            f"{why}, so it ran on the CPU at small sizes. `make bench` on a CUDA machine measures the GPU "
            f"figures ({cuda['size']}², {cuda['steps']} steps, {cuda['dtype']}; scaling at "
            f"{', '.join(f'{size}²' for size in cuda['sizes'])} and batch "
            f"{'/'.join(map(str, cuda['batches']))}) and rewrites this file.",
            "",
        ]
    lines += table(
        ["", ""],
        [
            ["Device", device],
            ["Versions", ", ".join(f"{name} {version}" for name, version in env["versions"].items())],
            ["Commit", env["commit"]],
            ["Command", f"`{command}`" + (" (= `make bench`)" if command.endswith("run.py") else "")],
            ["Run time", f"{env['run_seconds'] / 60:.1f} min, every phase included"],
            ["Models", dtype_note],
            [
                "Sampling",
                f"Euler, CFG {CFG:g} (cond and uncond in one batch), the first steps of a {SCHEDULE_STEPS}-step "
                f"normal schedule; text conditioning random with a prompt's shapes (77×2048, pooled 1280); "
                f"IdentityNet strength and adapter weight {STRENGTH}; IdentityNet from 0 to 1, the attention "
                f"patch from 0 to {PATCH_END} (so that its start/end gate runs in every step)",
            ],
            [
                "Machine load",
                f"load average (1, 5, 15 min) {fmt_load(env['load_start'])} at the start, "
                f"{fmt_load(env['load_end'])} at the end; the run itself keeps about "
                f"{env['torch_threads']} busy, anything above is other work on the machine at the same "
                "time, which widens the min–max",
            ],
        ],
    )
    return lines + [
        "",
        "Figures are the median (min–max) of the runs named in each section; ratios come from one "
        "run. Each phase runs in its own process, minutes after the one before: compare ratios "
        "within a table rather than absolute times across tables (on a shared machine they drift).",
    ]


def patch_share(results: dict) -> tuple[float, float, float]:
    """Seconds per step inside the patch (median and fastest of C's rounds, each the mean of its timed steps like a
    round's figure), and the fastest as a fraction of B's fastest round: noise only ever adds time, so the fastest
    figures are the closest to the cost itself."""
    inside = [fmean(run) for run in results["steps"]["patch_seconds"]]
    return statistics.median(inside), min(inside), min(inside) / min(round_means(results["steps"])["controlnet"])


def per_layer_call(patch_seconds: list[float], layer_calls: list[float]) -> float:
    """Microseconds of the patch's own work per layer call, over a sample's timed steps."""
    return sum(patch_seconds) / sum(layer_calls) * 1e6


def overhead_verdict(results: dict) -> tuple[str, str]:
    """(figure, verdict) of target 1 at the step run's size: the patch's own share of B's step, and C/B per round."""
    means = round_means(results["steps"])
    ratios = per_round_ratios(means, "instantid", "controlnet")
    cpu = round_means(results["steps"], "cpu")
    ratio = statistics.median(ratios)
    _, fastest, share = patch_share(results)
    figure = (
        f"the patch's own work {fastest * 1000:.0f} ms per step = {share:.2%} of B's step (fastest of each); "
        f"C/B = {ratio:.3f} (per round {min(ratios):.3f} to {max(ratios):.3f}; CPU time "
        f"{statistics.median(cpu['instantid']) / statistics.median(cpu['controlnet']):.3f})"
    )
    size = results["settings_size"]
    target = SHARE_TARGETS.get(size)
    misses = []
    if target is not None and share > target:
        misses.append(f"the patch's own work is {share:.2%} of a step at {size}² (target ≤ {target:.1%})")
    if ratio > RATIO_TARGET:
        misses.append(f"C/B is {ratio:.3f} (target ≤ {RATIO_TARGET})")
    if not misses:
        return figure, "met on this device"
    return figure, f"not met on this device: {' and '.join(misses)}. {PATCH_FIX}"


def step_section(s: dict, results: dict) -> list[str]:
    """Section 1: step times and ratios."""
    steps = results["steps"]
    means, cpu = round_means(steps), round_means(steps, "cpu")
    rows = [
        [CONFIG_LABELS[config], spread(means[config], digits=3), spread(cpu[config], digits=3)]
        for config in STEP_CONFIGS
    ]
    ratio_rows = [
        [
            label,
            f"{statistics.median(means[a]) / statistics.median(means[b]):.3f}",
            spread(per_round_ratios(means, a, b), digits=3),
            f"{min(means[a]) / min(means[b]):.3f}",
            f"{statistics.median(cpu[a]) / statistics.median(cpu[b]):.3f}",
        ]
        for a, b, label in RATIOS
    ]
    figure, verdict = overhead_verdict(results)
    patch = steps["patch_seconds"]
    inside_ms = spread([fmean(run) for run in patch], 1000, 1)
    per_call = spread([per_layer_call(p, c) for p, c in zip(patch, steps["layer_calls"], strict=True)], digits=0)
    median_inside, _, share = patch_share(results)
    latent = s["size"] // 8
    return [
        "",
        "## 1. Denoising step time",
        "",
        f"{s['size']}×{s['size']} ({latent}×{latent} latent), batch {s['batch']}, {s['runs']} rounds. Each round "
        f"samples A, B, D, C in turn, after one warm-up sample each; a run is one sample of {s['steps']} steps "
        f"whose first step (it carries the sampler's setup) is not timed; its figure is the mean time of the "
        f"other {s['steps'] - 1}, measured between the sampler's step callbacks"
        + (" (each after a torch.cuda.synchronize())" if s["device"] == "cuda" else "")
        + ". Wall time, and the process's CPU time (all threads) over the same steps, which other work on the "
        "machine inflates far less. The patch is made once, from the adapter, before the rounds; this process "
        "then frees the adapter (sampling never reads it).",
        "",
        *table(["Configuration", "wall s/step", "CPU s/step"], rows),
        "",
        "Ratios, all from this run: of the median wall times; the median (min–max) of the per-round ratios "
        "(the samples of a round run back to back, so drifts in the machine's load cancel best there); of the "
        "fastest rounds (other work only ever adds time); of the median CPU times.",
        "",
        *table(["Ratio", "of medians", "per round", "of minimums", "CPU time"], ratio_rows),
        "",
        f"**The patch's own work: {per_call} µs per layer call** (median (min–max) over C's {len(patch)} rounds), "
        f"{inside_ms} ms per step: each layer's identity term added to its output (the layer call's options read, "
        "the gate, the laid-out K/V, the attention over the 16 identity tokens, the region, the addition, the mark "
        "for the guard) and the guard's input hook and check, timed call by call in C's own samples"
        + (" with CUDA events (no synchronisation added)" if s["device"] == "cuda" else "")
        + ". The figure per layer call compares across machines and sizes best: it does not move with the step. "
        f"The median per step is {median_inside / statistics.median(means['controlnet']):.2%} of B's median step, "
        f"the fastest {share:.2%} of B's fastest round.",
        "",
        f"**Target: the patch's own work ≤ {SHARE_TARGETS[256]:.1%} of the ControlNet step at 256² and "
        f"≤ {SHARE_TARGETS[512]:.1%} at 512² (5 has the other sizes), C/B ≤ {RATIO_TARGET}.** {figure}: {verdict}. "
        "C differs from B by the attention patch and by IdentityNet's context (16 face tokens instead of the 77 "
        "text tokens, slightly cheaper): D isolates the second, C/D is the patch alone.",
    ]


def sync_verdict(results: dict) -> tuple[str, str]:
    """(figure, verdict) of target 2 from the CUDA sync counts, or n/a without them."""
    syncs = results["steps"].get("syncs")
    if syncs is None:
        return "n/a on CPU", "not measurable here: run `make bench` on a CUDA machine"
    added = statistics.median(syncs["instantid"]["all"]) - statistics.median(syncs["identitynet"]["all"])
    pack = statistics.median(syncs["instantid"]["pack"]) - statistics.median(syncs["identitynet"]["pack"])
    figure = f"C − D = {added:+g} per step, {pack:+g} of them raised from the pack's nodes/ and instantid_core/"
    if added <= 0 and pack == 0:
        return figure, "met"
    return figure, (
        "not met: the warnings' file and line (torch.cuda.set_sync_debug_mode('warn')) name each "
        "synchronising call; replacing it with a device-side operation fixes it"
    )


def sync_section(s: dict, results: dict) -> list[str]:
    """Section 2: GPU→CPU synchronisations per step."""
    lines = ["", "## 2. GPU→CPU synchronisations per step", ""]
    syncs = results["steps"].get("syncs")
    if syncs is None:
        return lines + [
            "**n/a on CPU**: without a GPU there is nothing to synchronise with, so there is nothing to "
            "count. On CUDA the steps phase counts them per step (each step but the first) with "
            '`torch.cuda.set_sync_debug_mode("warn")`: all of them, and those raised from this pack\'s '
            "files; C − D is what our patch adds. Not measured here, so no figure is claimed."
        ]
    rows = [
        [CONFIG_LABELS[config], spread(counts["all"], digits=1), spread(counts["pack"], digits=1)]
        for config, counts in syncs.items()
    ]
    figure, verdict = sync_verdict(results)
    return lines + [
        *table(["Configuration", "syncs/step, all", "syncs/step from this pack's files"], rows),
        "",
        f"**Target: 0 synchronisations per step caused by our patch.** {figure}: {verdict}.",
    ]


def memory_verdict(s: dict, results: dict) -> tuple[str, str]:
    """(figure, verdict) of target 3."""
    patch = results["steps"]["patch_bytes"]
    verdict = (
        "met"
        if patch <= PATCH_MEMORY_TARGET
        else (
            "not met: the K/V are 2 (K, V) × 2 (cond, uncond) × tokens × width per layer, so more than tens of MB "
            "means more identity tokens "
            "(several references concatenated) or a wider dtype than the UNet's; keep them in the UNet's dtype"
        )
    )
    return f"{mib(patch)} of identity K/V", verdict + (
        "" if s["device"] == "cuda" else "; peak VRAM not measured here (no GPU)"
    )


def memory_section(s: dict, env: dict, results: dict) -> list[str]:
    """Section 3: memory of each configuration and what the patch holds."""
    memory = results["memory"]
    cuda = s["device"] == "cuda"
    what = "VRAM allocated by torch" if cuda else "Resident memory (RSS) of the process"
    rows = [
        [
            CONFIG_LABELS[config],
            gib(m["load_peak"]),
            gib(m["after_load"]),
            gib(m["sampling_peak"]),
            mib(m["sampling_peak"] - m["after_load"]),
        ]
        for config, m in memory.items()
    ]
    patch = results["steps"]["patch_bytes"]
    adapter = env["adapter_file_bytes"]
    c, b = memory["instantid"], memory["controlnet"]
    lines = [
        "",
        "## 3. Memory",
        "",
        f"{what}, each configuration alone in a fresh process: the peak while loading its models "
        f"and applying its nodes; what it holds once loaded (after a first 1-step sample, which puts the models "
        f"on the device); and the peak during one sample of {s['steps']} steps at {s['size']}² batch "
        f"{s['batch']} (peak reset before it"
        + (
            ""
            if cuda
            else ": freed heap returned to the system with malloc_trim, then VmHWM reset through /proc/self/clear_refs"
        )
        + ").",
        "",
        *table(
            [
                "Configuration",
                "peak while loading",
                "loaded",
                "peak during sampling",
                "sampling's working memory (peak − loaded)",
            ],
            rows,
        ),
        "",
        f"**Memory our patch holds during sampling:** {mib(patch)} — the identity K/V of the 70 layers, "
        f"{results['steps']['compute_dtype'].replace('torch.', '')}, counted from the tensors the patch hands "
        f"to ComfyUI's model manager — against {adapter / 1e9:.2f} GB for the adapter file, which stays in host "
        "memory (its Resampler runs once per apply on the CPU) and never goes to the device.",
    ]
    if not cuda:
        working = (c["sampling_peak"] - c["after_load"]) - (b["sampling_peak"] - b["after_load"])
        lines += [
            "",
            f"On the CPU, host memory is the device memory, so C's RSS also holds the adapter: C − B once "
            f"loaded is {gib(c['after_load'] - b['after_load'])}, the adapter's tensors and Resampler. The "
            f"working memory of a sample differs by {mib(working)} (C − B)"
            + (
                ": at this size the identity attention's activations do not stand out from the allocator's variation"
                if abs(working) < 32 * 2**20
                else ", the identity attention's activations"
            )
            + ". Peak VRAM is not measured here.",
        ]
    load_peaks = [m["load_peak"] for m in memory.values()]
    if max(load_peaks) < 1.01 * min(load_peaks):
        lines += [
            "",
            "The peak while loading is the same for A, B and C: it is reached while the SDXL checkpoint "
            "loads, before the other files.",
        ]
    figure, verdict = memory_verdict(s, results)
    return lines + ["", f"**Target: tens of MB held during sampling, not the 1.7 GB adapter.** {figure}: {verdict}."]


def face_section(s: dict, results: dict) -> list[str]:
    """Section 4: face analysis latency and load times."""
    faces = results["faces"]
    latency = faces["latency"]
    providers = sorted({key.split()[0] for key in latency}, key=lambda p: p != "CPU")
    rows = [
        [provider]
        + [spread(latency[f"{provider} {size}"]["seconds"], 1000, 1) for size in faces["face_sizes"]]
        + [spread(latency[f"{provider} analyze"]["seconds"], 1000, 1)]
        for provider in providers
    ]
    counts = {value["faces"] for value in latency.values()}
    found = (
        f"{counts.pop()} at every size"
        if len(counts) == 1
        else ", ".join(f"{value['faces']} at {key}" for key, value in latency.items())
    )
    if "CUDA" not in providers:
        rows.append(["CUDA", *["not available"] * (len(faces["face_sizes"]) + 1)])
    width, height = faces["photo_size"]
    load_rows = [
        ["face pack (detector + recogniser)", spread(faces["loads"]["face_pack"])],
        [f"adapter (`ip-adapter.bin`, {file_gb('adapter')} fp32)", spread(faces["loads"]["adapter"])],
        [f"IdentityNet ({file_gb('control_net')} fp16 → {s['dtype']})", spread(faces["loads"]["control_net"])],
        [
            f"SDXL checkpoint, UNet only ({file_gb('model')} fp16 → {s['dtype']})",
            spread([m["load_seconds"]["model"] for m in results["memory"].values()]),
        ],
    ]
    cuda_note = (
        ""
        if "CUDA" in providers
        else f" The CUDA provider is not available: this onnxruntime has {', '.join(faces['providers_available'])}"
        " (on a CUDA machine, onnxruntime-gpu in place of onnxruntime)."
    )
    return [
        "",
        "## 4. Face analysis and load times",
        "",
        f"Detection + recognition of the stand-in photo ({width}×{height}), `FaceModels.detect` at each detection "
        f"size (640, then the fallback sizes face analysis retries at), and one whole `FaceModels.analyze` "
        f"(detection size 640); ms per image, {s['face_runs']} calls each after a first one. Faces found: "
        f"{found}.{cuda_note}",
        "",
        "**The stand-in detector and recogniser are tiny graphs with the real input and output signatures, not "
        "the real SCRFD-10G and glintr100 (ResNet-100): these latencies are those of the pipeline around the "
        "networks (resizing, anchors, alignment, onnxruntime calls), NOT those of the real antelopev2 pack.** "
        "Put the real pack into the stand-in folder (models/insightface/models/antelopev2) to measure it.",
        "",
        *table(["Provider", *[f"{size}" for size in faces["face_sizes"]], "analyze()"], rows),
        "",
        f"Real face models on real photos ({faces['real']['models']}): one whole `FaceModels.analyze` with the "
        f"reference resize, ms per photo, {s['face_runs']} calls each after a first one. antelopev2's SCRFD-10G and "
        "glintr100 (ResNet-100) are larger: expect more time per face with them.",
        "",
        *table(
            ["Provider", "Photo", "Faces", "ms"],
            [
                [key.split()[0], f"{key.split(maxsplit=1)[1]} ({row['size'][0]}×{row['size'][1]})", str(row["faces"])]
                + [spread(row["seconds"], 1000, 1)]
                for key, row in faces["real"]["rows"].items()
            ],
        ),
        "",
        f"Load times, s, {s['load_runs']} loads each in one process (the first may read from disk, the "
        "others from the page cache); the checkpoint's from the three memory processes:",
        "",
        *table(["File", "s"], load_rows),
    ]


def scaling_section(s: dict, results: dict) -> list[str]:
    """Section 5: step time and memory against size and batch."""
    rows = results["scaling"]["rows"]
    points = list(dict.fromkeys((row["size"], row["batch"]) for row in rows))
    by = {(row["size"], row["batch"], row["config"]): row for row in rows}
    time_rows, memory_rows = [], []
    for size, batch in points:
        cells = [by[(size, batch, config)] for config in CONFIGS]
        medians = [statistics.median(cell["step_seconds"]["wall"]) for cell in cells]
        timed = cells[2]["step_seconds"]
        inside = statistics.median(timed["patch"])
        time_rows.append(
            [
                f"{size}²",
                batch,
                *[spread(cell["step_seconds"]["wall"], digits=3) for cell in cells],
                f"{medians[2] / medians[0]:.3f}",
                f"{medians[2] / medians[1]:.3f}",
                f"{inside * 1000:.0f} ms = {inside / medians[1]:.2%}",
                f"{per_layer_call(timed['patch'], timed['layer_calls']):.0f}",
            ]
        )
        memory_rows.append(
            [
                f"{size}²",
                batch,
                *[gib(cell["peak"]) for cell in cells],
                *[mib(cell["peak"] - cell["before"]) for cell in cells],
            ]
        )
    cuda = s["device"] == "cuda"
    peak = "peak VRAM allocated" if cuda else "peak RSS"
    lines = [
        "",
        "## 5. Scaling",
        "",
        f"Sizes at batch 1 and batches at {s['size']}², A, B and C in one process, one sample of "
        f"{s['scaling_steps']} steps each (the first not timed: median (min–max) of the other "
        f"{s['scaling_steps'] - 1}); C's samples also time the patch's own work as in 1 (median per step, "
        "and its share of B's median step); the ratios are of the medians. One sample per cell, taken minutes apart: the wall-clock ratios carry the "
        "machine's drift (1 has the interleaved measurement); the time inside the patch is the steadier figure."
        + (
            ""
            if cuda
            else " The GPU sizes 512²–1024² with batch 4 need a GPU: on the CPU the scaling stops "
            f"at {max(s['sizes'])}² and batch {max(s['batches'])} to finish in minutes."
        ),
        "",
        *table(
            [
                "Size",
                "Batch",
                "A s/step",
                "B s/step",
                "C s/step",
                "C/A",
                "C/B",
                "the patch's own work (of B)",
                "µs per layer call",
            ],
            time_rows,
        ),
        "",
        f"Memory: {peak} during the sample, and the sample's working memory (peak − before it), reset and "
        "read as in 3.",
        "",
        *table(
            ["Size", "Batch", f"A {peak}", f"B {peak}", f"C {peak}", "A working", "B working", "C working"], memory_rows
        ),
    ]
    return lines


def identities_section(s: dict, results: dict) -> list[str]:
    """Several identities in one batch: apply time and K/V size per number of identities, and a batch's step time
    with one identity per picture against one identity for all."""
    found = results.get("identities")
    if found is None:
        return []
    one_kv = next(a["kv_bytes"] for a in found["applies"] if a["identities"] == 1)
    apply_rows = [
        [
            str(a["identities"]),
            spread(a["apply_seconds"]),
            mib(a["kv_bytes"]),
            f"{a['kv_bytes'] / one_kv:.2f}",
        ]
        for a in found["applies"]
    ]
    means = {name: [fmean(run["wall"]) for run in runs] for name, runs in found["rounds"].items()}
    batch, size = found["batch"], s["size"]
    ratios = [e / o for e, o in zip(means["each"], means["one"], strict=True)]
    step_rows = [
        [f"{batch} pictures, one identity for all", spread(means["one"]), ""],
        [
            f"{batch} pictures, one identity per picture ('per picture')",
            spread(means["each"]),
            f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})",
        ],
    ]
    return [
        "",
        "## 6. Several identities in one batch",
        "",
        "For N identities ('per picture': one per picture of a batch), the time of one apply (the identity tokens, the "
        f"identity K/V of every layer, the patch; {len(found['applies'][0]['apply_seconds'])} applies each) and the "
        "K/V it hands to the model manager: the N conditional rows and the unconditional row they share, so N "
        "identities hold (N + 1) / 2 times one identity's K/V and nothing else grows with N.",
        "",
        *table(["Identities", "apply s", "identity K/V", "× one identity's"], apply_rows),
        "",
        f"Step time of a batch of {batch} at {size}², full InstantID, the two configurations interleaved round by round "
        f"({len(ratios)} rounds, each a sample of {s['steps']} steps whose first is not timed): a different identity "
        "per picture costs the per-picture K/V rows and IdentityNet contexts, not another sampling run.",
        "",
        *table(["Configuration", "wall s/step", "per picture / one (per round)"], step_rows),
    ]


def share_verdicts(results: dict) -> list[list[str]]:
    """Target rows of the patch's share at each size of SHARE_TARGETS the scaling measured (batch 1)."""
    rows = []
    cells = {(row["size"], row["config"]): row for row in results["scaling"]["rows"] if row["batch"] == 1}
    for size, target in SHARE_TARGETS.items():
        if (size, "instantid") not in cells:
            continue
        step = statistics.median(cells[(size, "controlnet")]["step_seconds"]["wall"])
        inside = statistics.median(cells[(size, "instantid")]["step_seconds"]["patch"])
        share = inside / step
        rows.append(
            [
                f"The patch's own work ≤ {target:.1%} of the ControlNet step at {size}² (5)",
                f"{inside * 1000:.0f} ms of {step:.2f} s = {share:.2%}",
                "met" if share <= target else "not met",
            ]
        )
    return rows


def targets_section(s: dict, results: dict) -> list[str]:
    """The targets, met or not, and what would fix or measure the rest."""
    figure, verdict = overhead_verdict(results)
    rows = [
        [f"The patch's own work and C/B ≤ {RATIO_TARGET} at {s['size']}² (1)", figure, verdict.split(". ")[0]],
        *share_verdicts(results),
        ["0 GPU→CPU synchronisations per step from the patch", *sync_verdict(results)],
        ["Extra memory held during sampling: tens of MB, not the adapter", *memory_verdict(s, results)],
    ]
    return ["", "## Targets", "", *table(["Target", "Measured", "Verdict"], rows)]


def render(env: dict, settings: dict, results: dict, command: str) -> str:
    """The whole RESULTS.md."""
    results = results | {"settings_size": settings["size"]}
    sections = (
        header(env, settings, results, command),
        step_section(settings, results),
        sync_section(settings, results),
        memory_section(settings, env, results),
        face_section(settings, results),
        scaling_section(settings, results),
        identities_section(settings, results),
        targets_section(settings, results),
    )
    return "\n".join(line for section in sections for line in section) + "\n"


def main() -> None:
    """Write RESULTS.md again from the raw figures of a run (benchmarks/out/last_run.json)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--from", dest="source", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    args = parser.parse_args()
    run = json.loads(args.source.read_text())
    args.output.write_text(render(run["env"], run["settings"], run["results"], run["command"]))


if __name__ == "__main__":
    main()

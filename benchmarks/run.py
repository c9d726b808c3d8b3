"""`make bench`: InstantID's step time, synchronisations, memory, face analysis, scaling and batch identities.

Measured on the full-size stand-in models (scripts/make_standins.py), in-process on the provisioned ComfyUI.

    .venv/bin/python benchmarks/run.py [--device cpu|cuda] [--size 256] [--sizes 256 384 512] [--batches 1 2] ...

Each phase runs in a fresh process (benchmarks/measure.py), so memory peaks do not mix. Defaults depend on the
device: on the CPU a small resolution that finishes in minutes, on CUDA the GPU sizes (docs/design.md, "Performance": 1024², 20 steps,
fp16).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import harness as h
import report

from scripts.harness.paths import comfy_dir

log = logging.getLogger("bench")

HERE = Path(__file__).resolve().parent


def parse_args() -> argparse.Namespace:
    """The command line; unset values take the device's defaults (harness.DEFAULTS)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when torch sees one, else cpu")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), help="UNet and IdentityNet weights (cpu: bf16)")
    parser.add_argument(
        "--upcast",
        action="store_true",
        help="on the CPU, let ComfyUI upcast bf16/fp16 weights to fp32 at every call (its default); "
        "without it they are computed in their own dtype, as on a GPU",
    )
    parser.add_argument("--size", type=int, help="width = height in pixels of the step-time and memory runs")
    parser.add_argument("--batch", type=int, help="batch of the step-time and memory runs")
    parser.add_argument("--steps", type=int, help="steps per sample; the first is not timed (it holds the setup)")
    parser.add_argument("--runs", type=int, help="interleaved rounds of the step-time run")
    parser.add_argument("--sizes", type=int, nargs="+", help="scaling: sizes, at batch 1")
    parser.add_argument("--batches", type=int, nargs="+", help="scaling: batches, at --size")
    parser.add_argument("--scaling-steps", type=int, help="steps per scaling sample")
    parser.add_argument("--load-runs", type=int, help="loads of each model file for the load times")
    parser.add_argument("--face-runs", type=int, help="face analysis calls per size and provider")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--raw",
        type=Path,
        default=HERE / "out" / "last_run.json",
        help="where the raw figures go (benchmarks/report.py --from writes RESULTS.md from them again)",
    )
    return parser.parse_args()


def settings_from(args: argparse.Namespace) -> dict:
    """The settings every phase gets: the device's defaults with the command line's values over them."""
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    given = {key: value for key, value in vars(args).items() if value is not None and key in h.DEFAULTS[device]}
    settings = h.DEFAULTS[device] | given | {"device": device}
    if not all(2 <= settings[key] <= h.SCHEDULE_STEPS for key in ("steps", "scaling_steps")):
        raise SystemExit(
            f"--steps and --scaling-steps must lie in 2..{h.SCHEDULE_STEPS}: the first step of a sample "
            f"is not timed, and samples take the first steps of a {h.SCHEDULE_STEPS}-step schedule"
        )
    settings["keep_dtype"] = device == "cpu" and not args.upcast
    return settings


def run_phase(name: str, settings: dict) -> dict:
    """One phase of measure.py in a fresh process; its figures."""
    with tempfile.TemporaryDirectory(prefix="instantid-bench-") as tmp:
        out = Path(tmp) / "out.json"
        started = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / "measure.py"), name, json.dumps(settings), str(out)], check=True)
        log.info("phase %s %s done in %.0f s", name, settings.get("config", ""), time.perf_counter() - started)
        return json.loads(out.read_text())


def measure_all(settings: dict) -> dict:
    """Every phase, step times first (the least disturbed by page-cache misses once the files have been read)."""
    return {
        "steps": run_phase("steps", settings),
        "memory": {config: run_phase("memory", settings | {"config": config}) for config in h.CONFIGS},
        "scaling": run_phase("scaling", settings),
        "faces": run_phase("faces", settings),
        "identities": run_phase("identities", settings),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or "unknown"


def memory_total() -> int:
    """Bytes of memory of this machine."""
    match = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return int(match.group(1)) * 1024


def package_version(*names: str) -> str:
    """The installed version of the first of `names` that is installed."""
    for name in names:
        try:
            return f"{metadata.version(name)}" + ("" if name == names[0] else f" ({name})")
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def comfy_version() -> str:
    """The provisioned ComfyUI's version."""
    text = (comfy_dir() / "comfyui_version.py").read_text()
    return re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text).group(1)


def git_commit() -> str:
    """This repo's commit, marked when the working tree has changes."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=h.REPO, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if git("status", "--porcelain") else "")


def environment(settings: dict) -> dict:
    """Date, machine, versions and load of the machine at the start."""
    import torch

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory": memory_total(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if settings["device"] == "cuda" else None,
        "cuda_seen": torch.cuda.is_available(),
        "versions": {
            "Python": platform.python_version(),
            "torch": torch.__version__,
            "ComfyUI": comfy_version(),
            "insightface": package_version("insightface"),
            "onnxruntime": package_version("onnxruntime", "onnxruntime-gpu"),
            "numpy": package_version("numpy"),
            "safetensors": package_version("safetensors"),
            "diffusers": "not used",
        },
        "commit": git_commit(),
        "load_start": os.getloadavg(),
        "adapter_file_bytes": h.model_paths()["adapter"].stat().st_size,
    }


def main() -> None:
    """Measure every phase, write RESULTS.md and print it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args()
    settings = settings_from(args)
    command = shlex.join([".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]])
    log.info("benchmark on %s: %s", settings["device"], settings)
    env = environment(settings)
    started = time.perf_counter()
    results = measure_all(settings)
    env["load_end"], env["run_seconds"] = os.getloadavg(), time.perf_counter() - started
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps({"env": env, "settings": settings, "results": results, "command": command}))
    log.info("raw figures in %s", args.raw)
    text = report.render(env, settings, results, command)
    args.output.write_text(text)
    print(text)
    log.info("wrote %s in %.0f s", args.output, env["run_seconds"])


if __name__ == "__main__":
    main()

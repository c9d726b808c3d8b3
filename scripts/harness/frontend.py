"""The ComfyUI frontends the browser tier runs: the one ComfyUI pins (installed in the venv) and the newest one the
host accepts, served from a cache folder through ComfyUI's `--front-end-root`.

    .venv/bin/python -P -m scripts.harness.frontend      (`make frontend-newest`; `make test` runs it)

downloads the wheel `comfyui-frontend-package==NEWEST_FRONTEND_VERSION` from PyPI with `pip download --no-deps`,
refuses it unless its sha256 is NEWEST_FRONTEND_SHA256, and extracts its `comfyui_frontend_package/static/` folder
into `CACHE/frontend-<version>/static/`. A folder already in place (its COMPLETE record names this version and hash)
is left alone, so running it again costs nothing.

What "accepts" means for ComfyUI 0.3.75: with `--front-end-root` its server (server.py) serves the folder as its web
root with no version check at all (app/frontend_management.py compares only the installed package with the pin in its
requirements.txt, and only to warn; the frontend itself warns only when it is older than that pin). So the newest
frontend it accepts is the newest whose app works against 0.3.75's server API: it starts, lists this pack's nodes,
loads every workflow and logs no error that it does not also log with every custom node disabled (those are listed
in tests/helpers/browser.py; tests/browser/test_frontend_smoke.py, test_workflows_load.py and
test_newest_frontend.py check the rest). Why no newer one:

- 1.38.4 to 1.58.1 (the newest on PyPI when this was chosen) read the queue and the history only from
  `GET /api/jobs`, with no fallback to `/queue` and `/history`; ComfyUI 0.3.75 has no such route (0.33.0 has), so the
  queue and history panels stay empty and the app logs "[Jobs API] Failed to fetch jobs: 404" (1.38.4) or "[Jobs
  API] Error fetching jobs: JobsApiError: Failed to fetch jobs: 404" (1.58.1) at start-up and on every status
  message. Seen in headless Chromium against 0.3.75 for 1.38.4 and 1.58.1, and in the bundles of 1.38.5, 1.38.7,
  1.38.14, 1.39.19, 1.42.15, 1.45.21, 1.49.6, 1.53.10, 1.55.18 and 1.57.5; 1.38.3 and older still use `/queue`
  and `/history`.

To move to another version: set NEWEST_FRONTEND_VERSION and NEWEST_FRONTEND_SHA256 (the wheel's, as PyPI lists it),
run `make frontend-newest`, then the browser tier; add the version's own errors (the ones it also logs with
`--disable-all-custom-nodes`) to KNOWN_FRONTEND_ERRORS in tests/helpers/browser.py, with the reason.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from instantid_core.download import file_sha256
from scripts.harness.paths import CACHE

logger = logging.getLogger(__name__)

PACKAGE = "comfyui-frontend-package"
NEWEST_FRONTEND_VERSION = "1.38.3"
"""The newest comfyui-frontend-package on PyPI that ComfyUI 0.3.75 accepts (see the module's docstring for why not a
newer one)."""
NEWEST_FRONTEND_SHA256 = "8396def06ee4353bd13d2ee5d0f95c4988a261d4b136a5439b7632c00f11276d"
"""The sha256 of comfyui_frontend_package-<NEWEST_FRONTEND_VERSION>-py3-none-any.whl as PyPI serves it."""
STATIC_MEMBER = "comfyui_frontend_package/static/"
"""The web root inside the wheel: what ComfyUI serves (its FrontendManager.default_frontend_path)."""
COMPLETE = "COMPLETE"
"""Written last into a frontend's cache folder: the version and the wheel's sha256 it was extracted from."""


class FrontendError(RuntimeError):
    """Fetching, checking or finding a cached frontend failed."""


def pinned_frontend_version() -> str:
    """The version of the frontend the venv has installed: what ComfyUI serves without --front-end-root."""
    return metadata.version(PACKAGE)


def frontend_folder(version: str = NEWEST_FRONTEND_VERSION, cache: Path | None = None) -> Path:
    """The cache folder of one frontend version (its web root is the `static` folder in it)."""
    return Path(cache or CACHE) / f"frontend-{version}"


def _record(version: str, sha256: str) -> str:
    return f"{PACKAGE}=={version}\nsha256={sha256}\n"


def _is_complete(folder: Path, version: str, sha256: str) -> bool:
    marker = folder / COMPLETE
    return (
        marker.is_file()
        and marker.read_text() == _record(version, sha256)
        and (folder / "static" / "index.html").is_file()
    )


def newest_frontend_root(cache: Path | None = None) -> Path:
    """The web root (a `static` folder) of the cached newest frontend, for `--front-end-root`; fails loudly when it is
    missing or incomplete."""
    folder = frontend_folder(NEWEST_FRONTEND_VERSION, cache)
    if not _is_complete(folder, NEWEST_FRONTEND_VERSION, NEWEST_FRONTEND_SHA256):
        raise FrontendError(
            f"The frontend {NEWEST_FRONTEND_VERSION} is missing or incomplete in {folder}: run `make frontend-newest` "
            "(`.venv/bin/python -P -m scripts.harness.frontend`)."
        )
    return folder / "static"


def download_wheel(version: str, folder: Path) -> Path:
    """Download the frontend's wheel (no dependencies: it has none) from PyPI with pip into folder."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(folder)]
    logger.info("Downloading %s==%s with pip.", PACKAGE, version)
    done = subprocess.run([*command, f"{PACKAGE}=={version}"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FrontendError(
            f"pip could not download {PACKAGE}=={version} (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise FrontendError(f"Expected one wheel from pip for {PACKAGE}=={version} in {folder}, found {wheels}.")
    return wheels[0]


def extract_static(wheel: Path, sha256: str, folder: Path, version: str) -> Path:
    """Check the wheel's sha256, then extract its static/ folder as folder/static (atomically: a half-written folder
    is never left under folder's name). Returns the web root."""
    found = file_sha256(wheel)
    if found != sha256:
        raise FrontendError(f"{wheel.name} has sha256 {found}, expected {sha256}: refusing it.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with zipfile.ZipFile(wheel) as opened:
            members = [name for name in opened.namelist() if name.startswith(STATIC_MEMBER)]
            if not any(name == STATIC_MEMBER + "index.html" for name in members):
                raise FrontendError(f"{wheel.name} has no {STATIC_MEMBER}index.html: not a ComfyUI frontend wheel.")
            for name in members:
                relative = Path(name[len(STATIC_MEMBER) :])
                if name.endswith("/") or not relative.parts:
                    continue
                if relative.is_absolute() or ".." in relative.parts:
                    raise FrontendError(f"{wheel.name} has an unsafe member name {name!r}.")
                target = staging / "static" / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(name) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
        (staging / COMPLETE).write_text(_record(version, sha256))
        if _is_complete(folder, version, sha256):  # another process finished it meanwhile: keep that one
            shutil.rmtree(staging)
            return folder / "static"
        if folder.exists():  # an incomplete one, or another version's or hash's
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Extracted %s/static (sha256 verified) into %s.", wheel.name, folder)
    return folder / "static"


def ensure_frontend(
    version: str = NEWEST_FRONTEND_VERSION, sha256: str = NEWEST_FRONTEND_SHA256, cache: Path | None = None
) -> Path:
    """The web root of the given frontend version in the cache, downloaded and extracted first when missing."""
    folder = frontend_folder(version, cache)
    if _is_complete(folder, version, sha256):
        logger.info("Frontend %s is in place in %s.", version, folder)
        return folder / "static"
    with tempfile.TemporaryDirectory(prefix="frontend-wheel-") as download_dir:
        wheel = download_wheel(version, Path(download_dir))
        return extract_static(wheel, sha256, folder, version)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        root = ensure_frontend()
    except FrontendError as error:
        logger.error("%s", error)
        sys.exit(1)
    print(root)  # noqa: T201 (the command's result: the folder to pass to --front-end-root)

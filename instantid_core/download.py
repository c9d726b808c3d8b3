"""Opt-in download of the model files InstantID needs, each verified against the sha256 its host publishes.

A file is written under a temporary name (`<name>.partial`, which ComfyUI lists as no model) and moved into place only
once its size and sha256 are the published ones. An interrupted download keeps its `.partial`, and the next run
resumes it with an HTTP Range request; a download that ends with the wrong size or digest is deleted and reported. A
file already in place is checked, never overwritten: the published file is kept, anything else is an error that
says what to move.

The standard library does the HTTP (one GET with a Range header): the hub's own client verifies by ETag rather than
against pinned digests, reports progress to tqdm only, and could be tested offline only by imitating the hub's
private headers.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InstantIDError
from .model_facts import ADAPTER, ANTELOPEV2_DETECTOR, GLINTR100, IDENTITYNET, PublishedFile

logger = logging.getLogger(__name__)

INSTANTID_LICENCE = (
    "InstantID's adapter and IdentityNet (InstantX/InstantID on Hugging Face): the licence on their model page; "
    "they work only with insightface's face models"
)
INSIGHTFACE_LICENCE = "insightface's antelopev2 models: non-commercial research use only (insightface's licence)"
CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class ModelDownload:
    """One published model file: where to get it, where it goes (a ComfyUI model folder and a path inside it),
    its published size and sha256, and its licence."""

    name: str
    url: str
    folder: str
    relative: str
    size: int
    sha256: str
    licence: str

    @classmethod
    def of(cls, name: str, published: PublishedFile, licence: str) -> ModelDownload:
        """The download of a published file, named for messages."""
        return cls(name, published.url, published.folder, published.relative, published.size, published.sha256, licence)


MODELS = (
    ModelDownload.of("InstantID adapter", ADAPTER, INSTANTID_LICENCE),
    ModelDownload.of("IdentityNet", IDENTITYNET, INSTANTID_LICENCE),
    ModelDownload.of("antelopev2 face detector", ANTELOPEV2_DETECTOR, INSIGHTFACE_LICENCE),
    ModelDownload.of("antelopev2 face recogniser (glintr100)", GLINTR100, INSIGHTFACE_LICENCE),
)
"""What 'InstantID Download Models' fetches: antelopev2's detector and recogniser are the two of its five files that
InstantID uses. Sizes and digests as the hub publishes them (the Git LFS objects)."""

Progress = Callable[[int, int], None]
"""Called with (bytes so far, total bytes) as a download goes."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def is_published(path: Path, model: ModelDownload) -> bool:
    """Whether a file is the published one (its size first, then its sha256)."""
    return path.stat().st_size == model.size and file_sha256(path) == model.sha256


def partial_path(destination: Path) -> Path:
    """Where a download is written until it is verified."""
    return destination.with_name(destination.name + ".partial")


def download(model: ModelDownload, destination: Path, progress: Progress | None = None) -> str:
    """Fetch `model` to `destination` (resuming a `.partial`), verify it and move it into place; what happened, in
    words. An error says why, and leaves nothing but a resumable `.partial` of an interrupted download."""
    if destination.exists():
        if is_published(destination, model):
            return f"{model.name}: already in place and verified ({destination})."
        raise InstantIDError(
            f"{model.name}: {destination} exists but is not the published file (size {destination.stat().st_size:,} "
            f"bytes; the published one is {model.size:,} bytes, sha256 {model.sha256}). Nothing was downloaded: move "
            "it away (InstantID Doctor says what it is) and run the download again.",
            "file_exists",
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(destination)
    digest = hashlib.sha256()
    done = 0
    if partial.exists():
        done = partial.stat().st_size
        if done > model.size:
            partial.unlink()
            done = 0
        else:
            with open(partial, "rb") as stream:
                for block in iter(lambda: stream.read(CHUNK), b""):
                    digest.update(block)
    if done < model.size:
        done, digest = _fetch(model, partial, done, digest, progress)
    if done < model.size:  # the connection closed early
        raise _stopped(model, partial, "the connection closed early")
    if done != model.size or digest.hexdigest() != model.sha256:
        partial.unlink(missing_ok=True)
        raise InstantIDError(
            f"{model.name}: the download from {model.url} is not the published file (got {done:,} bytes, sha256 "
            f"{digest.hexdigest()}; published: {model.size:,} bytes, sha256 {model.sha256}). It was deleted; run "
            "the download again, and if it fails the same way, the file on the server has changed.",
            "download_failed",
        )
    os.replace(partial, destination)
    logger.info("%s: downloaded and verified, %s", model.name, destination)
    return f"{model.name}: downloaded and verified ({destination})."


def _fetch(model: ModelDownload, partial: Path, done: int, digest, progress: Progress | None) -> tuple[int, object]:
    """Append the rest of the file from byte `done` to `partial`; the bytes now held and the digest of them all."""
    request = urllib.request.Request(model.url, headers={"User-Agent": "instantid-comfyui"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if done and response.status != 206:  # the server sent the whole file: start again
                done, digest = 0, hashlib.sha256()
            with open(partial, "ab" if done else "wb") as out:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, model.size)
    except urllib.error.HTTPError as e:
        raise InstantIDError(
            f"{model.name}: {model.url} answered HTTP {e.code} ({e.reason}), so nothing was downloaded: the file may "
            f"have moved. Put it into ComfyUI's models/{model.folder}/{model.relative} by hand (published size "
            f"{model.size:,} bytes, sha256 {model.sha256}).",
            "download_failed",
        ) from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise _stopped(model, partial, f"{type(e).__name__}: {e}") from e
    return done, digest


def _stopped(model: ModelDownload, partial: Path, why: str) -> InstantIDError:
    """The error of a download that stopped part-way: what is kept, and that running again resumes it."""
    have = partial.stat().st_size if partial.exists() else 0
    kept = f"The part is kept as {partial}: run" if have else "Run"
    return InstantIDError(
        f"{model.name}: the download from {model.url} stopped at {have:,} of {model.size:,} bytes ({why}). {kept} "
        "the download again to resume it.",
        "download_failed",
    )

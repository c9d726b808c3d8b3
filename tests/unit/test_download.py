"""The opt-in model download against a local HTTP server: verified by sha256 before it is moved into place, resumed
after an interruption, and nothing kept of a corrupted one."""

import dataclasses
import hashlib

import pytest

from helpers.http_files import FileServer
from instantid_core.download import MODELS, ModelDownload, download, partial_path
from instantid_core.errors import InstantIDError

pytestmark = pytest.mark.unit

BODY = bytes(range(256)) * 4096  # 1 MiB
"""The stand-in file the server holds (the real ones are 17 MB to 2.5 GB)."""


@pytest.fixture
def server():
    """A local server with the stand-in file, a corrupted copy of it, and nothing else."""
    corrupted = bytearray(BODY)
    corrupted[1000] ^= 0xFF
    files = FileServer({"/model.bin": BODY, "/corrupted.bin": bytes(corrupted)})
    yield files
    files.close()


def model(server, path: str = "/model.bin") -> ModelDownload:
    """The stand-in file as a published model: the real manifest's first entry pointed at the local server."""
    return dataclasses.replace(MODELS[0], url=server.url(path), size=len(BODY), sha256=hashlib.sha256(BODY).hexdigest())


def test_a_download_is_verified_then_moved_into_place_with_progress(server, tmp_path):
    destination = tmp_path / "instantid" / "ip-adapter.bin"
    seen = []

    said = download(model(server), destination, lambda done, total: seen.append((done, total)))

    assert destination.read_bytes() == BODY and not partial_path(destination).exists()
    assert "downloaded and verified" in said
    assert seen[-1] == (len(BODY), len(BODY)) and len(seen) >= 1


def test_a_corrupted_download_is_deleted_and_says_why(server, tmp_path):
    destination = tmp_path / "ip-adapter.bin"

    with pytest.raises(InstantIDError, match="is not the published file .* It was deleted"):
        download(model(server, "/corrupted.bin"), destination)

    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_download_keeps_its_part_and_the_next_run_resumes_it(server, tmp_path):
    destination = tmp_path / "ip-adapter.bin"
    server.cut_after["/model.bin"] = 300_000

    with pytest.raises(InstantIDError, match="stopped at 300,000 of 1,048,576 bytes.*run the download again"):
        download(model(server), destination)
    assert partial_path(destination).stat().st_size == 300_000 and not destination.exists()

    download(model(server), destination)

    assert destination.read_bytes() == BODY and not partial_path(destination).exists()
    assert server.requests[-1] == ("/model.bin", "bytes=300000-")


def test_a_server_that_ignores_the_range_gives_the_whole_file_again(server, tmp_path):
    destination = tmp_path / "ip-adapter.bin"
    partial_path(destination).write_bytes(BODY[:1000])
    server.honour_range = False

    download(model(server), destination)

    assert destination.read_bytes() == BODY


def test_a_part_longer_than_the_file_is_started_again(server, tmp_path):
    destination = tmp_path / "ip-adapter.bin"
    partial_path(destination).write_bytes(BODY + b"junk")

    download(model(server), destination)

    assert destination.read_bytes() == BODY and server.requests[-1] == ("/model.bin", None)


def test_the_published_file_in_place_is_kept_without_a_request(server, tmp_path):
    destination = tmp_path / "ip-adapter.bin"
    destination.write_bytes(BODY)

    assert "already in place and verified" in download(model(server), destination)
    assert server.requests == []


def test_another_file_in_place_is_never_overwritten(server, tmp_path):
    destination = tmp_path / "ip-adapter.bin"
    destination.write_bytes(b"someone's own file")

    with pytest.raises(InstantIDError, match="exists but is not the published file.*move it away"):
        download(model(server), destination)

    assert destination.read_bytes() == b"someone's own file" and server.requests == []


def test_a_missing_file_on_the_server_leaves_nothing(server, tmp_path):
    with pytest.raises(InstantIDError, match="answered HTTP 404 .*nothing was downloaded.*by hand"):
        download(model(server, "/gone.bin"), tmp_path / "ip-adapter.bin")

    assert list(tmp_path.iterdir()) == []


def test_the_manifest_names_the_published_files_with_their_digests():
    assert [(m.folder, m.relative) for m in MODELS] == [
        ("instantid", "ip-adapter.bin"),
        ("controlnet", "instantid/diffusion_pytorch_model.safetensors"),
        ("insightface", "models/antelopev2/scrfd_10g_bnkps.onnx"),
        ("insightface", "models/antelopev2/glintr100.onnx"),
    ]
    assert all(len(m.sha256) == 64 and m.url.startswith("https://huggingface.co/") for m in MODELS)

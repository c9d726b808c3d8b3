"""InstantID Download Models as ComfyUI runs it, against a local HTTP server with small stand-in files: nothing
without the licences accepted; then every file verified in ComfyUI's own folders, with the node's progress bar."""

import dataclasses
import hashlib

import pytest

from helpers.http_files import FileServer

pytestmark = pytest.mark.host


@pytest.fixture
def served(comfy_host, tmp_path, monkeypatch):
    """The node's 'all' choice pointed at a local server holding a small stand-in for each published file, and
    ComfyUI's models folder in tmp_path; yields (server, the stand-in manifest, the models folder)."""
    import folder_paths

    node_module = comfy_host.pack_module("nodes.download")
    bodies = {f"/{i}.bin": bytes([i]) * (50_000 + i) for i in range(len(node_module.MODELS))}
    server = FileServer(bodies)
    manifest = tuple(
        dataclasses.replace(model, url=server.url(path), size=len(body), sha256=hashlib.sha256(body).hexdigest())
        for model, (path, body) in zip(node_module.MODELS, bodies.items(), strict=True)
    )
    monkeypatch.setitem(node_module.CHOICES, "all", manifest)
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
    yield server, manifest, tmp_path / "models"
    server.close()


def test_nothing_is_downloaded_until_the_licences_are_accepted(comfy_host, pack, served):
    server, _, models = served

    with pytest.raises(pack.errors.InstantIDError, match="Nothing was downloaded.*non-commercial.*accept_licences"):
        comfy_host.node("InstantIDDownloadModels").execute("all", False)

    assert server.requests == [] and not models.exists()


def test_accepted_every_file_lands_verified_in_its_folder_with_the_nodes_progress_bar(comfy_host, served, monkeypatch):
    import comfy.utils

    server, manifest, models = served
    progress = []
    monkeypatch.setattr(
        comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None: progress.append((value, total))
    )

    report = comfy_host.node("InstantIDDownloadModels").execute("all", True).result[0]

    for model in manifest:
        path = models / model.folder / model.relative
        assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256
        assert (model.size, model.size) in progress
    assert (models / "controlnet" / "instantid" / "diffusion_pytorch_model.safetensors").exists()
    assert (models / "insightface" / "models" / "antelopev2" / "glintr100.onnx").exists()
    assert report.count("downloaded and verified") == len(manifest)

    again = comfy_host.node("InstantIDDownloadModels").execute("all", True).result[0]
    assert again.count("already in place and verified") == len(manifest) and len(server.requests) == len(manifest)

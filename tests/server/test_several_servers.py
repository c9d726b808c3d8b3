"""The pack behind more than one ComfyUI server, as people serve it: two real servers on loopback with the same model
folders and no saved-face file, the identity inside the prompt as a face value.

- The same API prompt gives the identical picture on each server and on a fresh one: the pack keeps no state between
  prompts that changes a picture.
- Under ComfyUI-Distributed (the snapshot in ../shared/peers/, extracted into each server's custom_nodes/ and set up
  as its worker guide says: a "remote" worker by host and port), a master and a worker both run an InstantID
  workflow queued through the master's /distributed/queue, and the master's collector gathers the worker's picture.
- scripts/batch_client.py shares jobs out among both servers through ComfyUI's own API and reports a broken face
  value by its code.

Tiny SDXL-topology models of the test node pack: the picture's size proves nothing here, and two full-size servers
do not fit in 24 GiB.
"""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.server_prompts import SIZE, TINY, TINY_ADAPTER
from helpers.tiny_models import tiny_adapter_state_dict
from instantid_core.face_value import face_to_text
from instantid_core.faces import DetectedFace, FaceAnalysisResult, InstantIDFaces
from scripts import batch_client
from scripts.harness.distributed import configure_workers, extract_pack, missing_reason

pytestmark = [pytest.mark.server, pytest.mark.peers]

WORKER_ID = "1"


def face_value(seed: int) -> str:
    """A face value of one stand-in face: a random embedding of ArcFace-like norm, a face in a 128 px photo."""
    face = DetectedFace(
        embedding=np.random.default_rng(seed).normal(0, 1, 512).astype(np.float32),
        kps=np.array([[40, 50], [80, 50], [60, 70], [45, 95], [75, 95]], dtype=np.float32),
        bbox=np.array([25, 25, 100, 110], dtype=np.float32),
        det_score=0.9,
        image_size=(128, 128),
    )
    return face_to_text(InstantIDFaces([FaceAnalysisResult(faces=(face,), chosen=0, batch_index=0)]))


def identity_prompt(value: str, seed: int = 1, collect: bool = False) -> dict:
    """Tiny models, the face from its value, its keypoints, IdentityNet and the identity attention, one step, saved
    (through ComfyUI-Distributed's collector when `collect`)."""
    prompt = {key: {"class_type": node["class_type"], "inputs": dict(node["inputs"])} for key, node in TINY.items()}
    tokens = {"combine_embeds": "average", "noise": 0.0}
    prompt |= {
        "face": {"class_type": "InstantIDLoadFace", "inputs": {"face_value": value}},
        "kps": {
            "class_type": "InstantIDKeypoints",
            "inputs": {"face": ["face", 0], "width": SIZE, "height": SIZE, "placement": "centered",
                       "face_fraction": 0.35, "reference_index": 0, "all_faces": False},
        },
        "idnet": {
            "class_type": "InstantIDApplyIdentityNet",
            "inputs": {"positive": ["pos", 0], "negative": ["neg", 0], "control_net": ["cn", 0],
                       "instantid": ["adapter", 0], "face": ["face", 0], "kps": ["kps", 2], "strength": 0.8,
                       "start_percent": 0.0, "end_percent": 1.0, **tokens},
        },
        "patch": {
            "class_type": "InstantIDPatchAttention",
            "inputs": {"model": ["ckpt", 0], "instantid": ["adapter", 0], "face": ["face", 0], "weight": 0.8,
                       "start_percent": 0.0, "end_percent": 1.0, "weight_type": "linear", **tokens},
        },
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "sampler": {
            "class_type": "KSampler",
            "inputs": {"model": ["patch", 0], "positive": ["idnet", 0], "negative": ["idnet", 1],
                       "latent_image": ["latent", 0], "seed": seed, "steps": 1, "cfg": 4.5, "sampler_name": "euler",
                       "scheduler": "karras", "denoise": 1.0},
        },
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "several"}},
    }  # fmt: skip
    if collect:
        prompt["collect"] = {
            "class_type": "DistributedCollector",
            "inputs": {"images": ["decode", 0], "load_balance": False},
        }
        prompt["save"]["inputs"]["images"] = ["collect", 0]
    return prompt


def pictures(server, entry: dict) -> list[np.ndarray]:
    """The saved pictures of a finished prompt."""
    return [np.array(Image.open(io.BytesIO(png))) for png in server.output_images(entry, "save")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(master, worker): two ComfyUI servers with this pack, the test pack's tiny models and ComfyUI-Distributed, on
    one model folder that holds the tiny adapter and nothing else (no saved faces)."""
    from scripts.harness.comfy_server import start_server
    from scripts.harness.paths import TEST_PACK

    reason = missing_reason()
    if reason:
        pytest.fail(reason)
    root = tmp_path_factory.mktemp("several_servers")
    models = root / "models"
    (models / "instantid").mkdir(parents=True)
    torch.save(tiny_adapter_state_dict(), models / "instantid" / TINY_ADAPTER)
    worker = start_server(root / "worker", models, [], packs=(TEST_PACK, extract_pack(root / "worker_pack")))
    master_pack = extract_pack(root / "master_pack")
    configure_workers(master_pack, {WORKER_ID: int(worker.url.rsplit(":", 1)[1])})
    try:
        master = start_server(root / "master", models, [], packs=(TEST_PACK, master_pack))
    except Exception:
        worker.stop()
        raise
    yield master, worker
    master.stop()
    worker.stop()


@pytest.fixture(scope="module")
def fresh_picture(servers):
    """Person A's picture from the worker's first prompt (a fresh server)."""
    _, worker = servers
    (picture,) = pictures(worker, worker.run(identity_prompt(face_value(1))))
    return picture


def test_the_same_prompt_with_the_identity_inline_gives_the_same_picture_on_each_server_and_a_fresh_one(
    servers, fresh_picture
):
    master, _ = servers

    (other,) = pictures(master, master.run(identity_prompt(face_value(2))))  # another person first
    (again,) = pictures(master, master.run(identity_prompt(face_value(1))))

    assert np.array_equal(again, fresh_picture)
    assert not np.array_equal(other, fresh_picture)  # the identity in the value is what changes the picture
    for server in servers:  # and no server has a saved-face file to load it from
        info = server.get_json("/object_info/InstantIDLoadFace")["InstantIDLoadFace"]
        assert info["input"]["optional"]["saved_face"][1]["options"] == []


def test_comfyui_distributed_runs_the_workflow_on_master_and_worker_and_collects_both_pictures(servers, fresh_picture):
    master, worker = servers
    before = set(worker.get_json("/history"))
    body = {"prompt": identity_prompt(face_value(1), collect=True), "client_id": "instantid-test",
            "enabled_worker_ids": [WORKER_ID]}  # fmt: skip

    queued = master.post_json("/distributed/queue", body)
    entry = master.wait(queued["prompt_id"])

    assert queued["worker_count"] == 1
    collected = pictures(master, entry)
    assert len(collected) == 2  # the master's, then the worker's
    assert all(np.array_equal(picture, fresh_picture) for picture in collected)  # both carry person A's identity
    ran_on_worker = [worker.get_json("/history")[i] for i in set(worker.get_json("/history")) - before]
    assert [e["status"]["status_str"] for e in ran_on_worker] == ["success"]


def test_the_batch_client_shares_jobs_out_among_the_servers_and_reports_a_broken_face_value_by_its_code(
    servers, fresh_picture, tmp_path
):
    master, worker = servers
    value = face_value(1)
    jobs = [
        {"name": "a", "face": value, "text": "a portrait photo", "seed": 1},
        {"name": "b", "face": value, "text": "a portrait photo", "seed": 1},
        {"name": "cut", "face": value[: len(value) // 2], "text": "a portrait photo", "seed": 1},
    ]
    template = identity_prompt("")
    template["pos"]["_meta"] = {"title": "positive"}  # the node whose text the client fills

    results = batch_client.run_jobs(
        [master.url, worker.url], template, jobs, tmp_path, batch_client.positive_text_node(template)
    )

    assert [(r.name, r.server, r.code) for r in results] == [
        ("a", master.url, None),
        ("b", worker.url, None),
        ("cut", master.url, "bad_face_value"),
    ]
    first, second = (np.array(Image.open(r.pictures[0])) for r in results[:2])
    assert np.array_equal(first, second)
    assert "InstantID Load Face" in results[2].message and "cut" in results[2].message

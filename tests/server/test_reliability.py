"""Reliability through a real server: bad pictures, masks, settings and model files give the exact user-facing error
(the node, the input, what is wrong, what to do), and every failing prompt is followed by a good one that succeeds
with the reference picture; repeated, alternating, queued and interrupted prompts leave no state behind; a long
session does not grow.

One server for the whole matrix (the session's). The references are computed on it freshly reset (ComfyUI's /free:
every cached node output dropped, models unloaded, so the loaders load anew, as on a fresh server): a patch left
behind on a shared model by any later prompt would change the good prompt's picture. Pictures at 128×128, one step, on the full-size
stand-ins.
"""

import copy
import io
import logging
import re
import threading
import time

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from helpers.server_prompts import FACE_A, FACE_B, SIZE, analysis_prompt, good_prompt, plain_prompt
from scripts.harness.comfy_server import PromptError
from scripts.harness.real_faces import real_faces

pytestmark = pytest.mark.server
logger = logging.getLogger(__name__)

NO_FACE = "reliability_no_face.jpg"
"""The real-face tier's photo without a face, copied into the server's input folder."""
GROUP = "reliability_group.jpg"
"""The real-face tier's photo of six people, copied into the server's input folder."""
REAL_PACK = "reliability_real_faces"
"""The real-face tier's face pack (real SCRFD-500M and w600k_mbf), linked into the server's insightface folder: the
stand-in detector finds only the magenta squares of the stand-in photos, so grey, 16-bit and resized real photos
need real face models."""


class Bench:
    """The session's server, the reference pictures, and the checks every test makes."""

    def __init__(self, server):
        self.server = server
        self.references: dict[str, np.ndarray] = {}

    def reset(self) -> None:
        """Drop every cached output and unload the models: ComfyUI applies /free after the next prompt, so a tiny
        prompt follows it."""
        self.server.post_json("/free", {"unload_models": True, "free_memory": True})
        self.server.run(
            {
                "e": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                "p": {"class_type": "PreviewImage", "inputs": {"images": ["e", 0]}},
            }
        )

    def picture(self, prompt: dict) -> np.ndarray:
        """Run a prompt; its saved picture (H×W×3 uint8)."""
        entry = self.server.run(prompt)
        (png,) = self.server.output_images(entry, "save")
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def failure(self, prompt: dict) -> dict:
        """Run a prompt that must fail while executing; ComfyUI's execution error for it."""
        with pytest.raises(PromptError) as raised:
            self.server.run(prompt)
        errors = [m[1] for m in raised.value.body["status"]["messages"] if m[0] == "execution_error"]
        assert len(errors) == 1, raised.value.body["status"]["messages"]
        return errors[0]

    def refusal(self, prompt: dict) -> dict:
        """Post a prompt ComfyUI must refuse before running; its node errors."""
        with pytest.raises(PromptError) as raised:
            self.server.post_prompt(prompt)
        return raised.value.body["node_errors"]

    def recovers(self) -> None:
        """The good prompt succeeds after whatever ran before and gives the reference picture; then the plain prompt
        (the checkpoint's model straight into the sampler, sampled again since the good prompt ran in between) gives
        the fresh server's plain picture: no model the server holds was left patched."""
        assert np.array_equal(self.picture(good_prompt(FACE_A)), self.references["A"])
        assert np.array_equal(self.picture(plain_prompt()), self.references["plain"])


@pytest.fixture(scope="module")
def bench(comfy_server, standins):
    """The bench, with the real no-face photo in the server's input folder and the references computed on the
    server freshly reset."""
    real = real_faces(fetch=False)
    Image.open(real.photos["mask_white.jpg"]).save(comfy_server.base_dir / "input" / NO_FACE)
    Image.open(real.photos["t1.jpg"]).save(comfy_server.base_dir / "input" / GROUP, quality=95)
    packs = comfy_server.base_dir / "models" / "insightface" / "models"
    packs.mkdir(parents=True, exist_ok=True)
    if not (packs / REAL_PACK).exists():
        (packs / REAL_PACK).symlink_to(real.pack_dir, target_is_directory=True)
    bench = Bench(comfy_server)
    bench.reset()
    bench.references["A"] = bench.picture(good_prompt(FACE_A))
    bench.references["B"] = bench.picture(good_prompt(FACE_B))  # the loaders' outputs are A's, as on a fresh server
    assert not np.array_equal(bench.references["A"], bench.references["B"])
    bench.references["plain"] = bench.picture(plain_prompt())
    assert not np.array_equal(bench.references["plain"], bench.references["A"])
    return bench


def write_input(bench: Bench, name: str, picture: Image.Image) -> str:
    """Save a picture into the server's input folder; its name for LoadImage."""
    picture.save(bench.server.base_dir / "input" / name)
    return name


def group_photo_as(bench: Bench, name: str, convert) -> str:
    """The real six-person photo, converted (grey, RGBA, 16-bit, resized), saved as an input."""
    source = Image.open(bench.server.base_dir / "input" / GROUP)
    return write_input(bench, name, convert(source))


# --- pictures ----------------------------------------------------------------------------------------------------------


def test_the_real_photo_without_a_face_is_an_error_naming_it_and_the_way_on_under_each_policy(bench):
    error = bench.failure(analysis_prompt(NO_FACE, "error"))
    assert error["node_id"] == "analyze" and error["node_type"] == "InstantIDAnalyzeFaces"
    message = error["exception_message"]
    assert "Reference image 0 (of 1" in message and "no face found" in message and "no_face to 'skip'" in message
    bench.recovers()

    skipped = bench.server.run(analysis_prompt(NO_FACE, "skip"))
    assert skipped["status"]["status_str"] == "success"
    passed = bench.picture(good_prompt(NO_FACE, no_face="pass through"))
    assert np.array_equal(passed, bench.references["plain"])  # model and conditioning passed through unchanged
    bench.recovers()


def test_a_batch_where_one_photo_has_no_face_follows_each_policy(bench):
    error = bench.failure(analysis_prompt(FACE_A, "error", batch_with=NO_FACE))
    assert "Reference image 1 (of 2" in error["exception_message"]
    skipped = bench.server.run(analysis_prompt(FACE_A, "skip", batch_with=NO_FACE))
    assert skipped["status"]["status_str"] == "success"
    bench.recovers()


def test_a_pose_photo_without_a_face_is_an_error_naming_the_pose_photo(bench):
    prompt = good_prompt(FACE_A)
    prompt["pose"] = {"class_type": "LoadImage", "inputs": {"image": NO_FACE}}
    prompt["apply"]["inputs"]["image_kps"] = ["pose", 0]

    error = bench.failure(prompt)

    assert error["node_id"] == "apply" and "Pose photo (image_kps)" in error["exception_message"]
    bench.recovers()


def test_several_faces_grey_rgba_16_bit_odd_sizes_and_a_single_pixel_are_handled(bench):
    names = {
        "six faces": GROUP,
        "grey": group_photo_as(bench, "rel_grey.png", lambda p: p.convert("L")),
        "rgba": group_photo_as(bench, "rel_rgba.png", lambda p: p.convert("RGBA")),
        "odd size": group_photo_as(bench, "rel_odd.png", lambda p: p.crop((7, 3, 1008, 670))),
    }
    for what, name in names.items():
        entry = bench.server.run(analysis_prompt(name, face_pack=REAL_PACK))
        assert entry["status"]["status_str"] == "success", what
    sixteen = group_photo_as(
        bench, "rel_16bit.png", lambda p: Image.fromarray(np.asarray(p.convert("L"), np.uint16) * 257)
    )
    # Load Image clips a 16-bit greyscale PNG to black and white: the error says so, and how to re-save it
    message = bench.failure(analysis_prompt(sixteen, face_pack=REAL_PACK))["exception_message"]
    assert "is only pure black and white" in message and "re-save the picture as an 8-bit PNG" in message
    tiny = write_input(bench, "rel_1x1.png", Image.new("RGB", (1, 1), (120, 90, 60)))
    error = bench.failure(analysis_prompt(tiny, face_pack=REAL_PACK))
    assert "Reference image 0 (of 1, counted from 0; 1×1 px)" in error["exception_message"], error
    bench.recovers()


def test_a_6000_by_4000_photo_is_analysed_and_its_time_and_the_servers_memory_are_reported(bench):
    big = group_photo_as(bench, "rel_6000x4000.jpg", lambda p: p.convert("RGB").resize((6000, 4000)))
    process = psutil.Process(bench.server.process.pid)
    before = process.memory_info().rss
    samples, running = [before], threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            samples.append(process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        entry = bench.server.run(analysis_prompt(big, face_pack=REAL_PACK))
    finally:
        seconds = time.perf_counter() - started
        running.clear()
        sampler.join()

    assert entry["status"]["status_str"] == "success"
    logger.info(
        "6000×4000 photo: face analysis prompt %.1f s (load, analysis, preview); server RSS %.2f GB before, "
        "peak %.2f GB (+%.0f MB)",
        seconds,
        before / 2**30,
        max(samples) / 2**30,
        (max(samples) - before) / 2**20,
    )
    bench.recovers()


# --- masks and settings ------------------------------------------------------------------------------------------------


def with_mask(width: int, height: int, value: float, batch: int = 1) -> dict:
    """The good prompt with a SolidMask of this size and value (repeated `batch` times) on Apply InstantID."""
    prompt = good_prompt(FACE_A)
    prompt["mask"] = {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}
    mask = ["mask", 0]
    if batch > 1:
        prompt["masks"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["as_image", 0], "amount": batch}}
        prompt["as_image"] = {"class_type": "MaskToImage", "inputs": {"mask": ["mask", 0]}}
        prompt["back"] = {"class_type": "ImageToMask", "inputs": {"image": ["masks", 0], "channel": "red"}}
        mask = ["back", 0]
    prompt["apply"]["inputs"]["mask"] = mask
    return prompt


def test_a_mask_of_another_aspect_ratio_is_an_error_naming_the_node_and_the_sizes(bench):
    error = bench.failure(with_mask(SIZE, SIZE // 2, 1.0))

    message = error["exception_message"]
    assert "The mask given to 'Apply InstantID'" in message and f"{SIZE}×{SIZE // 2}" in message
    assert "use a mask with the image's aspect ratio" in message
    bench.recovers()


def test_masks_of_ones_zeros_and_another_batch_size_give_the_expected_pictures(bench):
    ones = bench.picture(with_mask(SIZE, SIZE, 1.0))
    zeros = bench.picture(with_mask(SIZE, SIZE, 0.0))
    two = bench.picture(with_mask(SIZE // 2, SIZE // 2, 1.0, batch=2))
    no_identity = bench.picture(good_prompt(FACE_A, weight=0.0))

    assert np.array_equal(ones, bench.references["A"])  # a mask of ones limits nothing
    assert np.array_equal(zeros, no_identity)  # a mask of zeros keeps the identity out everywhere
    assert np.array_equal(two, bench.references["A"])  # two masks for one picture: the first applies
    bench.recovers()


def test_start_after_end_is_refused_before_anything_runs(bench):
    errors = bench.refusal(good_prompt(FACE_A, start_percent=0.8, end_percent=0.2))

    details = " ".join(e["details"] for e in errors["apply"]["errors"])
    assert "Apply InstantID: start_percent (0.8) is after end_percent (0.2)" in details, details
    bench.recovers()


@pytest.mark.parametrize("weight", [0.0, 5.0])
def test_weights_at_their_limits_give_finite_pictures(bench, weight):
    picture = bench.picture(good_prompt(FACE_A, weight=weight))

    assert picture.std() > 0  # a picture, not a flat black or NaN frame
    bench.recovers()


# --- model files through the loaders ------------------------------------------------------------------------------------


def adapter_prompt(name: str) -> dict:
    """The adapter loader alone, with a file of models/instantid, feeding the good pipeline."""
    prompt = good_prompt(FACE_A)
    prompt["adapter"]["inputs"]["adapter_file"] = name
    return prompt


def write_model(bench: Bench, folder: str, name: str, content: bytes | None = None, tensors: dict | None = None):
    """A file in the server's own models/<folder>/."""
    path = bench.server.base_dir / "models" / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if tensors is not None:
        torch.save(tensors, path)
    else:
        path.write_bytes(content)
    return path


def plain_ip_adapter(plus: bool = False) -> dict:
    """A plain SDXL IP-Adapter's layout, or an IP-Adapter Plus's (a Resampler fed by 1280-wide CLIP features)."""
    if plus:
        proj = {
            "latents": torch.zeros(1, 16, 64),
            "proj_in.weight": torch.zeros(64, 1280),
            "proj_out.weight": torch.zeros(2048, 64),
        }
        proj |= {"norm_out.weight": torch.ones(2048), "norm_out.bias": torch.zeros(2048)}
    else:
        proj = {"proj.weight": torch.zeros(4 * 2048, 1280), "proj.bias": torch.zeros(4 * 2048)}
        proj |= {"norm.weight": torch.ones(2048), "norm.bias": torch.zeros(2048)}
    return {
        "image_proj": proj,
        "ip_adapter": {f"{n}.to_{kv}_ip.weight": torch.zeros(8, 2048) for n in (1, 3) for kv in "kv"},
    }


class WritesAFile:
    """A pickle payload that would create a file when unpickled without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


BAD_ADAPTERS = {
    "lfs.bin": (
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1691134141\n",
        "Git LFS pointer",
    ),
    "page.bin": (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML web page"),
}


@pytest.mark.parametrize("name", BAD_ADAPTERS)
def test_a_pointer_or_a_web_page_in_the_adapters_place_is_named(bench, name):
    content, what = BAD_ADAPTERS[name]
    write_model(bench, "instantid", name, content)

    error = bench.failure(adapter_prompt(name))

    assert error["node_id"] == "adapter" and what in error["exception_message"], error["exception_message"]
    bench.recovers()


def test_a_truncated_adapter_and_other_ip_adapters_are_named(bench, standins):
    whole = (standins / "models" / "instantid" / "ip-adapter.bin").read_bytes()
    write_model(bench, "instantid", "truncated.bin", whole[: len(whole) // 3])
    write_model(bench, "instantid", "plain.bin", tensors=plain_ip_adapter())
    write_model(bench, "instantid", "plus.bin", tensors=plain_ip_adapter(plus=True))

    for name, says in (
        ("truncated.bin", "truncated"),
        ("plain.bin", "plain IP-Adapter"),
        ("plus.bin", "IP-Adapter Plus"),
    ):
        error = bench.failure(adapter_prompt(name))
        assert error["node_id"] == "adapter" and says in error["exception_message"], (name, error["exception_message"])
    bench.recovers()


def test_a_pickle_whose_payload_would_create_a_file_is_refused_without_running_it(bench, tmp_path):
    marker = tmp_path / "payload-ran"
    write_model(bench, "instantid", "evil.bin", tensors={"image_proj": WritesAFile(marker)})

    error = bench.failure(adapter_prompt("evil.bin"))

    assert not marker.exists()
    assert error["node_id"] == "adapter" and "evil.bin" in error["exception_message"]
    bench.recovers()


def test_a_canny_controlnet_in_identitynets_place_is_named(bench):
    prompt = good_prompt(FACE_A)
    prompt["cn"]["inputs"]["control_net_name"] = "diffusers_xl_canny_mid.safetensors"

    error = bench.failure(prompt)

    assert error["node_id"] == "apply" and "transformer blocks" in error["exception_message"]
    assert "not IdentityNet" in error["exception_message"] or "smaller SDXL ControlNet" in error["exception_message"]
    bench.recovers()


SD15_CONTROLNET = {
    "image_size": 32,
    "in_channels": 4,
    "hint_channels": 3,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_middle": 1,
    "use_spatial_transformer": True,
    "use_linear_in_transformer": False,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "legacy": False,
    "use_checkpoint": False,
}
"""An SD1.5 ControlNet's configuration (the layout of lllyasviel's ControlNet 1.1 checkpoints)."""


def write_sd15_controlnet(comfy_host, path) -> None:
    """A full-size SD1.5 ControlNet in its checkpoint layout ('control_model.' keys; zero weights, fp16), which
    ComfyUI's ControlNet loader detects and loads as SD1.5 (built with the in-process host's ComfyUI, on the CPU)."""
    import comfy.cldm.cldm
    import comfy.ops
    from safetensors.torch import save_file

    net = comfy.cldm.cldm.ControlNet(operations=comfy.ops.disable_weight_init, dtype=torch.float16, **SD15_CONTROLNET)
    state = {f"control_model.{key}": torch.zeros_like(value) for key, value in net.state_dict().items()}
    del net
    save_file(state, str(path))


def test_an_sd15_controlnet_in_identitynets_place_is_named(bench, comfy_host):
    path = bench.server.base_dir / "models" / "controlnet" / "sd15_controlnet.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sd15_controlnet(comfy_host, path)
    prompt = good_prompt(FACE_A)
    prompt["cn"]["inputs"]["control_net_name"] = "sd15_controlnet.safetensors"

    try:
        error = bench.failure(prompt)
    finally:
        path.unlink()

    assert error["node_id"] == "apply", error
    assert (
        "not an SDXL ControlNet with 2048-wide cross-attention (cross-attention width 768" in error["exception_message"]
    )
    bench.recovers()


def test_a_nested_or_empty_face_pack_is_named_with_the_fix(bench, standins):
    root = bench.server.base_dir / "models" / "insightface" / "models"
    (root / "empty_pack").mkdir(parents=True, exist_ok=True)
    nested = root / "nested_pack" / "nested_pack"
    nested.mkdir(parents=True, exist_ok=True)
    for onnx in (standins / "models" / "insightface" / "models" / "antelopev2").glob("*.onnx"):
        if not (nested / onnx.name).exists():
            (nested / onnx.name).symlink_to(onnx)

    for pack, says in (("empty_pack", "holds no .onnx file"), ("nested_pack", "nested one folder too deep")):
        prompt = good_prompt(FACE_A)
        prompt["faces"]["inputs"]["face_pack"] = pack
        error = bench.failure(prompt)
        assert error["node_id"] == "faces" and says in error["exception_message"], error["exception_message"]
    bench.recovers()


# --- state -------------------------------------------------------------------------------------------------------------


def test_the_same_prompt_after_another_face_gives_the_identical_picture_and_each_face_its_fresh_result(bench):
    a = bench.picture(good_prompt(FACE_A))
    b = bench.picture(good_prompt(FACE_B))
    a_again = bench.picture(good_prompt(FACE_A))

    assert np.array_equal(a, bench.references["A"]) and np.array_equal(a_again, a)
    assert np.array_equal(b, bench.references["B"]) and not np.array_equal(a, b)


def test_two_apply_nodes_on_one_model_do_not_leak_into_each_other(bench):
    prompt = good_prompt(FACE_A)
    branch = {key: copy.deepcopy(prompt[key]) for key in ("photo", "apply", "sampler", "decode", "save")}
    branch["photo"]["inputs"]["image"] = FACE_B
    renamed = {f"{key}2": node for key, node in branch.items()}
    for node in renamed.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and f"{value[0]}2" in renamed:
                node["inputs"][name] = [f"{value[0]}2", value[1]]
    prompt |= renamed

    entry = bench.server.run(prompt)

    first, second = (
        np.asarray(Image.open(io.BytesIO(bench.server.output_images(entry, node)[0])).convert("RGB"))
        for node in ("save", "save2")
    )
    assert np.array_equal(first, bench.references["A"]) and np.array_equal(second, bench.references["B"])


def test_two_prompts_queued_back_to_back_both_complete_with_their_pictures(bench):
    first = bench.server.post_prompt(good_prompt(FACE_B, seed=7))
    second = bench.server.post_prompt(good_prompt(FACE_A))

    bench.server.wait(first)
    entry = bench.server.wait(second)

    (png,) = bench.server.output_images(entry, "save")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), bench.references["A"])


def test_an_interrupt_during_sampling_leaves_nothing_behind(bench):
    logged = len(bench.server.log_path.read_bytes())
    prompt_id = bench.server.post_prompt(good_prompt(FACE_B, seed=3, steps=40))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until the sampler's progress bar shows a step done
        if re.search(rb"\b[1-9]\d?/40 \[", bench.server.log_path.read_bytes()[logged:]):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the sampler never started")
    bench.server.post_json("/interrupt", {})

    with pytest.raises(PromptError) as raised:
        bench.server.wait(prompt_id)
    kinds = [kind for kind, _ in raised.value.body["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    bench.recovers()


def test_twenty_prompts_in_a_row_do_not_grow_the_servers_memory(bench):
    process = psutil.Process(bench.server.process.pid)
    curve = []
    for seed in range(20):
        bench.picture(good_prompt(FACE_A if seed % 2 else FACE_B, seed=100 + seed))
        curve.append(process.memory_info().rss / 2**20)
    logger.info("server RSS after each of 20 prompts, MB: %s", ", ".join(f"{mb:.0f}" for mb in curve))

    assert max(curve[5:]) - curve[5] < 300, curve  # after warming up, under 300 MB of growth over 15 prompts

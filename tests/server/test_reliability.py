"""Reliability through a real server: bad pictures, masks, settings and model files give the exact user-facing error
(the node, the input, what is wrong, what to do), and every failing prompt is followed by a good one that succeeds
with the reference picture; repeated, alternating, queued and interrupted prompts leave no state behind; a long
session holds no more InstantID objects than one prompt does.

One server for the whole matrix (the session's), on the tiny SDXL-topology models of the test node pack
(tests/comfy_test_pack: the size of the models proves nothing here; the e2e lane runs the full-size stand-ins). The
references are computed on it freshly reset (ComfyUI's /free: every cached node output dropped, models unloaded, so
the loaders load anew, as on a fresh server): a patch left behind on a shared model by any later prompt would change
the good prompt's picture. Pictures at 128×128, one step; the test decoder maps the latent to the picture one to one,
so equal pictures mean equal latents.
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
import safetensors.torch
import torch
from PIL import Image

from helpers import server_prompts
from helpers.server_prompts import FACE_A, FACE_B, SIZE, TINY, TINY_ADAPTER, analysis_prompt
from helpers.tiny_models import tiny_adapter_state_dict
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
MAX_LARGE_PHOTO_GROWTH_MB = 1500
"""How much the server may grow while it analyses one 6000×4000 photo: the photo is 69 MB as 8-bit RGB and 288 MB as
ComfyUI's float32 IMAGE; the analysis scales it to a 1280-px long side first."""
INTERRUPTED_STEPS = 2000
"""Steps of the prompt that is interrupted: far more than the tiny model runs before the interrupt arrives."""


def good_prompt(photo: str = FACE_A, **kwargs) -> dict:
    """The all-in-one pipeline on the tiny models (helpers.server_prompts.good_prompt)."""
    return server_prompts.good_prompt(photo, models=TINY, **kwargs)


def plain_prompt() -> dict:
    """The pipeline without InstantID on the tiny models."""
    return server_prompts.plain_prompt(models=TINY)


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
        return self.saved_picture(self.server.run(prompt))

    def saved_picture(self, entry: dict, node: str = "save") -> np.ndarray:
        """The one picture node `node` of a finished prompt saved (H×W×3 uint8)."""
        (png,) = self.server.output_images(entry, node)
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))

    def latent(self, prompt: dict) -> torch.Tensor:
        """Run a prompt with its sampled latent saved too; that latent (float32: a picture would hide NaNs)."""
        prompt = prompt | {
            "save_latent": {
                "class_type": "SaveLatent",
                "inputs": {"samples": ["sampler", 0], "filename_prefix": "reliability_latent"},
            }
        }
        (saved,) = self.server.run(prompt)["outputs"]["save_latent"]["latents"]
        path = self.server.base_dir / "output" / saved["subfolder"] / saved["filename"]
        return safetensors.torch.load_file(str(path))["latent_tensor"].float()

    def census(self) -> dict:
        """The InstantID objects alive in the server (the test node pack's census)."""
        return self.server.get_json("/instantid_test/census")

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
    """The bench, with the tiny models' adapter in the server's models/instantid, the real no-face and group photos
    in its input folder, and the references computed on the server freshly reset."""
    adapters = comfy_server.base_dir / "models" / "instantid"
    adapters.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_adapter_state_dict(), adapters / TINY_ADAPTER)
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


def chosen_face_box(bench: Bench, photo: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Analyse a photo with the real face pack; the chosen (largest) face's box from the node's face_mask output, as
    (left, top, right, bottom) over the photo's (width, height)."""
    prompt = analysis_prompt(photo, face_pack=REAL_PACK)
    prompt["mask_picture"] = {"class_type": "MaskToImage", "inputs": {"mask": ["analyze", 2]}}
    prompt["save_mask"] = {"class_type": "PreviewImage", "inputs": {"images": ["mask_picture", 0]}}
    mask = bench.saved_picture(bench.server.run(prompt), "save_mask")[..., 0] > 127
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], float), (mask.shape[1], mask.shape[0])


def test_a_6000_by_4000_photo_finds_the_same_face_as_the_photo_it_was_scaled_from_within_a_bounded_memory(bench):
    big = group_photo_as(bench, "rel_6000x4000.jpg", lambda p: p.convert("RGB").resize((6000, 4000)))
    small_box, small_size = chosen_face_box(bench, GROUP)
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
        big_box, big_size = chosen_face_box(bench, big)
    finally:
        seconds = time.perf_counter() - started
        running.clear()
        sampler.join()

    growth = (max(samples) - before) / 2**20
    logger.info(
        "6000×4000 photo: analysis prompt %.1f s; server RSS %.2f GB before, +%.0f MB at peak",
        seconds,
        before / 2**30,
        growth,
    )
    assert big_size == (6000, 4000)
    scale = np.array([big_size[0] / small_size[0], big_size[1] / small_size[1]] * 2)
    face_width = small_box[2] - small_box[0]
    assert np.abs(big_box / scale - small_box).max() < 0.1 * face_width, (big_box / scale, small_box)
    assert growth < MAX_LARGE_PHOTO_GROWTH_MB, f"the server grew by {growth:.0f} MB for one 6000×4000 photo"
    bench.recovers()


# --- masks and settings ------------------------------------------------------------------------------------------------


def with_mask(width: int, height: int, value: float) -> dict:
    """The good prompt with a SolidMask of this size and value on Apply InstantID."""
    prompt = good_prompt(FACE_A)
    prompt["mask"] = {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}
    prompt["apply"]["inputs"]["mask"] = ["mask", 0]
    return prompt


def with_masks(size: int, values: tuple[float, float]) -> dict:
    """The good prompt with a batch of two size×size SolidMasks of these values, in order, on Apply InstantID."""
    prompt = good_prompt(FACE_A)
    for i, value in enumerate(values):
        prompt[f"mask{i}"] = {"class_type": "SolidMask", "inputs": {"value": value, "width": size, "height": size}}
        prompt[f"as_image{i}"] = {"class_type": "MaskToImage", "inputs": {"mask": [f"mask{i}", 0]}}
    prompt["masks"] = {"class_type": "ImageBatch", "inputs": {"image1": ["as_image0", 0], "image2": ["as_image1", 0]}}
    prompt["back"] = {"class_type": "ImageToMask", "inputs": {"image": ["masks", 0], "channel": "red"}}
    prompt["apply"]["inputs"]["mask"] = ["back", 0]
    return prompt


def test_a_mask_of_another_aspect_ratio_is_an_error_naming_the_node_and_the_sizes(bench):
    error = bench.failure(with_mask(SIZE, SIZE // 2, 1.0))

    message = error["exception_message"]
    assert "The mask given to 'Apply InstantID' (node #apply)" in message and f"{SIZE}×{SIZE // 2}" in message
    assert "use a mask with the image's aspect ratio" in message
    bench.recovers()


def test_masks_of_ones_zeros_and_another_batch_size_give_the_expected_pictures(bench):
    ones = bench.picture(with_mask(SIZE, SIZE, 1.0))
    zeros = bench.picture(with_mask(SIZE, SIZE, 0.0))
    zeros_then_ones = bench.picture(with_masks(SIZE // 2, (0.0, 1.0)))
    ones_then_zeros = bench.picture(with_masks(SIZE // 2, (1.0, 0.0)))
    no_identity = bench.picture(good_prompt(FACE_A, weight=0.0))

    assert np.array_equal(ones, bench.references["A"])  # a mask of ones limits nothing
    assert np.array_equal(zeros, no_identity)  # a mask of zeros keeps the identity out everywhere
    assert not np.array_equal(zeros, ones)
    # two masks of another size for one picture: the first applies, scaled to the picture
    assert np.array_equal(zeros_then_ones, zeros) and np.array_equal(ones_then_zeros, ones)
    bench.recovers()


def test_start_after_end_is_refused_before_anything_runs(bench):
    errors = bench.refusal(good_prompt(FACE_A, start_percent=0.8, end_percent=0.2))

    details = " ".join(e["details"] for e in errors["apply"]["errors"])
    assert "Apply InstantID: start_percent (0.8) is after end_percent (0.2)" in details, details
    bench.recovers()


def test_weights_at_their_limits_give_finite_latents_that_follow_the_weight(bench):
    latents = {weight: bench.latent(good_prompt(FACE_A, weight=weight)) for weight in (0.0, 0.8, 5.0)}

    for weight, latent in latents.items():
        assert torch.isfinite(latent).all(), f"weight {weight}: the latent has NaN or inf"
    # the identity term grows with the weight: 0 < 0.8 < 5 move the latent further from weight 0's
    moved = {weight: float((latents[weight] - latents[0.0]).norm()) for weight in (0.8, 5.0)}
    assert 0 < moved[0.8] < moved[5.0], moved
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


def test_a_truncated_adapter_and_other_ip_adapters_are_named(bench):
    whole = (bench.server.base_dir / "models" / "instantid" / TINY_ADAPTER).read_bytes()
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


def test_a_mid_sdxl_or_an_sd15_controlnet_in_identitynets_place_is_named(bench):
    says = {
        "sdxl mid": ("transformer blocks", "not IdentityNet"),
        "sd15": ("not an SDXL ControlNet with 2048-wide cross-attention (cross-attention width 768",),
    }
    for kind, phrases in says.items():
        prompt = good_prompt(FACE_A)
        prompt["cn"]["inputs"]["kind"] = kind

        error = bench.failure(prompt)

        assert error["node_id"] == "apply", error
        assert all(phrase in error["exception_message"] for phrase in phrases), (kind, error["exception_message"])
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


def test_two_prompts_queued_back_to_back_both_complete_with_their_own_pictures(bench):
    first = bench.server.post_prompt(good_prompt(FACE_B, weight=0.5))  # both validated before the first runs
    second = bench.server.post_prompt(good_prompt(FACE_A))

    first_picture = bench.saved_picture(bench.server.wait(first))
    second_picture = bench.saved_picture(bench.server.wait(second))

    assert np.array_equal(second_picture, bench.references["A"])
    assert np.array_equal(first_picture, bench.picture(good_prompt(FACE_B, weight=0.5)))  # as when it runs alone
    assert not np.array_equal(first_picture, bench.references["B"])  # the weight of 0.5 showed


def test_an_interrupt_during_sampling_leaves_nothing_behind(bench):
    logged = len(bench.server.log_path.read_bytes())
    prompt_id = bench.server.post_prompt(good_prompt(FACE_B, seed=3, steps=INTERRUPTED_STEPS))
    deadline = time.monotonic() + 300
    progress = re.compile(rb"\b[1-9]\d*/%d \[" % INTERRUPTED_STEPS)
    while time.monotonic() < deadline:  # until the sampler's progress bar shows a step done
        if progress.search(bench.server.log_path.read_bytes()[logged:]):
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


def test_twenty_prompts_in_a_row_hold_no_more_instantid_objects_than_one_does(bench):
    censuses = []
    for seed in range(20):
        bench.picture(good_prompt(FACE_A if seed % 2 else FACE_B, seed=100 + seed))
        censuses.append(bench.census())
    logger.info("InstantID objects alive after each of 20 prompts: %s", censuses)

    one_prompt = censuses[1]  # after a prompt of each face: what the cached outputs of one prompt hold
    assert one_prompt["identity_kv"] >= 1 and one_prompt["attention_patches"] >= 1, one_prompt
    assert all(census == one_prompt for census in censuses[2:]), censuses

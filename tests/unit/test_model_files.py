"""Model files are identified by their content (keys, shapes, signatures), never by their names."""

import os
import zipfile

import adapter_fixtures as fx
import pytest
import torch

from instantid_core import model_files as mf
from instantid_core.errors import InstantIDError

pytestmark = pytest.mark.unit

LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:0ff9d6ba0c2e6f8b6c9b5e2a3f1e0d6c4b3a29181716151413121110090807060\n"
    b"size 1691659891\n"
)


def write_state(obj: dict, path):
    """Save a (nested or flat) state dict as .bin, or flattened as .safetensors, according to path's suffix."""
    if path.suffix == ".safetensors":
        nested = any(isinstance(v, dict) for v in obj.values())
        return fx.save_safetensors(fx.flatten(obj) if nested else obj, path)
    return fx.save_bin(obj, path)


def unknown_ip_adapter() -> dict:
    return {
        "image_proj": {"mystery.weight": torch.zeros(4, 4)},
        "ip_adapter": fx.ip_adapter_kv_state_dict(2048, {1: 8}),
    }


STATE_DICTS = {
    "InstantID adapter": (
        fx.instantid_nested,
        mf.FileKind.INSTANTID_ADAPTER,
        "an InstantID adapter (Resampler 32→4×48, 5 K/V pairs)",
    ),
    "plain IP-Adapter": (
        lambda: fx.plain_ip_adapter(clip_dim=1024),
        mf.FileKind.PLAIN_IP_ADAPTER,
        "a plain IP-Adapter (image projection from 1024-wide CLIP image embeddings to 4 tokens of 2048; for SDXL)",
    ),
    "IP-Adapter Plus": (
        fx.ip_adapter_plus,
        mf.FileKind.IP_ADAPTER_PLUS,
        "an IP-Adapter Plus (a Resampler fed by 1280-wide CLIP",
    ),
    "IP-Adapter FaceID": (
        fx.ip_adapter_faceid,
        mf.FileKind.IP_ADAPTER_FACEID,
        "an IP-Adapter FaceID (MLP projection from the 512-d face embedding to 4 tokens of 768; for SD1.5)",
    ),
    "IP-Adapter FaceID Plus": (
        fx.ip_adapter_faceid_plus,
        mf.FileKind.IP_ADAPTER_FACEID_PLUS,
        "an IP-Adapter FaceID Plus",
    ),
    "IP-Adapter Full Face": (
        fx.ip_adapter_full_face,
        mf.FileKind.IP_ADAPTER_FULL_FACE,
        "an IP-Adapter Full Face (for SD1.5)",
    ),
    "unknown IP-Adapter": (unknown_ip_adapter, mf.FileKind.IP_ADAPTER_UNKNOWN, "an IP-Adapter-style file"),
    "diffusers ControlNet": (
        fx.controlnet_diffusers,
        mf.FileKind.SDXL_CONTROLNET,
        "a ControlNet for SDXL (diffusers layout",
    ),
    "ldm ControlNet": (fx.controlnet_ldm, mf.FileKind.CONTROLNET, "a ControlNet for SD1.5 (ldm layout"),
    "SD1.5 checkpoint": (fx.sd15_checkpoint, mf.FileKind.SD15_CHECKPOINT, "an SD1.5 checkpoint"),
    "SD1.5 checkpoint under state_dict": (
        lambda: {"state_dict": fx.sd15_checkpoint()},
        mf.FileKind.SD15_CHECKPOINT,
        "an SD1.5 checkpoint",
    ),
    "SD2 checkpoint": (fx.sd2_checkpoint, mf.FileKind.SD2_CHECKPOINT, "an SD2.x checkpoint"),
    "SDXL checkpoint": (fx.sdxl_checkpoint, mf.FileKind.SDXL_CHECKPOINT, "an SDXL checkpoint"),
    "bare UNet": (
        fx.diffusers_unet,
        mf.FileKind.UNET,
        "a bare UNet (diffusers layout, cross-attention width 2048: SDXL)",
    ),
    "Flux": (fx.flux_model, mf.FileKind.FLUX, "a Flux model"),
    "LoRA": (fx.lora, mf.FileKind.LORA, "a LoRA (2 low-rank pairs)"),
    "CLIP vision": (fx.clip_vision, mf.FileKind.CLIP_VISION, "a CLIP vision encoder (width 1280)"),
    "VAE": (fx.vae, mf.FileKind.VAE, "a VAE"),
    "unknown tensors": (
        lambda: {"foo.weight": torch.zeros(2)},
        mf.FileKind.UNRECOGNISED,
        "an unrecognised set of 1 tensors (first keys: foo.weight)",
    ),
}


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
@pytest.mark.parametrize("name", list(STATE_DICTS))
def test_a_state_dict_file_is_identified_by_its_keys_and_shapes(tmp_path, name, suffix):
    build, kind, description = STATE_DICTS[name]
    path = write_state(build(), tmp_path / f"ip-adapter{suffix}")  # the same misleading name for every kind

    identity = mf.identify(path)

    assert identity.kind == kind
    assert identity.description.startswith(description)


def test_a_legacy_format_bin_is_identified_too(tmp_path):
    path = fx.save_legacy_bin(fx.instantid_nested(), tmp_path / "ip-adapter.bin")

    assert mf.identify(path).kind == mf.FileKind.INSTANTID_ADAPTER


@pytest.mark.parametrize(
    "content, kind, phrases",
    [
        (b"", mf.FileKind.EMPTY, ["an empty file (0 bytes)", "download it again"]),
        (
            LFS_POINTER,
            mf.FileKind.LFS_POINTER,
            ["Git LFS pointer", f"({len(LFS_POINTER)} bytes)", "1,691,659,891 bytes"],
        ),
        (
            b"\n<!DOCTYPE html><html><head><title>Hugging Face</title></head></html>",
            mf.FileKind.HTML_PAGE,
            ["HTML web page", "/resolve/"],
        ),
        (b"Access denied: you must accept the licence\n", mf.FileKind.TEXT_FILE, ["a text file", "'Access denied"]),
        (bytes(range(64)), mf.FileKind.UNRECOGNISED, ["first bytes 00 01 02 03 04 05 06 07"]),
    ],
    ids=["empty", "LFS pointer", "HTML page", "text", "binary noise"],
)
def test_a_file_that_is_not_a_model_says_what_it_is(tmp_path, content, kind, phrases):
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(content)

    identity = mf.identify(path)

    assert identity.kind == kind
    for phrase in phrases:
        assert phrase in identity.description


def test_a_zip_archive_that_is_not_a_torch_file_lists_its_entries(tmp_path):
    path = tmp_path / "antelopev2.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("antelopev2/glintr100.onnx", b"x")

    identity = mf.identify(path)

    assert identity.kind == mf.FileKind.ZIP_ARCHIVE and "antelopev2/glintr100.onnx" in identity.description


def test_a_missing_file_is_identified_as_missing(tmp_path):
    assert mf.identify(tmp_path / "nowhere.bin").kind == mf.FileKind.MISSING


def save_zip_bin(path):
    return fx.save_bin(fx.instantid_nested(), path)


def save_legacy_bin(path):
    return fx.save_legacy_bin(fx.instantid_nested(), path)


def save_flat_safetensors(path):
    return fx.save_safetensors(fx.flatten(fx.instantid_nested()), path)


@pytest.mark.parametrize(
    "save, suffix",
    [(save_zip_bin, ".bin"), (save_legacy_bin, ".bin"), (save_flat_safetensors, ".safetensors")],
    ids=["zip .bin", "legacy .bin", ".safetensors"],
)
@pytest.mark.parametrize("keep", [0.5, 0.99, 20], ids=["half", "all but the tail", "20 bytes"])
def test_a_cut_download_is_identified_as_truncated(tmp_path, save, suffix, keep):
    path = save(tmp_path / f"ip-adapter{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])

    identity = mf.identify(path)

    assert identity.kind == mf.FileKind.TRUNCATED
    assert "download it again" in identity.description


@pytest.mark.parametrize("content", [b"\x80", b"\x80\x02\x8a"], ids=["one byte", "three bytes"])
def test_a_pickle_cut_after_a_few_bytes_is_identified_without_crashing(tmp_path, content):
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(content)

    assert mf.identify(path).kind in (mf.FileKind.TRUNCATED, mf.FileKind.UNRECOGNISED)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip format", "legacy format"])
def test_a_pickle_with_code_is_refused_for_safety_and_its_code_never_runs(tmp_path, legacy):
    marker = tmp_path / "code-ran"
    path = fx.save_code_pickle(tmp_path / "ip-adapter.bin", marker, legacy=legacy)

    identity = mf.identify(path)
    with pytest.raises(InstantIDError, match="refused for safety") as raised:
        mf.load_tensors(path)

    assert identity.kind == mf.FileKind.UNSAFE_PICKLE
    assert str(path) in str(raised.value)
    assert not marker.exists()


def test_a_pickle_holding_a_function_is_refused(tmp_path):
    path = fx.save_bin({"image_proj": {"latents": torch.zeros(1)}, "hook": os.system}, tmp_path / "ip-adapter.bin")

    assert mf.identify(path).kind == mf.FileKind.UNSAFE_PICKLE


def test_the_code_pickle_fixture_really_runs_code_when_unpickled_unsafely(tmp_path):
    """The control for the refusal tests: without weights_only, the same file creates its marker."""
    marker = tmp_path / "code-ran"
    path = fx.save_code_pickle(tmp_path / "ip-adapter.bin", marker)

    torch.load(path, weights_only=False)

    assert marker.is_dir()


def test_an_onnx_file_is_described_by_its_signature(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input.1"], ["683"])],
        "recognition",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 3, 112, 112])],
    )
    path = tmp_path / "glintr100.onnx"
    onnx.save(helper.make_model(graph), str(path))

    identity = mf.identify(path)

    assert identity.kind == mf.FileKind.ONNX
    assert "inputs input.1 1×3×112×112" in identity.description


def test_identify_reads_only_the_safetensors_header(tmp_path, monkeypatch):
    import safetensors
    import safetensors.torch

    def refuse(*args, **kwargs):
        raise AssertionError("identify loaded tensor data")

    path = save_flat_safetensors(tmp_path / "ip-adapter.safetensors")
    for module, name in ((safetensors.torch, "load_file"), (safetensors.torch, "load"), (safetensors, "safe_open")):
        monkeypatch.setattr(module, name, refuse)

    assert mf.identify(path).kind == mf.FileKind.INSTANTID_ADAPTER


def test_identify_shapes_of_an_empty_table_says_it_holds_no_tensors():
    assert mf.identify_shapes({}) == mf.FileIdentity(mf.FileKind.UNRECOGNISED, "a file that holds no tensors")


@pytest.mark.parametrize(
    "save", [save_zip_bin, save_legacy_bin, save_flat_safetensors], ids=["zip .bin", "legacy .bin", ".safetensors"]
)
def test_load_tensors_returns_every_tensor_with_dotted_keys(tmp_path, save):
    expected = fx.flatten(fx.instantid_nested())
    path = save(tmp_path / ("a.safetensors" if save is save_flat_safetensors else "a.bin"))

    tensors = mf.load_tensors(path)

    assert set(tensors) == set(expected)
    assert all(torch.equal(tensors[key], expected[key]) for key in expected)
    assert {t.device.type for t in tensors.values()} == {"cpu"}


def test_load_tensors_of_a_placeholder_names_the_path_and_what_it_is(tmp_path):
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(LFS_POINTER)

    with pytest.raises(InstantIDError) as raised:
        mf.load_tensors(path)

    assert str(path) in str(raised.value) and "Git LFS pointer" in str(raised.value)

"""Loading InstantID adapters in every accepted form, and refusing everything else with a message that names it."""

import os

import adapter_fixtures as fx
import pytest
import torch
from adapter_fixtures import TINY_LAYER_WIDTHS, TinyDims, flatten, instantid_nested, save_bin, save_safetensors

from instantid_core.adapter import compute_identity_kv, load_adapter
from instantid_core.errors import InstantIDError
from instantid_core.resampler import Resampler

pytestmark = pytest.mark.unit

FORMS = {
    "nested .bin": lambda nested, tmp: save_bin(nested, tmp / "a.bin"),
    "flattened .bin": lambda nested, tmp: save_bin(flatten(nested), tmp / "a.bin"),
    "flattened .safetensors": lambda nested, tmp: save_safetensors(flatten(nested), tmp / "a.safetensors"),
    "legacy-format .bin": lambda nested, tmp: fx.save_legacy_bin(nested, tmp / "a.bin"),
}


def load_error(path) -> str:
    """The message of the InstantIDError that loading path raises."""
    with pytest.raises(InstantIDError) as raised:
        load_adapter(path)
    return str(raised.value)


@pytest.mark.parametrize("form", list(FORMS))
def test_every_accepted_form_loads_to_the_same_weights(tmp_path, form):
    nested = instantid_nested()

    weights = load_adapter(FORMS[form](nested, tmp_path))

    assert weights.image_proj.keys() == nested["image_proj"].keys()
    assert all(torch.equal(weights.image_proj[key], t) for key, t in nested["image_proj"].items())
    assert sorted(weights.kv) == sorted(TINY_LAYER_WIDTHS)
    for n, (k, v) in weights.kv.items():
        assert torch.equal(k, nested["ip_adapter"][f"{n}.to_k_ip.weight"])
        assert torch.equal(v, nested["ip_adapter"][f"{n}.to_v_ip.weight"])


@pytest.mark.parametrize(
    "dims", [TinyDims(), TinyDims(dim=64, depth=2, heads=3, num_queries=6, embedding_dim=20, output_dim=72)]
)
def test_the_adapters_dimensions_are_read_from_its_tensors(tmp_path, dims):
    widths = {1: 40, 3: 24}

    weights = load_adapter(save_bin(instantid_nested(dims, widths), tmp_path / "a.bin"))

    assert (weights.embedding_dim, weights.num_tokens, weights.token_dim) == (
        dims.embedding_dim,
        dims.num_queries,
        dims.output_dim,
    )
    assert weights.layer_widths == widths


def test_a_half_precision_adapter_builds_a_float32_resampler(tmp_path):
    flat = {key: t.half() for key, t in flatten(instantid_nested()).items()}

    resampler = load_adapter(save_safetensors(flat, tmp_path / "a.safetensors")).build_resampler()

    assert isinstance(resampler, Resampler)
    assert {t.dtype for t in resampler.state_dict().values()} == {torch.float32}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip format", "legacy format"])
def test_a_pickle_with_code_is_refused_and_its_code_never_runs(tmp_path, legacy):
    marker = tmp_path / "code-ran"
    path = fx.save_code_pickle(tmp_path / "ip-adapter.bin", marker, legacy=legacy)

    message = load_error(path)

    assert "refused for safety" in message and str(path) in message
    assert not marker.exists()  # test_model_files proves the same file creates it when unpickled unsafely


def test_a_pickle_holding_a_function_is_refused(tmp_path):
    path = save_bin({**instantid_nested(), "hook": os.system}, tmp_path / "ip-adapter.bin")

    assert "refused for safety" in load_error(path)


OTHER_FILES = {
    "plain IP-Adapter": (lambda: fx.plain_ip_adapter(clip_dim=1024), "a plain IP-Adapter"),
    "IP-Adapter Plus": (fx.ip_adapter_plus, "an IP-Adapter Plus (a Resampler fed by 1280-wide CLIP image features"),
    "IP-Adapter FaceID": (fx.ip_adapter_faceid, "an IP-Adapter FaceID"),
    "IP-Adapter FaceID Plus": (fx.ip_adapter_faceid_plus, "an IP-Adapter FaceID Plus"),
    "IP-Adapter Full Face": (fx.ip_adapter_full_face, "an IP-Adapter Full Face"),
    "IdentityNet ControlNet": (fx.controlnet_diffusers, "a ControlNet for SDXL"),
    "SD1.5 checkpoint": (fx.sd15_checkpoint, "an SD1.5 checkpoint"),
    "SDXL checkpoint": (fx.sdxl_checkpoint, "an SDXL checkpoint"),
    "LoRA": (fx.lora, "a LoRA"),
}


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
@pytest.mark.parametrize("name", list(OTHER_FILES))
def test_another_model_file_is_refused_with_what_it_is_and_its_path(tmp_path, name, suffix):
    build, description = OTHER_FILES[name]
    state = build()
    if suffix == ".safetensors":
        path = save_safetensors(flatten(state) if "image_proj" in state else state, tmp_path / "ip-adapter.safetensors")
    else:
        path = save_bin(state, tmp_path / "ip-adapter.bin")

    message = load_error(path)

    assert f"{path} is not an InstantID adapter: it is {description}" in message
    assert "huggingface.co/InstantX/InstantID" in message


def truncated(save, path):
    save(flatten(instantid_nested()) if path.suffix == ".safetensors" else instantid_nested(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("save, suffix", [(save_bin, ".bin"), (save_safetensors, ".safetensors")])
def test_a_truncated_download_says_so_and_to_download_again(tmp_path, save, suffix):
    path = truncated(save, tmp_path / f"ip-adapter{suffix}")

    message = load_error(path)

    assert str(path) in message and "truncated or damaged" in message and "download it again" in message


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:5c3f1e0d6c4b3a2918171615141312111009080706050403020100ffeeddccbb\n"
    b"size 1691659891\n"
)


@pytest.mark.parametrize(
    "content, phrases",
    [
        (b"", ["an empty file (0 bytes)", "download it again"]),
        (
            LFS_POINTER,
            ["Git LFS pointer", f"({len(LFS_POINTER)} bytes)", "1,691,659,891 bytes", "download the real file"],
        ),
        (b"<!DOCTYPE html><html><body>Hugging Face</body></html>", ["HTML web page"]),
    ],
    ids=["empty", "LFS pointer", "HTML page"],
)
def test_a_placeholder_instead_of_the_model_is_named(tmp_path, content, phrases):
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(content)

    message = load_error(path)

    assert str(path) in message
    for phrase in phrases:
        assert phrase in message


def test_a_missing_file_names_the_path_and_where_to_get_it(tmp_path):
    message = load_error(tmp_path / "nope.bin")

    assert f"not found: {tmp_path / 'nope.bin'}" in message and "huggingface.co/InstantX/InstantID" in message


@pytest.mark.parametrize(
    "dropped, partner", [("7.to_v_ip.weight", "7.to_k_ip.weight"), ("3.to_k_ip.weight", "3.to_v_ip.weight")]
)
def test_a_missing_projection_is_named_by_key(tmp_path, dropped, partner):
    nested = instantid_nested()
    del nested["ip_adapter"][dropped]

    message = load_error(save_bin(nested, tmp_path / "a.bin"))

    assert f"ip_adapter.{dropped} is missing (its partner ip_adapter.{partner} is present)" in message
    assert "download it again" in message


@pytest.mark.parametrize(
    "group, key, shape, expected",
    [
        (
            "image_proj",
            "layers.1.0.to_out.weight",
            (128, 64),
            "image_proj.layers.1.0.to_out.weight has shape (128, 64), expected (128, 128)",
        ),
        (
            "ip_adapter",
            "5.to_k_ip.weight",
            (96, 47),
            "ip_adapter.5.to_k_ip.weight has shape (96, 47) (torch.float32), expected floating-point (hidden, 48)",
        ),
        (
            "ip_adapter",
            "9.to_v_ip.weight",
            (64, 48),
            "ip_adapter.9.to_k_ip.weight (96, 48) and to_v_ip.weight (64, 48) differ in shape",
        ),
    ],
    ids=["Resampler tensor", "projection of the wrong token width", "k and v of different widths"],
)
def test_a_wrong_shape_is_named_with_both_shapes(tmp_path, group, key, shape, expected):
    nested = instantid_nested()
    nested[group][key] = torch.zeros(shape)

    assert expected in load_error(save_bin(nested, tmp_path / "a.bin"))


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda n: n.update(extra={"scale": torch.zeros(1)}), "extra.scale is unexpected"),
        (
            lambda n: n["ip_adapter"].update({"1.to_q_ip.weight": torch.zeros(64, 48)}),
            "ip_adapter.1.to_q_ip.weight is unexpected",
        ),
        (
            lambda n: n["image_proj"].update({"norm_out.bias": torch.zeros(48, dtype=torch.int64)}),
            "image_proj.norm_out.bias holds torch.int64, not floating-point weights",
        ),
        (lambda n: n.update(ip_adapter={}), "ip_adapter.* holds no to_k_ip/to_v_ip weights"),
    ],
    ids=["stray group", "stray projection", "integer tensor", "no projections"],
)
def test_other_damage_is_named(tmp_path, edit, expected):
    nested = instantid_nested()
    edit(nested)

    assert expected in load_error(save_bin(nested, tmp_path / "a.bin"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return load_adapter(save_bin(instantid_nested(), tmp_path_factory.mktemp("adapter") / "a.bin"))


def tokens(dtype=torch.float32) -> torch.Tensor:
    return (
        torch.randn(2, TinyDims().num_queries, TinyDims().output_dim, generator=torch.Generator().manual_seed(0)) * 3
    ).to(dtype)


def test_identity_kv_is_the_tokens_times_each_projection(weights):
    t = tokens()

    kv = compute_identity_kv(weights, t)

    assert sorted(kv) == sorted(weights.kv)
    for n, (k, v) in kv.items():
        assert k.dtype == v.dtype == torch.float32 and k.shape == (2, TinyDims().num_queries, TINY_LAYER_WIDTHS[n])
        torch.testing.assert_close(k, t @ weights.kv[n][0].T, atol=1e-6, rtol=0)
        torch.testing.assert_close(v, t @ weights.kv[n][1].T, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "token_dtype, out_dtype", [(torch.float32, torch.bfloat16), (torch.bfloat16, torch.float16), (torch.float16, None)]
)
def test_identity_kv_is_computed_in_float32_then_cast_to_the_asked_dtype(weights, token_dtype, out_dtype):
    t = tokens(token_dtype)

    kv = compute_identity_kv(weights, t, out_dtype)

    cast = out_dtype or token_dtype  # no dtype asked: the tokens' dtype
    for n, (k, v) in kv.items():
        assert k.dtype == v.dtype == cast
        assert torch.equal(k, (t.float() @ weights.kv[n][0].T).to(cast))
        assert torch.equal(v, (t.float() @ weights.kv[n][1].T).to(cast))


def test_each_layers_values_are_scaled_in_float32_before_the_cast_and_unscaled_layers_keep_one(weights):
    t = tokens()
    first, *rest = sorted(weights.kv)

    kv = compute_identity_kv(weights, t, torch.bfloat16, {first: 0.35})

    assert torch.equal(kv[first][1], ((t @ weights.kv[first][1].T) * 0.35).to(torch.bfloat16))
    assert torch.equal(kv[first][0], (t @ weights.kv[first][0].T).to(torch.bfloat16))
    assert all(torch.equal(kv[n][1], (t @ weights.kv[n][1].T).to(torch.bfloat16)) for n in rest)


def test_computing_identity_kv_leaves_the_adapter_tensors_as_they_were(weights):
    before = {n: (k, k.clone(), v, v.clone()) for n, (k, v) in weights.kv.items()}

    compute_identity_kv(weights, tokens(torch.float16), torch.float16)

    for n, (k, v) in weights.kv.items():
        k_obj, k_val, v_obj, v_val = before[n]
        assert k is k_obj and v is v_obj
        assert k.dtype == v.dtype == torch.float32 and k.device.type == v.device.type == "cpu"
        assert torch.equal(k, k_val) and torch.equal(v, v_val)


@pytest.mark.parametrize("shape", [(2, 4, 47), (4, 48)])
def test_identity_kv_refuses_tokens_of_another_shape_naming_the_expected_one(weights, shape):
    with pytest.raises(InstantIDError, match=r"expects \(batch, 4, 48\)"):
        compute_identity_kv(weights, torch.zeros(shape))

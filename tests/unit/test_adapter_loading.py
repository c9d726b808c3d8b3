"""Loading InstantID adapters in every accepted form, and refusing everything else with a message that names it."""
import pickle

import pytest
import torch

from adapter_fixtures import (TinyDims, controlnet_diffusers, flatten, instantid_nested, ip_adapter_faceid,
                              ip_adapter_plus, plain_ip_adapter, save_bin, save_safetensors, sd15_checkpoint)
from instantid_core.adapter import compute_identity_kv, load_adapter
from instantid_core.errors import InstantIDError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("form", ["nested .bin", "flattened .bin", "flattened .safetensors"])
def test_every_accepted_form_loads_to_the_same_weights_with_dimensions_read_from_the_tensors(tmp_path, form):
    nested = instantid_nested()
    path = {"nested .bin": lambda: save_bin(nested, tmp_path / "a.bin"),
            "flattened .bin": lambda: save_bin(flatten(nested), tmp_path / "a.bin"),
            "flattened .safetensors": lambda: save_safetensors(flatten(nested), tmp_path / "a.safetensors")}[form]()

    weights = load_adapter(path)

    dims = TinyDims()
    assert (weights.embedding_dim, weights.num_tokens, weights.token_dim) == (dims.embedding_dim, dims.num_queries,
                                                                              dims.output_dim)
    assert sorted(weights.kv) == [1, 3, 5, 7, 9]
    assert torch.equal(weights.kv[5][0], nested["ip_adapter"]["5.to_k_ip.weight"])
    assert torch.equal(weights.image_proj["latents"], nested["image_proj"]["latents"])


class _Payload:
    """Unpickling this runs code (creates a marker file): what a malicious .bin would do."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_with_code_is_refused_and_its_code_never_runs(tmp_path):
    _Payload.marker = tmp_path / "pwned"
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(pickle.dumps({"image_proj": _Payload()}))

    with pytest.raises(InstantIDError, match="refused for safety"):
        load_adapter(path)
    assert not _Payload.marker.exists()


@pytest.mark.parametrize("state, expected", [
    (plain_ip_adapter(), "a plain IP-Adapter"),
    (ip_adapter_plus(), "an IP-Adapter Plus"),
    (ip_adapter_faceid(), "an IP-Adapter FaceID"),
    (controlnet_diffusers(), "a ControlNet for SDXL"),
    (sd15_checkpoint(), "an SD1.5 checkpoint"),
])
def test_another_model_file_is_refused_with_what_it_is_and_its_path(tmp_path, state, expected):
    path = save_bin(state, tmp_path / "ip-adapter.bin")

    with pytest.raises(InstantIDError) as raised:
        load_adapter(path)

    assert expected in str(raised.value) and str(path) in str(raised.value)
    assert "not an InstantID adapter" in str(raised.value)


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_a_truncated_download_says_so(tmp_path, suffix):
    good = (save_bin(instantid_nested(), tmp_path / f"good{suffix}") if suffix == ".bin"
            else save_safetensors(flatten(instantid_nested()), tmp_path / f"good{suffix}"))
    cut = tmp_path / f"ip-adapter{suffix}"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    with pytest.raises(InstantIDError, match="truncated or damaged.*download it again"):
        load_adapter(cut)


@pytest.mark.parametrize("content, expected", [
    (b"", "an empty file"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1691659891\n", "Git LFS pointer"),
    (b"<!DOCTYPE html><html><body>Hugging Face</body></html>", "HTML web page"),
])
def test_a_placeholder_instead_of_the_model_is_named(tmp_path, content, expected):
    path = tmp_path / "ip-adapter.bin"
    path.write_bytes(content)

    with pytest.raises(InstantIDError, match=expected):
        load_adapter(path)


def test_a_missing_file_names_the_path_and_where_to_get_it(tmp_path):
    with pytest.raises(InstantIDError, match="not found.*huggingface.co/InstantX/InstantID"):
        load_adapter(tmp_path / "nope.bin")


def test_a_missing_value_projection_is_named_by_key(tmp_path):
    nested = instantid_nested()
    del nested["ip_adapter"]["7.to_v_ip.weight"]

    with pytest.raises(InstantIDError, match=r"ip_adapter\.7\.to_v_ip\.weight is missing"):
        load_adapter(save_bin(nested, tmp_path / "a.bin"))


def test_a_wrong_shape_is_named_with_both_shapes(tmp_path):
    nested = instantid_nested()
    nested["image_proj"]["layers.1.0.to_out.weight"] = torch.zeros(3, 3)

    with pytest.raises(InstantIDError, match=r"layers\.1\.0\.to_out\.weight has shape \(3, 3\), expected \(128, 128\)"):
        load_adapter(save_bin(nested, tmp_path / "a.bin"))


def test_identity_kv_is_the_tokens_times_each_projection_in_float32_cast_to_the_asked_dtype(tmp_path):
    weights = load_adapter(save_bin(instantid_nested(), tmp_path / "a.bin"))
    tokens = torch.randn(2, 4, TinyDims().output_dim, generator=torch.Generator().manual_seed(0))

    kv = compute_identity_kv(weights, tokens, torch.bfloat16)

    k, v = kv[3]
    assert k.dtype == torch.bfloat16 and k.shape == (2, 4, weights.layer_widths[3])
    torch.testing.assert_close(k.float(), (tokens @ weights.kv[3][0].T), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(v.float(), (tokens @ weights.kv[3][1].T), rtol=1e-2, atol=1e-2)
    assert weights.kv[3][0].dtype == torch.float32  # the adapter itself is not cast

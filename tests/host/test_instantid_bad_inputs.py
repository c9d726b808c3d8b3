"""Bad inputs to the InstantID nodes (SPEC §9) fail with a message that says what is wrong and what to do, before
anything is changed."""
import copy

import pytest
import torch

from helpers.tiny_models import (sdxl_conditioning, tiny_adapter_state_dict, tiny_sd15,
                                 tiny_sd15_controlnet, tiny_sdxl)

pytestmark = pytest.mark.host

IDENTITYNET_FILE = "controlnet/instantid/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def host(comfy_host):
    """The pack's host glue, as ComfyUI imported it."""
    return comfy_host.pack_module("nodes.host")


@pytest.fixture(scope="module")
def errors(comfy_host):
    """The pack's error module."""
    return comfy_host.pack_module("instantid_core.errors")


@pytest.fixture(scope="module")
def adapter(comfy_host, tmp_path_factory):
    """A tiny InstantID adapter for SDXL topology."""
    path = tmp_path_factory.mktemp("bad_inputs") / "ip-adapter.bin"
    torch.save(tiny_adapter_state_dict(), path)
    return comfy_host.pack_module("instantid_core.identity").InstantIDAdapter.load(path)


@pytest.fixture(scope="module")
def tokens(adapter):
    """Identity tokens of one random face embedding."""
    return adapter.tokens(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)).numpy() * 20)


def test_patching_an_sd15_model_is_refused_with_both_layer_counts_and_the_model_is_untouched(host, errors, adapter,
                                                                                          tokens):
    model = tiny_sd15()

    with pytest.raises(errors.InstantIDError) as raised:
        host.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0)

    message = str(raised.value)
    assert "16 cross-attention layers" in message and "70" in message and "SDXL" in message
    assert "attn2" not in model.model_options.get("transformer_options", {}).get("patches_replace", {})


@pytest.mark.parametrize("case", ["missing", "not a controlnet", "sd15 controlnet"])
def test_a_wrong_control_net_names_the_identitynet_file_and_leaves_the_conditioning_unchanged(host, errors, tokens,
                                                                                            case):
    control_net = {"missing": None, "not a controlnet": "ip-adapter.bin", "sd15 controlnet": None}[case]
    if case == "sd15 controlnet":
        control_net = tiny_sd15_controlnet()
    positive, negative = sdxl_conditioning(1), sdxl_conditioning(2)
    snapshot = copy.deepcopy((positive, negative))

    with pytest.raises(errors.InstantIDError) as raised:
        host.apply_identitynet(positive, negative, control_net, tokens, torch.zeros(1, 64, 64, 3), 0.8, 0.0, 1.0)

    assert IDENTITYNET_FILE in str(raised.value)
    if case == "sd15 controlnet":
        assert "768" in str(raised.value)
    for now, before in zip((positive, negative), snapshot):
        assert now[0][1].keys() == before[0][1].keys() and torch.equal(now[0][0], before[0][0])


def test_a_mask_of_another_aspect_ratio_is_refused_with_both_sizes(host, errors, adapter, tokens):
    import comfy.sample
    import comfy.samplers

    model = host.apply_identity_attention(tiny_sdxl(), adapter, tokens, 0.8, 0.0, 1.0, mask=torch.ones(1, 64, 128))

    with pytest.raises(errors.InstantIDError) as raised:
        comfy.sample.sample_custom(model, torch.randn(1, 4, 16, 16), 5.0, comfy.samplers.sampler_object("euler"),
                                   torch.tensor([1.0, 0.0]), sdxl_conditioning(1), sdxl_conditioning(2),
                                   torch.zeros(1, 4, 16, 16), disable_pbar=True)

    assert "128×64" in str(raised.value) and "128×128" in str(raised.value)


def test_two_applies_in_a_row_with_different_faces_leak_no_state(host, adapter):
    import comfy.sample
    import comfy.samplers

    def run(model):
        return comfy.sample.sample_custom(model, torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3)),
                                          5.0, comfy.samplers.sampler_object("euler"), torch.tensor([14.0, 0.0]),
                                          sdxl_conditioning(1), sdxl_conditioning(2), torch.zeros(1, 4, 16, 16),
                                          disable_pbar=True)

    base = tiny_sdxl()
    face_a, face_b = (adapter.tokens(torch.randn(1, 512, generator=torch.Generator().manual_seed(s)).numpy() * 20)
                      for s in (1, 2))
    first_b = run(host.apply_identity_attention(base, adapter, face_b, 0.8, 0.0, 1.0))
    run(host.apply_identity_attention(base, adapter, face_a, 0.8, 0.0, 1.0))

    assert torch.equal(run(host.apply_identity_attention(base, adapter, face_b, 0.8, 0.0, 1.0)), first_b)


def test_twenty_applies_and_runs_in_a_row_do_not_grow_memory(host, adapter, tokens):
    import gc
    import resource

    import comfy.model_management as mm

    from helpers.host_runs import denoise

    base = tiny_sdxl()

    def apply_and_run():
        denoise(host.apply_identity_attention(base, adapter, tokens, 0.8, 0.0, 1.0))
        gc.collect()

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    for _ in range(5):  # warm-up: allocator pools and caches settle
        apply_and_run()
    before, loaded_before = rss_mb(), len(mm.current_loaded_models)
    for _ in range(15):
        apply_and_run()

    assert rss_mb() - before < 40, f"RSS grew by {rss_mb() - before:.0f} MB over 15 runs"
    assert len(mm.current_loaded_models) <= loaded_before + 1

"""Bad inputs to the InstantID nodes fail with a message that says what is wrong and what to do, before anything is
changed."""

import asyncio
import copy
from types import SimpleNamespace

import pytest
import torch

from helpers.host_runs import as_run_by_comfyui, make_faces
from helpers.tiny_models import (
    MID_CONTROLNET_DEPTHS,
    tiny_adapter_state_dict,
    tiny_controlnet,
    tiny_sd15,
    tiny_sd15_controlnet,
    tiny_sdxl,
)
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

IDENTITYNET_FILE = "controlnet/instantid/diffusion_pytorch_model.safetensors"
PERCENT_NODES = {
    "InstantIDApplyIdentityNet": ("start_percent", "end_percent"),
    "InstantIDPatchAttention": ("start_percent", "end_percent"),
    "InstantIDApply": ("start_percent", "end_percent"),
    "InstantIDApplyAdvanced": ("start_percent", "end_percent"),
    "InstantIDApplyPeople": ("start_percent", "end_percent"),
    "ApplyInstantID": ("start_at", "end_at"),
    "ApplyInstantIDAdvanced": ("start_at", "end_at"),
    "InstantIDAttentionPatch": ("start_at", "end_at"),
    "ApplyInstantIDControlNet": ("start_at", "end_at"),
}
"""Every node of the pack with start/end inputs -> their names."""


@pytest.fixture(scope="module")
def glue(comfy_host):
    """The pack's ComfyUI glue that puts the identity on a model and on the conditioning, as ComfyUI imported it."""
    return SimpleNamespace(
        unet_patching=comfy_host.pack_module("nodes.comfy_glue.unet_patching"),
        controlnet=comfy_host.pack_module("nodes.comfy_glue.controlnet"),
    )


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


def test_patching_an_sd15_model_is_refused_with_both_layer_counts_and_the_model_is_untouched(
    glue, errors, adapter, tokens
):
    model = tiny_sd15()

    with pytest.raises(errors.InstantIDError) as raised:
        glue.unet_patching.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0)

    message = str(raised.value)
    assert "16 cross-attention layers" in message and "70" in message and "SDXL" in message
    assert "attn2" not in model.model_options.get("transformer_options", {}).get("patches_replace", {})


@pytest.mark.parametrize("case", ["missing", "not a controlnet", "sd15 controlnet", "mid sdxl controlnet"])
def test_a_wrong_control_net_names_the_identitynet_file_and_leaves_the_conditioning_unchanged(
    glue, errors, tokens, case
):
    control_net = {
        "missing": None,
        "not a controlnet": "ip-adapter.bin",
        "sd15 controlnet": None,
        "mid sdxl controlnet": None,
    }[case]
    if case == "sd15 controlnet":
        control_net = tiny_sd15_controlnet()
    if case == "mid sdxl controlnet":  # 2048-wide, SDXL's ADM input, but 3 transformer blocks where IdentityNet has 34
        control_net = tiny_controlnet(4, *MID_CONTROLNET_DEPTHS)
    positive, negative = sdxl_conditioning(1), sdxl_conditioning(2)
    snapshot = copy.deepcopy((positive, negative))

    with pytest.raises(errors.InstantIDError) as raised:
        glue.controlnet.apply_identitynet(
            positive, negative, control_net, tokens, torch.zeros(1, 64, 64, 3), 0.8, 0.0, 1.0
        )

    assert IDENTITYNET_FILE in str(raised.value)
    if case == "sd15 controlnet":
        assert "768" in str(raised.value)
    if case == "mid sdxl controlnet":
        assert "has 3 transformer blocks (1, 1 in its input blocks, 1 in the middle)" in str(raised.value)
        assert "IdentityNet has 34" in str(raised.value)
    for now, before in zip((positive, negative), snapshot, strict=False):
        assert now[0][1].keys() == before[0][1].keys() and torch.equal(now[0][0], before[0][0])


def test_a_mask_of_another_aspect_ratio_is_refused_with_both_sizes(glue, errors, adapter, tokens):
    import comfy.sample
    import comfy.samplers

    model = glue.unet_patching.apply_identity_attention(
        tiny_sdxl(), adapter, tokens, 0.8, 0.0, 1.0, mask=torch.ones(1, 64, 128)
    )

    with pytest.raises(errors.InstantIDError) as raised:
        comfy.sample.sample_custom(
            model,
            torch.randn(1, 4, 16, 16),
            5.0,
            comfy.samplers.sampler_object("euler"),
            torch.tensor([1.0, 0.0]),
            sdxl_conditioning(1),
            sdxl_conditioning(2),
            torch.zeros(1, 4, 16, 16),
            disable_pbar=True,
        )

    assert "128×64" in str(raised.value) and "128×128" in str(raised.value)


def test_a_mask_of_another_aspect_ratio_names_the_node_that_received_it(comfy_host, pack, adapter):
    import comfy.sample
    import comfy.samplers

    (model,) = (
        as_run_by_comfyui(comfy_host.node("InstantIDPatchAttention"), "7")
        .execute(
            tiny_sdxl(),
            adapter,
            make_faces(pack, (1,)),
            0.8,
            0.0,
            1.0,
            "linear",
            "average",
            0.0,
            mask=torch.ones(1, 64, 128),
        )
        .result
    )

    with pytest.raises(
        Exception, match="The mask given to 'InstantID Patch Attention' \\(node #7\\): the mask is 128×64"
    ):
        comfy.sample.sample_custom(
            model,
            torch.randn(1, 4, 16, 16),
            5.0,
            comfy.samplers.sampler_object("euler"),
            torch.tensor([1.0, 0.0]),
            sdxl_conditioning(1),
            sdxl_conditioning(2),
            torch.zeros(1, 4, 16, 16),
            disable_pbar=True,
        )


def test_two_applies_in_a_row_with_different_faces_leak_no_state(glue, adapter):
    import comfy.sample
    import comfy.samplers

    def run(model):
        return comfy.sample.sample_custom(
            model,
            torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3)),
            5.0,
            comfy.samplers.sampler_object("euler"),
            torch.tensor([14.0, 0.0]),
            sdxl_conditioning(1),
            sdxl_conditioning(2),
            torch.zeros(1, 4, 16, 16),
            disable_pbar=True,
        )

    base = tiny_sdxl()
    face_a, face_b = (
        adapter.tokens(torch.randn(1, 512, generator=torch.Generator().manual_seed(s)).numpy() * 20) for s in (1, 2)
    )
    first_b = run(glue.unet_patching.apply_identity_attention(base, adapter, face_b, 0.8, 0.0, 1.0))
    run(glue.unet_patching.apply_identity_attention(base, adapter, face_a, 0.8, 0.0, 1.0))

    assert torch.equal(run(glue.unet_patching.apply_identity_attention(base, adapter, face_b, 0.8, 0.0, 1.0)), first_b)


def test_twenty_applies_and_runs_in_a_row_do_not_grow_memory(glue, adapter, tokens):
    import gc
    import resource

    import comfy.model_management as mm

    from helpers.host_runs import denoise

    base = tiny_sdxl()

    def apply_and_run():
        denoise(glue.unet_patching.apply_identity_attention(base, adapter, tokens, 0.8, 0.0, 1.0))
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


def custom_validation_errors(prompt: dict, node: str = "1") -> list[dict]:
    """The errors a node's own validate_inputs adds when ComfyUI validates the prompt before running it."""
    import execution

    _valid, errors, _node = asyncio.run(execution.validate_inputs("bad-inputs", prompt, node, {}))
    return [error for error in errors if error["type"] == "custom_validation_failed"]


def display_name(comfy_host, node_id: str) -> str:
    """The node's name as the user sees it."""
    return comfy_host.node(node_id).define_schema().display_name


def test_every_node_with_start_and_end_inputs_is_one_whose_order_is_checked(comfy_host):
    with_percents = {
        node_id: names
        for node_id, node in comfy_host.pack_nodes.items()
        for names in (("start_percent", "end_percent"), ("start_at", "end_at"))
        if set(names) <= {spec.id for spec in node.define_schema().inputs}
    }

    assert with_percents == PERCENT_NODES


@pytest.mark.parametrize("node_id", sorted(PERCENT_NODES))
def test_a_start_after_the_end_refuses_the_prompt_naming_the_node_and_both_values(comfy_host, node_id):
    start, end = PERCENT_NODES[node_id]

    refused = custom_validation_errors({"1": {"class_type": node_id, "inputs": {start: 0.8, end: 0.25}}})

    assert refused, "the prompt was accepted"
    assert all(
        f"{display_name(comfy_host, node_id)}: {start} (0.8) is after {end} (0.25)" in error["details"]
        and error["details"].endswith(" [instantid.bad_percent_range]")
        for error in refused
    )


@pytest.mark.parametrize("node_id", sorted(PERCENT_NODES))
@pytest.mark.parametrize("values", [(0.5, 0.5), (0.0, 1.0), (0.2, 0.7)])
def test_a_start_at_or_before_the_end_passes_validation(comfy_host, node_id, values):
    start, end = PERCENT_NODES[node_id]

    assert custom_validation_errors({"1": {"class_type": node_id, "inputs": {start: values[0], end: values[1]}}}) == []


@pytest.mark.parametrize("node_id", sorted(PERCENT_NODES))
def test_a_percent_outside_0_to_1_is_refused_although_the_node_validates_it_itself(comfy_host, node_id):
    start, end = PERCENT_NODES[node_id]

    refused = custom_validation_errors({"1": {"class_type": node_id, "inputs": {start: 0.0, end: 1.5}}})

    assert refused and f"{display_name(comfy_host, node_id)}: {end} is 1.5, outside 0..1" in refused[0]["details"]


@pytest.mark.parametrize("node_id", sorted(PERCENT_NODES))
def test_a_start_after_the_end_that_comes_through_a_link_is_refused_when_the_node_runs_before_it_does_anything(
    comfy_host, errors, node_id
):
    start, end = PERCENT_NODES[node_id]
    node = comfy_host.node(node_id)
    prompt = {
        "9": {"class_type": "PrimitiveFloat", "inputs": {"value": 0.8}},
        "1": {"class_type": node_id, "inputs": {start: ["9", 0], end: 0.25}},
    }
    nothing = {spec.id: None for spec in node.define_schema().inputs}  # any use of another input would fail

    assert custom_validation_errors(prompt) == []  # the linked value is not known before the prompt runs
    with pytest.raises(errors.InstantIDError) as raised:
        node.execute(**{**nothing, start: 0.8, end: 0.25})

    assert str(raised.value).startswith(f"{display_name(comfy_host, node_id)}: {start} (0.8) is after {end} (0.25)")
    assert raised.value.code == "bad_percent_range" and not str(raised.value).endswith("]")

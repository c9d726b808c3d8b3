"""InstantID inside the real ComfyUI (in-process) on tiny SDXL-topology models: layer coverage, start/end gating,
masks, ControlNet chaining, model-manager ownership, two applies, and a KSampler run with the nodes."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.host_runs import LATENT, denoise, make_faces, record_identity_calls
from helpers.tiny_models import tiny_controlnet
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host


def patch(pack, adapter, model, weight=1.0, start=0.0, end=1.0, mask=None, seeds=(1,)):
    """The model with InstantID's identity attention, through the host glue the nodes call."""
    tokens = adapter.tokens(make_faces(pack, seeds).embeddings())
    return pack.host.apply_identity_attention(model, adapter, tokens, weight, start, end, "linear", mask)


def test_every_one_of_the_70_cross_attention_layers_gets_identity_attention_once_per_call(
    pack, adapter, model, monkeypatch
):
    patched = patch(pack, adapter, model)
    calls = record_identity_calls(monkeypatch, pack)

    denoise(patched)

    keys = [call.key for call in calls]
    assert len(keys) == 70 and len(set(keys)) == 70  # one model call (cond+uncond batched): each layer once
    assert {key for key in keys if key[0] == "middle"} == {("middle", 0, i) for i in range(10)}
    assert {key[0] for key in keys} == {"input", "middle", "output"}


def test_identity_attention_changes_the_output_and_leaves_the_input_model_untouched(pack, adapter, model):
    before = denoise(model)
    patched = patch(pack, adapter, model)

    assert not torch.equal(denoise(patched), before)
    assert torch.equal(denoise(model), before)
    assert "attn2" not in model.model_options.get("transformer_options", {}).get("patches_replace", {})


def test_outside_start_end_the_output_equals_the_unpatched_model_bit_for_bit(pack, adapter, model):
    sampling = model.get_model_object("model_sampling")
    early, late = float(sampling.percent_to_sigma(0.1)), float(sampling.percent_to_sigma(0.9))
    patched = patch(pack, adapter, model, start=0.5, end=1.0)

    assert torch.equal(denoise(patched, sigma=early), denoise(model, sigma=early))  # before start: off
    assert not torch.equal(denoise(patched, sigma=late), denoise(model, sigma=late))  # inside: on


def test_identity_attention_is_zero_outside_the_mask_in_every_layer(pack, adapter, model, monkeypatch):
    mask = torch.zeros(1, 128, 128)
    mask[:, :, :64] = 1.0  # the left half of the picture
    patched = patch(pack, adapter, model, mask=mask)
    calls = record_identity_calls(monkeypatch, pack)

    denoise(patched)

    assert len(calls) == 70
    for key, term, options, _ in calls:
        h, w = options["activations_shape"][-2:]
        grid = term.reshape(term.shape[0], h, w, -1)
        assert torch.count_nonzero(grid[:, :, w // 2 + 1 :]) == 0, key  # right of the mask's edge: nothing
        assert torch.count_nonzero(grid[:, :, : w // 2 - 1]) > 0, key  # inside: the identity


def test_a_controlnet_already_on_the_conditioning_still_runs_after_apply_identitynet(pack, adapter, model, comfy_host):
    other, identitynet = tiny_controlnet(seed=3), tiny_controlnet(seed=4)
    hint = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(5))
    apply_cnet = comfy_host.node("ControlNetApplyAdvanced")()
    tokens = adapter.tokens(make_faces(pack).embeddings())

    def with_identitynet(positive, negative):
        return pack.host.apply_identitynet(positive, negative, identitynet, tokens, hint, 1.0, 0.0, 1.0)

    plain = (sdxl_conditioning(10), sdxl_conditioning(11))
    only_other = apply_cnet.apply_controlnet(*plain, other, hint, 1.0, 0.0, 1.0)
    only_identitynet = with_identitynet(*plain)
    both = with_identitynet(*only_other)

    out_both = denoise(model, *both)
    assert not torch.equal(out_both, denoise(model, *only_identitynet))  # the other ControlNet's residuals are there
    assert not torch.equal(out_both, denoise(model, *only_other))  # and IdentityNet's
    assert both[0][0][1]["control"].previous_controlnet is only_other[0][0][1]["control"]
    assert both[0][0][1]["control"] is both[1][0][1]["control"]  # one object: cond and uncond stay batched


def test_identitynet_sees_the_face_tokens_cond_on_positive_uncond_on_negative(pack, adapter, model, monkeypatch):
    identitynet = tiny_controlnet(seed=4)
    tokens = adapter.tokens(make_faces(pack).embeddings(), noise=0.3)
    positive, negative = pack.host.apply_identitynet(
        sdxl_conditioning(10), sdxl_conditioning(11), identitynet, tokens, torch.rand(1, 128, 128, 3), 1.0, 0.0, 1.0
    )
    contexts = []
    control_model = positive[0][1]["control"].control_model
    original = type(control_model).forward

    def spy(self, x, hint, timesteps, context, **kwargs):
        contexts.append(context.clone())
        return original(self, x, hint, timesteps, context, **kwargs)

    monkeypatch.setattr(type(control_model), "forward", spy)

    denoise(model, positive, negative)

    (context,) = contexts
    assert context.shape == (2, tokens.cond.shape[1], 2048)  # batched: one row per half, the face tokens
    rows = {round(float(row.sum()), 3) for row in context}
    assert rows == {round(float(tokens.cond.sum()), 3), round(float(tokens.uncond.sum()), 3)}


def test_the_model_manager_owns_the_identity_kv_and_no_adapter_weight_is_loaded(pack, adapter, model):
    import comfy.model_management as mm

    patched = patch(pack, adapter, model)
    extra = {id(m): m for m in patched.model_patches_models()}  # the manager de-duplicates the 70 layers' answers
    assert len(extra) == 1  # one IdentityKV patcher for all 70 layers
    (kv_patcher,) = extra.values()
    kv_bytes = sum(p.numel() * p.element_size() for p in kv_patcher.model.parameters())
    adapter_bytes = sum(t.numel() * t.element_size() for pair in adapter.weights.kv.values() for t in pair)

    mm.load_models_gpu([patched])
    loaded = [m.model for m in mm.current_loaded_models]
    assert kv_patcher in loaded and patched in loaded
    assert kv_bytes < adapter_bytes / 10  # the precomputed K/V, not the projections
    adapter_ids = {id(t) for pair in adapter.weights.kv.values() for t in pair}
    assert not any(id(p) in adapter_ids for m in loaded for p in m.model.parameters())
    mm.unload_all_models()
    assert kv_patcher not in [m.model for m in mm.current_loaded_models]


def test_a_second_instantid_apply_wraps_the_first_and_both_act(pack, adapter, model, monkeypatch):
    first = patch(pack, adapter, model, seeds=(1,))
    second = patch(pack, adapter, first, seeds=(2,))
    calls = record_identity_calls(monkeypatch, pack)

    denoise(second)

    assert len(calls) == 140  # both identities in every layer
    assert len({id(p) for p in second.model_patches_models()}) == 2


def test_a_ksampler_run_with_every_node_wired_gives_finite_output_that_differs_without_instantid(
    pack, adapter, model, comfy_host, standins
):
    import nodes as comfy_nodes

    face_pack = comfy_host.pack_module("instantid_core.face_analysis").FaceModels.load(
        standins / "models" / "insightface" / "models" / "antelopev2", "CPU", 640
    )
    photo = torch.from_numpy(np.array(Image.open(standins / "input" / "instantid_face.png").convert("RGB")))
    photo = photo.float().unsqueeze(0) / 255
    analyze, keypoints = comfy_host.node("InstantIDAnalyzeFaces"), comfy_host.node("InstantIDKeypoints")
    apply_net, patch_node = comfy_host.node("InstantIDApplyIdentityNet"), comfy_host.node("InstantIDPatchAttention")

    face = analyze.execute(face_pack, photo, "largest", 0, "error").result[0]
    kps = keypoints.execute(face, 128, 128, "as in source", 0.35, 0, False).result[2]
    positive, negative = apply_net.execute(
        sdxl_conditioning(10),
        sdxl_conditioning(11),
        tiny_controlnet(seed=4),
        adapter,
        face,
        0.8,
        0.0,
        1.0,
        "average",
        0.0,
        kps=kps,
    ).result
    patched = patch_node.execute(model, adapter, face, 0.8, 0.0, 1.0, "linear", "average", 0.0).result[0]
    latent = {"samples": torch.zeros(LATENT)}

    (with_instantid,) = comfy_nodes.common_ksampler(patched, 7, 3, 5.0, "euler", "normal", positive, negative, latent)
    (without,) = comfy_nodes.common_ksampler(
        model, 7, 3, 5.0, "euler", "normal", sdxl_conditioning(10), sdxl_conditioning(11), latent
    )

    assert kps.size == (128, 128) and len(kps.layouts) == 1
    assert torch.isfinite(with_instantid["samples"]).all()
    assert not torch.allclose(with_instantid["samples"], without["samples"])

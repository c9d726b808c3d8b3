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
    return pack.unet_patching.apply_identity_attention(model, adapter, tokens, weight, start, end, "linear", mask)


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


def plain_formulation(pack, adapter, model, tokens, weight, weight_type, sigma_range, mask):
    """The model with the identity attention computed the plain way at every layer call, written here apart from
    the pack: K/V concatenated per batch half, V times the layer's scale, the gate decided from sigmas[0], the region
    resized and multiplied in, out + term; with the same attention kernels (ComfyUI's for the text, the one the glue
    picks for the 16 identity tokens)."""
    import comfy.ldm.modules.attention as comfy_attention
    import torch.nn.functional as F

    modules = pack.unet_patching.attn2_modules(model)
    layers = [pack.unet_patching.cross_attention_layer(key, attn2) for key, attn2 in modules.items()]
    index = pack.unet_layers.assign_adapter_indices(layers, adapter.weights.layer_widths, adapter.weights.token_dim)
    scales = dict(zip(modules, pack.attention.layer_multipliers(weight_type, layers), strict=True))
    kv = adapter.identity_kv(tokens, torch.float32)
    start, end = sigma_range

    def layer_patch(key):
        def replace(q, k, v, extra_options):
            heads, chunks = extra_options["n_heads"], extra_options["cond_or_uncond"]
            options = {"attn_precision": extra_options["attn_precision"], "transformer_options": extra_options}
            out = comfy_attention.optimized_attention(q, k, v, heads, **options)
            rows = q.shape[0] // len(chunks)
            k_all, v_all = kv[index[key]]
            k_id = torch.cat([k_all[c : c + 1].expand(rows, -1, -1) for c in chunks])
            v_id = torch.cat([v_all[c : c + 1].expand(rows, -1, -1) for c in chunks]) * (weight * scales[key])
            if not end <= float(extra_options["sigmas"][0]) <= start:
                return out
            attend = pack.attn2_protocol.identity_attention_kernel(extra_options, q)
            q_h, k_h, v_h = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k_id, v_id))
            term = attend(q_h, k_h.contiguous(), v_h.contiguous()).transpose(1, 2).reshape(q.shape)
            if mask is not None:
                h, w = extra_options["activations_shape"][-2:]
                region = F.interpolate(mask[:, None], size=(h, w), mode="bilinear", align_corners=False)
                term = term * region.reshape(1, h * w, 1)
            return out + term

        return replace

    plain = model.clone()
    for key in modules:
        plain.set_model_attn2_replace(layer_patch(key), *key)
    return plain


def test_a_sample_equals_the_plain_per_call_formulation_bit_for_bit(pack, adapter, model):
    """The per-call work the patch does ahead (K/V laid out once per batch layout, the scale in V, the gate once per
    model call, the region once per layer size, the addition in place) changes no bit of a float32 sample."""
    tokens = adapter.tokens(make_faces(pack, (1,)).embeddings())
    mask = torch.zeros(1, 128, 128)
    mask[:, 16:96, 40:120] = torch.linspace(0.2, 1.0, 80)  # soft, and off-centre
    sigma_end = float(model.get_model_object("model_sampling").percent_to_sigma(0.9))  # the gate runs, and is open

    ours = pack.unet_patching.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 0.9, "ease in", mask)
    plain = plain_formulation(pack, adapter, model, tokens, 0.8, "ease in", (float("inf"), sigma_end), mask)

    sample = denoise(ours)
    assert torch.equal(sample, denoise(plain))
    assert not torch.equal(sample, denoise(model))  # the identity acted


def test_identity_attention_is_zero_outside_the_mask_in_every_layer(pack, adapter, model, monkeypatch):
    mask = torch.zeros(1, 128, 128)
    mask[:, :, :64] = 1.0  # the left half of the picture
    patched = patch(pack, adapter, model, mask=mask)
    calls = record_identity_calls(monkeypatch, pack)

    denoise(patched)

    assert len(calls) == 70
    for key, term, call, *_ in calls:
        h, w = call.layer_hw
        grid = term.reshape(term.shape[0], h, w, -1)
        assert torch.count_nonzero(grid[:, :, w // 2 + 1 :]) == 0, key  # right of the mask's edge: nothing
        assert torch.count_nonzero(grid[:, :, : w // 2 - 1]) > 0, key  # inside: the identity


def test_a_controlnet_already_on_the_conditioning_still_runs_after_apply_identitynet(pack, adapter, model, comfy_host):
    other, identitynet = tiny_controlnet(seed=3), tiny_controlnet(seed=4)
    hint = torch.rand(1, 128, 128, 3, generator=torch.Generator().manual_seed(5))
    apply_cnet = comfy_host.node("ControlNetApplyAdvanced")()
    tokens = adapter.tokens(make_faces(pack).embeddings())

    def with_identitynet(positive, negative):
        return pack.controlnet.apply_identitynet(positive, negative, identitynet, tokens, hint, 1.0, 0.0, 1.0)

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
    positive, negative = pack.controlnet.apply_identitynet(
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

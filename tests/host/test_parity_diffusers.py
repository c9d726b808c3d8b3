"""Parity (docs/design.md, "Correctness"): one denoising step of our ComfyUI path equals an independent diffusers reference.

Our side is the real ComfyUI sampling one Euler step with CFG (cond and uncond batched) on a tiny SDXL-topology
model that carries InstantID's identity attention (`apply_identity_attention`) and IdentityNet (`apply_identitynet`).
The reference is built with diffusers alone: a UNet2DConditionModel and a ControlNetModel of the same topology with
random weights, and the IP-Adapter loaded by diffusers' own loader from the same ip-adapter.bin-layout dict (its
IPAdapterPlusImageProjection is the Resampler, its IPAdapterAttnProcessor2_0 the decoupled cross-attention). The
diffusers weights are converted to ComfyUI's layout with ComfyUI's own key maps, so both sides share every weight.
"""

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import tiny_models
from helpers.tiny_models import (
    MODEL_CHANNELS,
    TOKEN_DIM,
    tiny_adapter_state_dict,
    tiny_controlnet,
    tiny_sdxl,
    tiny_unet_config,
)

pytestmark = pytest.mark.host

LATENT_HW = 16  # 128×128 pixels: the hint image is made at this size, so ComfyUI does not resize it
WEIGHT = 0.8  # identity attention scale (our `weight`, diffusers' IP-Adapter scale)
STRENGTH = 0.7  # IdentityNet strength (diffusers' conditioning_scale)
CFG = 5.0
TIME_IDS = [1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]  # what conditioning()'s width/height/crop/target encode
FP32_ROUNDOFF = 1e-4


def diffusers_config() -> dict:
    """The tiny SDXL topology in diffusers' terms, read from the ComfyUI config the tiny models use."""
    comfy_cfg = tiny_unet_config()
    levels = len(comfy_cfg["channel_mult"])
    widths = [MODEL_CHANNELS * m for m in comfy_cfg["channel_mult"]]
    per_level = [comfy_cfg["transformer_depth"][2 * i] for i in range(levels)]  # [0, 2, 10]
    assert comfy_cfg["num_res_blocks"] == [2] * levels and per_level[0] == 0 and all(per_level[1:])
    return dict(
        in_channels=4,
        block_out_channels=tuple(widths),
        layers_per_block=2,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        transformer_layers_per_block=tuple(max(d, 1) for d in per_level),  # level 0 has no attention at all
        attention_head_dim=tuple(w // comfy_cfg["num_head_channels"] for w in widths),  # diffusers: heads per level
        cross_attention_dim=TOKEN_DIM,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=comfy_cfg["adm_in_channels"],
        norm_num_groups=32,
        flip_sin_to_cos=True,
        freq_shift=0,
    )


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random (diffusers zero-initialises zero convs, conv_out and the like): matrices ~ 1/sqrt(fan_in),
    norm scales around 1, biases small."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(math.prod(p.shape[1:])), generator=gen)
            elif name.endswith("weight"):
                p.normal_(1.0, 0.1, generator=gen)
            else:
                p.normal_(0.0, 0.05, generator=gen)


def four_layer_adapter_state_dict(seed: int = 2) -> dict:
    """tiny_adapter_state_dict() with two more Resampler layers (4, as in the published file: diffusers' loader builds
    IPAdapterPlusImageProjection with its default depth 4 and does not read the depth from the tensors) and random
    LayerNorm parameters."""
    sd = tiny_adapter_state_dict(seed)
    proj = dict(sd["image_proj"])
    gen = torch.Generator().manual_seed(seed + 1000)
    for i in (2, 3):
        for key in [k for k in proj if k.startswith("layers.0.")]:
            t = proj[key]
            proj[f"layers.{i}." + key[len("layers.0.") :]] = torch.randn(t.shape, generator=gen) / math.sqrt(
                t.shape[-1]
            )
    for key, t in proj.items():
        if "norm" in key or ".1.0." in key:  # LayerNorms: norm1/norm2/norm_out and the feed-forward's layers.i.1.0
            proj[key] = (
                (1.0 + 0.1 * torch.randn(t.shape, generator=gen))
                if key.endswith("weight")
                else 0.05 * torch.randn(t.shape, generator=gen)
            )
    return {"image_proj": proj, "ip_adapter": dict(sd["ip_adapter"])}


def convert(diffusers_sd: dict, mapping: dict, comfy_keys: set, what: str) -> dict:
    """Diffusers tensors under ComfyUI keys; every diffusers key must be mapped and every ComfyUI key filled."""
    unmapped = sorted(k for k in diffusers_sd if k not in mapping)
    assert not unmapped, f"{what}: {len(unmapped)} diffusers keys without a ComfyUI key, e.g. {unmapped[:5]}"
    out = {mapping[k]: v for k, v in diffusers_sd.items()}  # load_state_dict copies
    assert len(out) == len(diffusers_sd), f"{what}: two diffusers keys map to one ComfyUI key"
    assert set(out) == comfy_keys, (
        f"{what}: missing {sorted(comfy_keys - set(out))[:5]}, unexpected {sorted(set(out) - comfy_keys)[:5]}"
    )
    return out


def controlnet_key_map(diffusers_sd: dict) -> dict:
    """diffusers → cldm keys for a ControlNet, as comfy/controlnet.py load_controlnet_state_dict builds them for
    diffusers-format files (ComfyUI's model detection only knows full-width configs, so the map is built here)."""
    import comfy.utils

    keys = comfy.utils.unet_to_diffusers(tiny_unet_config())
    keys["controlnet_mid_block.weight"] = "middle_block_out.0.weight"
    keys["controlnet_mid_block.bias"] = "middle_block_out.0.bias"
    count = 0
    while f"controlnet_down_blocks.{count}.weight" in diffusers_sd:
        for s in (".weight", ".bias"):
            keys[f"controlnet_down_blocks.{count}{s}"] = f"zero_convs.{count}.0{s}"
        count += 1
    count = 0
    while True:
        name = "conv_in" if count == 0 else f"blocks.{count - 1}"
        last = f"controlnet_cond_embedding.{name}.weight" not in diffusers_sd
        name = "conv_out" if last else name
        for s in (".weight", ".bias"):
            keys[f"controlnet_cond_embedding.{name}{s}"] = f"input_hint_block.{count * 2}{s}"
        if last:
            return keys
        count += 1


@pytest.fixture(scope="module")
def pack(comfy_host):
    """This pack's modules as ComfyUI imported them."""
    return SimpleNamespace(
        unet_patching=comfy_host.pack_module("nodes.comfy_glue.unet_patching"),
        controlnet=comfy_host.pack_module("nodes.comfy_glue.controlnet"),
        identity=comfy_host.pack_module("instantid_core.identity"),
    )


@pytest.fixture(scope="module")
def parity(comfy_host, pack, tmp_path_factory):
    """The diffusers reference (UNet with the IP-Adapter loaded, ControlNet) and our ComfyUI models sharing its
    weights, the adapter saved as ip-adapter.bin and loaded by the pack, and the inputs of one step."""
    import comfy.utils
    from diffusers import ControlNetModel, UNet2DConditionModel
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    config = diffusers_config()
    unet = UNet2DConditionModel(
        out_channels=4, up_block_types=("CrossAttnUpBlock2D",) * 2 + ("UpBlock2D",), **config
    ).eval()
    randomize(unet, seed=100)
    controlnet = ControlNetModel(conditioning_channels=3, **config).eval()
    randomize(controlnet, seed=101)

    with pytest.MonkeyPatch.context() as mp:  # every tensor is loaded from diffusers below: skip the random init
        mp.setattr(tiny_models, "_init_weights", lambda module, seed: None)
        model, identitynet = tiny_sdxl(), tiny_controlnet()
    diffusion_model = model.model.diffusion_model
    unet_map = comfy.utils.unet_to_diffusers(tiny_unet_config())
    diffusion_model.load_state_dict(
        convert(unet.state_dict(), unet_map, set(diffusion_model.state_dict()), "UNet"), strict=True
    )
    cldm = identitynet.control_model
    cn_sd = controlnet.state_dict()
    cldm.load_state_dict(convert(cn_sd, controlnet_key_map(cn_sd), set(cldm.state_dict()), "ControlNet"), strict=True)

    adapter_sd = four_layer_adapter_state_dict()
    path = tmp_path_factory.mktemp("parity") / "ip-adapter.bin"
    torch.save(adapter_sd, path)
    adapter = pack.identity.InstantIDAdapter.load(path)
    unet._load_ip_adapter_weights([adapter_sd], low_cpu_mem_usage=False)  # diffusers' own IP-Adapter loader
    processors = [p for p in unet.attn_processors.values() if isinstance(p, IPAdapterAttnProcessor2_0)]
    assert len(processors) == 70 and all(p.num_tokens == [4] for p in processors)

    gen = torch.Generator().manual_seed(7)
    inputs = SimpleNamespace(
        face=torch.from_numpy(np.random.default_rng(1).normal(0, 1, 512).astype(np.float32)).reshape(1, 512),
        text=(torch.randn(1, 77, TOKEN_DIM, generator=gen), torch.randn(1, 77, TOKEN_DIM, generator=gen)),
        pooled=(torch.randn(1, 1280, generator=gen), torch.randn(1, 1280, generator=gen)),
        hint=torch.rand(1, LATENT_HW * 8, LATENT_HW * 8, 3, generator=gen),
        noise=torch.randn(1, 4, LATENT_HW, LATENT_HW, generator=gen),
    )
    return SimpleNamespace(
        unet=unet,
        controlnet=controlnet,
        processors=processors,
        model=model,
        identitynet=identitynet,
        adapter=adapter,
        inputs=inputs,
    )


def conditioning(text: torch.Tensor, pooled: torch.Tensor) -> list:
    """A CONDITIONING list as CLIPTextEncode gives for SDXL at 1024² (TIME_IDS)."""
    return [
        [
            text,
            {
                "pooled_output": pooled,
                "width": 1024,
                "height": 1024,
                "target_width": 1024,
                "target_height": 1024,
                "crop_w": 0,
                "crop_h": 0,
            },
        ]
    ]


def comfy_step(model, positive, negative, noise: torch.Tensor, sigma: float) -> dict:
    """One real ComfyUI sampling step (Euler, CFG, cond and uncond batched); the cond and uncond eps it computed."""
    import comfy.sample
    import comfy.samplers

    seen, calls = {}, []

    def record_batch(apply_model, args):
        calls.append(list(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    def capture(args):
        seen.update(
            x=args["input"].clone(),
            sigma=args["sigma"].clone(),
            cond=args["cond_denoised"].clone(),
            uncond=args["uncond_denoised"].clone(),
        )
        return args["cond"]  # x - cfg_result: the value is of no interest here

    model = model.clone()
    model.set_model_sampler_cfg_function(capture)
    model.set_model_unet_function_wrapper(record_batch)
    latent = torch.zeros_like(noise)
    comfy.sample.sample_custom(
        model,
        noise,
        CFG,
        comfy.samplers.sampler_object("euler"),
        torch.tensor([sigma, 0.0]),
        positive,
        negative,
        latent,
        disable_pbar=True,
        seed=0,
    )
    assert len(calls) == 1 and sorted(calls[0]) == [0, 1], calls  # one UNet call, cond and uncond batched
    s = seen["sigma"].reshape(-1, 1, 1, 1)
    return {
        "x": seen["x"],
        "sigma": seen["sigma"],
        "cond": (seen["x"] - seen["cond"]) / s,
        "uncond": (seen["x"] - seen["uncond"]) / s,
    }


@torch.no_grad()
def reference_eps(ref, x_in, t, text, pooled, face, scale: float, strength: float) -> torch.Tensor:
    """diffusers: ControlNet on the face tokens, then the UNet with the IP-Adapter at `scale` and those residuals."""
    for processor in ref.processors:
        processor.scale = [scale]
    image_embeds = [face.reshape(1, 1, 1, -1)]  # [per adapter: (batch, images, sequence, 512)]
    added = {"text_embeds": pooled, "time_ids": torch.tensor([TIME_IDS])}
    tokens = ref.unet.encoder_hid_proj(image_embeds)[0].reshape(1, -1, TOKEN_DIM)
    hint = ref.inputs.hint.movedim(-1, 1)  # NCHW in 0..1
    down, mid = ref.controlnet(
        x_in,
        t,
        encoder_hidden_states=tokens,
        controlnet_cond=hint,
        conditioning_scale=strength,
        added_cond_kwargs=added,
        return_dict=False,
    )
    return ref.unet(
        x_in,
        t,
        encoder_hidden_states=text,
        added_cond_kwargs=dict(added, image_embeds=image_embeds),
        down_block_additional_residuals=down,
        mid_block_additional_residual=mid,
    ).sample


def errors(ours: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(max abs error, max abs error / max |reference|)."""
    err = float((ours - reference).abs().max())
    return err, err / float(reference.abs().max())


def test_one_step_cond_and_uncond_matches_the_diffusers_reference_within_fp32_roundoff(parity, pack):
    ref, inputs = parity, parity.inputs
    sampling = ref.model.get_model_object("model_sampling")
    sigma = float(sampling.sigmas[499])  # mid-schedule (t = 499)

    # Our path: the pack's tokens, identity attention and IdentityNet, sampled by ComfyUI.
    tokens = ref.adapter.tokens(inputs.face.numpy(), "average", noise=0.0)
    patched = pack.unet_patching.apply_identity_attention(
        ref.model, ref.adapter, tokens, WEIGHT, 0.0, 1.0, "linear", None
    )
    plain = conditioning(inputs.text[0], inputs.pooled[0]), conditioning(inputs.text[1], inputs.pooled[1])
    positive, negative = pack.controlnet.apply_identitynet(
        *plain, ref.identitynet, tokens, inputs.hint, STRENGTH, 0.0, 1.0
    )
    ours = comfy_step(patched, positive, negative, inputs.noise, sigma)
    unpatched = comfy_step(ref.model, *plain, inputs.noise, sigma)

    # The reference, at the same x and sigma: EPS model input x / sqrt(sigma² + 1), ComfyUI's sigma → timestep.
    x, s = ours["x"], ours["sigma"]
    assert torch.equal(x, unpatched["x"]) and float(s) == pytest.approx(sigma)
    x_in = x / torch.sqrt(s.reshape(-1, 1, 1, 1) ** 2 + 1.0)
    t = sampling.timestep(s).float()
    zeros = torch.zeros_like(inputs.face)

    def ref_eps(half: int, face: torch.Tensor, scale: float = WEIGHT, strength: float = STRENGTH) -> torch.Tensor:
        return reference_eps(ref, x_in, t, inputs.text[half], inputs.pooled[half], face, scale, strength)

    def ref_tokens(face: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return ref.unet.encoder_hid_proj([face.reshape(1, 1, 1, -1)])[0].reshape(1, -1, TOKEN_DIM)

    reference = {"cond": ref_eps(0, inputs.face), "uncond": ref_eps(1, zeros)}
    report = {
        "tokens cond (Resampler)": errors(tokens.cond, ref_tokens(inputs.face)),
        "tokens uncond (Resampler of zeros)": errors(tokens.uncond, ref_tokens(zeros)),
        "eps cond": errors(ours["cond"], reference["cond"]),
        "eps uncond": errors(ours["uncond"], reference["uncond"]),
    }
    effects = {
        f"identity attention (reference, scale 0 vs {WEIGHT})": errors(
            ref_eps(0, inputs.face, scale=0.0), reference["cond"]
        ),
        f"IdentityNet (reference, strength 0 vs {STRENGTH})": errors(
            ref_eps(0, inputs.face, strength=0.0), reference["cond"]
        ),
        "InstantID (ComfyUI, unpatched vs patched), cond": errors(unpatched["cond"], ours["cond"]),
        "InstantID (ComfyUI, unpatched vs patched), uncond": errors(unpatched["uncond"], ours["uncond"]),
    }
    lines = [f"  {name:52s} max abs {a:.3e}  rel {r:.3e}" for name, (a, r) in report.items()]
    lines += [f"  effect of {name:42s} max abs {a:.3e}  rel {r:.3e}" for name, (a, r) in effects.items()]
    scale = float(reference["cond"].abs().max())
    message = f"parity at sigma {sigma:.4f}, t {float(t[0]):.2f} (max |eps| {scale:.3f}):\n" + "\n".join(lines)
    logging.getLogger(__name__).info(message)  # shown with pytest --log-cli-level=INFO

    assert all(r < FP32_ROUNDOFF for _, r in report.values()), message
    worst = max(a for a, _ in report.values())
    assert all(a > 1000 * worst for a, _ in effects.values()), message  # parity is far from trivial

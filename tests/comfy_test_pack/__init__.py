"""A test-only ComfyUI node pack: tiny SDXL-topology models for the server tier, served through ComfyUI's own classes.

The test server links this folder into its `custom_nodes/` beside the InstantID pack (never a user's ComfyUI). Its
nodes stand where the full-size loaders stand in a real graph, so the server tier runs real prompts through
`/prompt` in seconds where the size of the models proves nothing:
- InstantIDTestTinyModel: a MODEL, a `model_base.SDXL` with SDXL's 70 cross-attention layers at 1/10 width, in a
  ComfyUI ModelPatcher (the model manager loads, patches and frees it as it does a checkpoint's);
- InstantIDTestTinyControlNet: a CONTROL_NET, `comfy.controlnet.ControlNet` around a cldm ControlNet of IdentityNet's
  topology at that width, or of a "mid" SDXL ControlNet's, or an SD1.5 ControlNet's (768-wide context);
- InstantIDTestText: CONDITIONING from text, a deterministic 77×2048 context and 1280 pooled vector per text;
- InstantIDTestDecode: a LATENT as an IMAGE (its first three channels, squashed to 0..1, 8× nearest), so two
  pictures are equal exactly when the sampled latents are;
- GET /instantid_test/census: the InstantID objects alive in the server (after a garbage collection), for the soak.

The tiny models are the host tier's (tests/helpers/tiny_models.py), loaded from their file so that this pack needs
nothing on sys.path; the matching adapter is written by the server fixture (tests/conftest.py).
"""

import gc
import importlib.util
import zlib
from pathlib import Path

import torch
from aiohttp import web
from server import PromptServer

_TINY_MODELS = Path(__file__).resolve().parent.parent / "helpers" / "tiny_models.py"


def _load_tiny_models():
    """tests/helpers/tiny_models.py as a module of its own."""
    spec = importlib.util.spec_from_file_location("instantid_test_tiny_models", _TINY_MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load_tiny_models()

CONTROLNET_KINDS = {
    "identitynet": lambda seed: tiny.tiny_controlnet(seed=seed),
    "sdxl mid": lambda seed: tiny.tiny_controlnet(seed, *tiny.MID_CONTROLNET_DEPTHS),
    "sd15": lambda seed: tiny.tiny_sd15_controlnet(seed=seed),
}


class InstantIDTestTinyModel:
    """A tiny SDXL-topology MODEL with random weights fixed by the seed."""

    CATEGORY = "InstantID/tests"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        """The seed of the weights."""
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31, "tooltip": "weights' seed"})}}

    def build(self, seed):
        """The model in a ModelPatcher."""
        return (tiny.tiny_sdxl(seed=seed),)


class InstantIDTestTinyControlNet:
    """A tiny CONTROL_NET: IdentityNet's topology, a "mid" SDXL ControlNet's or an SD1.5 one's."""

    CATEGORY = "InstantID/tests"
    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        """The kind of ControlNet and the seed of its weights."""
        return {
            "required": {
                "kind": (list(CONTROLNET_KINDS), {"tooltip": "which ControlNet's topology"}),
                "seed": ("INT", {"default": 1, "min": 0, "max": 2**31, "tooltip": "weights' seed"}),
            }
        }

    def build(self, kind, seed):
        """The ControlNet, as ComfyUI's ControlNet loader would hand it over."""
        return (CONTROLNET_KINDS[kind](seed),)


class InstantIDTestText:
    """CONDITIONING for a text: a context and pooled vector drawn from a generator seeded by the text."""

    CATEGORY = "InstantID/tests"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        """The text."""
        return {"required": {"text": ("STRING", {"default": "", "tooltip": "the prompt"})}}

    def encode(self, text):
        """[[context 1×77×2048, {"pooled_output": 1×1280}]], the same for the same text."""
        generator = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        context = torch.randn(1, 77, tiny.TOKEN_DIM, generator=generator)
        pooled = torch.randn(1, 1280, generator=generator)
        return ([[context, {"pooled_output": pooled}]],)


class InstantIDTestDecode:
    """A LATENT as an IMAGE: channels 0-2, squashed to 0..1, each latent cell 8×8 pixels."""

    CATEGORY = "InstantID/tests"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        """The latent."""
        return {"required": {"samples": ("LATENT", {"tooltip": "the sampled latent"})}}

    def decode(self, samples):
        """B×H×W×3 in 0..1."""
        x = samples["samples"][:, :3].float()
        picture = torch.sigmoid(x).repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
        return (picture.movedim(1, -1).contiguous(),)


CENSUS = {
    "identity_kv": "IdentityKV",
    "identity_attention": "IdentityAttention",
    "attention_patches": "IdentityAttentionPatch",
    "attention_guards": "IdentityAttentionGuard",
    "identitynet_controls": "IdentityNetControl",
}
"""What the census counts: its key, and the InstantID class whose live instances it counts."""


def census() -> dict:
    """Live InstantID objects by kind, and the bytes held by live identity K/V."""
    gc.collect()
    counts = dict.fromkeys(CENSUS, 0)
    kinds = {name: key for key, name in CENSUS.items()}
    kv_bytes = 0
    for obj in gc.get_objects():
        cls = type(obj)
        key = kinds.get(cls.__name__)
        if key is None or "instantid" not in cls.__module__.replace("-", "_"):
            continue
        counts[key] += 1
        if key == "identity_kv":
            kv_bytes += sum(p.numel() * p.element_size() for p in obj.parameters())
    return counts | {"identity_kv_bytes": kv_bytes}


@PromptServer.instance.routes.get("/instantid_test/census")
async def census_route(request):
    """The census as JSON."""
    return web.json_response(census())


NODE_CLASS_MAPPINGS = {
    cls.__name__: cls
    for cls in (InstantIDTestTinyModel, InstantIDTestTinyControlNet, InstantIDTestText, InstantIDTestDecode)
}

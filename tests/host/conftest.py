"""Host-tier fixtures: this pack's modules as ComfyUI imported them, a tiny adapter and a tiny model."""

from types import SimpleNamespace

import pytest
import torch

from helpers.tiny_models import tiny_adapter_state_dict, tiny_sdxl


@pytest.fixture(scope="module")
def pack(comfy_host):
    """This pack's modules as ComfyUI imported them."""
    names = (
        "nodes.comfy_glue.unet_patching",
        "nodes.comfy_glue.controlnet",
        "nodes.comfy_glue.attn2_protocol",
        "instantid_core.identity",
        "instantid_core.faces",
        "instantid_core.attention",
        "instantid_core.unet_layers",
        "instantid_core.errors",
    )
    return SimpleNamespace(**{n.split(".")[-1]: comfy_host.pack_module(n) for n in names})


@pytest.fixture(scope="module")
def adapter(pack, tmp_path_factory):
    """A tiny InstantID adapter, written as ip-adapter.bin and loaded by the pack's loader."""
    path = tmp_path_factory.mktemp("adapter") / "ip-adapter.bin"
    torch.save(tiny_adapter_state_dict(), path)
    return pack.identity.InstantIDAdapter.load(path)


@pytest.fixture(scope="module")
def model():
    """A tiny SDXL-topology model (70 cross-attention layers)."""
    return tiny_sdxl(seed=0)


@pytest.fixture(scope="module")
def face_pack(comfy_host, standins):
    """The stand-in antelopev2 pack, loaded by the pack's loader."""
    return comfy_host.pack_module("instantid_core.face_analysis").FaceModels.load(
        standins / "models" / "insightface" / "models" / "antelopev2", "CPU", 640
    )

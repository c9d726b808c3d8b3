"""The stand-in model files have exactly the real files' formats (docs/design.md); the real loaders read
them."""

import pytest
import torch

pytestmark = pytest.mark.standins

# docs/design.md, written out here independently of the generator: the Resampler keys and the diffusers-order layer blocks.
RESAMPLER_SHAPES = {
    "latents": (1, 16, 1280),
    "proj_in.weight": (1280, 512),
    "proj_in.bias": (1280,),
    "proj_out.weight": (2048, 1280),
    "proj_out.bias": (2048,),
    "norm_out.weight": (2048,),
    "norm_out.bias": (2048,),
    **{
        key: shape
        for i in range(4)
        for key, shape in {
            f"layers.{i}.0.norm1.weight": (1280,),
            f"layers.{i}.0.norm1.bias": (1280,),
            f"layers.{i}.0.norm2.weight": (1280,),
            f"layers.{i}.0.norm2.bias": (1280,),
            f"layers.{i}.0.to_q.weight": (1280, 1280),
            f"layers.{i}.0.to_kv.weight": (2560, 1280),
            f"layers.{i}.0.to_out.weight": (1280, 1280),
            f"layers.{i}.1.0.weight": (1280,),
            f"layers.{i}.1.0.bias": (1280,),
            f"layers.{i}.1.1.weight": (5120, 1280),
            f"layers.{i}.1.3.weight": (1280, 5120),
        }.items()
    },
}
LAYER_BLOCKS = [
    ("down_blocks.1", 4, 640),
    ("down_blocks.2", 20, 1280),
    ("up_blocks.0", 30, 1280),
    ("up_blocks.1", 6, 640),
    ("mid_block", 10, 1280),
]


def spec_ip_adapter_shapes() -> dict[str, tuple[int, int]]:
    """'{n}.to_k_ip.weight' / '{n}.to_v_ip.weight' for n = 1, 3, ..., 139, with the width of n's block."""
    widths = [width for _block, count, width in LAYER_BLOCKS for _ in range(count)]
    shapes = {}
    for position, width in enumerate(widths):
        n = 2 * position + 1
        shapes[f"{n}.to_k_ip.weight"] = (width, 2048)
        shapes[f"{n}.to_v_ip.weight"] = (width, 2048)
    return shapes


def test_standin_ip_adapter_has_every_key_and_shape_of_spec_section_4(standins):
    path = standins / "models" / "instantid" / "ip-adapter.bin"
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)

    assert set(state) == {"image_proj", "ip_adapter"}
    assert {k: tuple(t.shape) for k, t in state["image_proj"].items()} == RESAMPLER_SHAPES
    assert len(state["image_proj"]) == 51
    assert round(sum(t.numel() for t in state["image_proj"].values()) / 1e6, 1) == 82.0
    assert {k: tuple(t.shape) for k, t in state["ip_adapter"].items()} == spec_ip_adapter_shapes()
    assert len(state["ip_adapter"]) == 140
    assert all(t.dtype == torch.float32 for part in state.values() for t in part.values())
    assert all(torch.isfinite(t).all() for t in state["image_proj"].values())


def test_standin_ip_adapter_loads_through_the_packs_adapter_loader(standins):
    from instantid_core.adapter import load_adapter

    weights = load_adapter(standins / "models" / "instantid" / "ip-adapter.bin")

    assert (weights.embedding_dim, weights.num_tokens, weights.token_dim) == (512, 16, 2048)
    assert sorted(weights.kv) == list(range(1, 140, 2))
    tokens = weights.build_resampler().tokens(torch.randn(1, 512) * 20, torch.float32)
    assert tokens.shape == (1, 16, 2048) and torch.isfinite(tokens).all()


def test_insightface_face_analysis_finds_a_standin_face_with_512d_embedding_and_5_keypoints(standins):
    import cv2
    from insightface.app import FaceAnalysis

    pack = standins / "models" / "insightface" / "models" / "antelopev2"
    app = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"], allowed_modules=["detection", "recognition"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
    assert {type(m).__name__ for m in app.models.values()} == {"SCRFD", "ArcFaceONNX"}
    bgr = cv2.imread(str(standins / "input" / "instantid_face.png"))

    faces = app.get(bgr)

    assert len(faces) == 1
    face = faces[0]
    assert face.embedding.shape == (512,) and face.kps.shape == (5, 2)
    # The stand-in face is drawn 300 px wide centred at (384, 430) (scripts/standins/images.py).
    x1, y1, x2, y2 = face.bbox
    assert abs((x1 + x2) / 2 - 384) < 15 and abs((y1 + y2) / 2 - 430) < 15
    assert abs((x2 - x1) - 300) < 30


def test_insightface_finds_no_face_in_a_plain_grey_picture(standins):
    import numpy as np
    from insightface.app import FaceAnalysis

    pack = standins / "models" / "insightface" / "models" / "antelopev2"
    app = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"], allowed_modules=["detection", "recognition"])
    app.prepare(ctx_id=-1, det_size=(640, 640))

    assert app.get(np.full((512, 512, 3), 128, np.uint8)) == []


CONTROLNET_DIR = ("models", "controlnet")
# Transformer blocks per attention module, by diffusers name: a full SDXL ControlNet (InstantID's IdentityNet) and
# diffusers' controlnet-canny-sdxl-1.0-mid, whose 640-wide attentions keep only their norm and projections.
FULL_SDXL_DEPTHS = {
    "down_blocks.1.attentions.0": 2,
    "down_blocks.1.attentions.1": 2,
    "down_blocks.2.attentions.0": 10,
    "down_blocks.2.attentions.1": 10,
    "mid_block.attentions.0": 10,
}
MID_SDXL_DEPTHS = {
    "down_blocks.1.attentions.0": 0,
    "down_blocks.1.attentions.1": 0,
    "down_blocks.2.attentions.0": 1,
    "down_blocks.2.attentions.1": 1,
    "mid_block.attentions.0": 1,
}


def safetensors_shapes(path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """{name: (shape, dtype)} of every tensor in a .safetensors file, read from its header."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {key: (tuple(f.get_slice(key).get_shape()), f.get_slice(key).get_dtype()) for key in f.keys()}


def transformer_depths(names) -> dict[str, int]:
    """Transformer blocks per attention module of a diffusers UNet-style state dict."""
    attentions = {name.split(".proj_in.")[0] for name in names if ".attentions." in name and ".proj_in." in name}
    return {
        attention: len(
            {
                name.split(".transformer_blocks.")[1].split(".")[0]
                for name in names
                if name.startswith(attention + ".transformer_blocks.")
            }
        )
        for attention in attentions
    }


def test_standin_identitynet_is_a_full_sdxl_controlnet(standins):
    shapes = safetensors_shapes(standins.joinpath(*CONTROLNET_DIR, "instantid", "diffusion_pytorch_model.safetensors"))

    assert transformer_depths(shapes) == FULL_SDXL_DEPTHS
    assert round(sum(torch.Size(shape).numel() for shape, _ in shapes.values()) / 1e6) == 1251


def test_standin_mid_controlnet_is_its_own_file_in_the_mid_sdxl_layout(standins):
    path = standins.joinpath(*CONTROLNET_DIR, "diffusers_xl_canny_mid.safetensors")
    shapes = safetensors_shapes(path)

    assert not path.is_symlink()
    assert transformer_depths(shapes) == MID_SDXL_DEPTHS
    assert shapes["controlnet_cond_embedding.conv_in.weight"][0] == (16, 3, 3, 3)
    assert shapes["down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k.weight"][0] == (1280, 2048)
    assert shapes["add_embedding.linear_1.weight"][0] == (1280, 2816)
    assert sorted(name for name in shapes if name.startswith("controlnet_down_blocks.")) == sorted(
        f"controlnet_down_blocks.{i}.{part}" for i in range(9) for part in ("weight", "bias")
    )
    assert {dtype for _, dtype in shapes.values()} == {"F16"}
    assert round(sum(torch.Size(shape).numel() for shape, _ in shapes.values()) / 1e6, 1) == 272.6


def test_standin_mid_controlnet_has_other_weights_than_the_identitynet(standins):
    from safetensors import safe_open

    controlnet = standins.joinpath(*CONTROLNET_DIR)
    shared = (
        "conv_in.weight",
        "controlnet_cond_embedding.conv_in.weight",
        "down_blocks.0.resnets.0.conv1.weight",
        "controlnet_down_blocks.0.weight",
        "time_embedding.linear_1.weight",
    )
    with (
        safe_open(str(controlnet / "instantid" / "diffusion_pytorch_model.safetensors"), "pt") as identitynet,
        safe_open(str(controlnet / "diffusers_xl_canny_mid.safetensors"), "pt") as mid,
    ):
        for name in shared:
            a, b = identitynet.get_tensor(name), mid.get_tensor(name)
            assert a.shape == b.shape and not torch.equal(a, b), name


def keypoint_hint(centre: tuple[float, float], size: int = 256) -> torch.Tensor:
    """A face's keypoints drawn at 1024² and shrunk to (1, 3, size, size) in 0..1, as IdentityNet gets them."""
    import numpy as np

    from instantid_core.keypoints import draw_keypoints

    offsets = np.array([[-40, -20], [40, -20], [0, 15], [-32, 50], [32, 50]], dtype=np.float32)
    picture = draw_keypoints([offsets + np.array(centre, dtype=np.float32)], 1024, 1024)
    hint = torch.from_numpy(picture).float().div(255).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(hint, size=(size, size), mode="nearest-exact")


def test_standin_identitynet_hint_outweighs_the_latent_where_drawn_and_stays_finite_in_fp16(standins):
    from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
    from safetensors import safe_open

    prefix = "controlnet_cond_embedding."
    with safe_open(
        str(standins.joinpath(*CONTROLNET_DIR, "instantid", "diffusion_pytorch_model.safetensors")), "pt"
    ) as f:
        weights = {key[len(prefix) :]: f.get_tensor(key).float() for key in f.keys() if key.startswith(prefix)}
        conv_in = f.get_tensor("conv_in.weight").float()
    embedding = ControlNetConditioningEmbedding(320)
    embedding.load_state_dict(weights)
    latent_features = torch.nn.functional.conv2d(
        torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0)), conv_in, padding=1
    )
    here, there = keypoint_hint((500, 420)), keypoint_hint((760, 440))

    with torch.no_grad():
        at_here, at_there = embedding(here), embedding(there)
        in_fp16 = embedding.half()(here.half()).float()

    latent_rms, peak = latent_features.pow(2).mean().sqrt(), at_here.abs().max()
    assert peak > 10 * latent_rms  # measured: about 100x
    assert (at_here - at_there).abs().max() > 10 * latent_rms
    assert torch.isfinite(in_fp16).all() and (in_fp16 - at_here).abs().max() < 0.01 * peak  # measured: 0.12 %

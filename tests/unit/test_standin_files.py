"""The stand-in model files have exactly the real files' formats (SPEC §4, §7a); the real loaders read them."""
import pytest
import torch

pytestmark = pytest.mark.unit

# SPEC §4, written out here independently of the generator: the Resampler keys and the diffusers-order layer blocks.
RESAMPLER_SHAPES = {
    "latents": (1, 16, 1280),
    "proj_in.weight": (1280, 512),
    "proj_in.bias": (1280,),
    "proj_out.weight": (2048, 1280),
    "proj_out.bias": (2048,),
    "norm_out.weight": (2048,),
    "norm_out.bias": (2048,),
    **{key: shape for i in range(4) for key, shape in {
        f"layers.{i}.0.norm1.weight": (1280,), f"layers.{i}.0.norm1.bias": (1280,),
        f"layers.{i}.0.norm2.weight": (1280,), f"layers.{i}.0.norm2.bias": (1280,),
        f"layers.{i}.0.to_q.weight": (1280, 1280), f"layers.{i}.0.to_kv.weight": (2560, 1280),
        f"layers.{i}.0.to_out.weight": (1280, 1280),
        f"layers.{i}.1.0.weight": (1280,), f"layers.{i}.1.0.bias": (1280,),
        f"layers.{i}.1.1.weight": (5120, 1280), f"layers.{i}.1.3.weight": (1280, 5120),
    }.items()},
}
LAYER_BLOCKS = [("down_blocks.1", 4, 640), ("down_blocks.2", 20, 1280), ("up_blocks.0", 30, 1280),
                ("up_blocks.1", 6, 640), ("mid_block", 10, 1280)]


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

"""Where users' pictures depend on following InstantID's reference pipeline, on tiny models and the stand-in face pack:
the keypoint image reaches IdentityNet drawn at the generation size whichever node made it, and the face region keeps
IdentityNet's residuals and the identity attention inside the face box at every layer."""

import logging

import cv2
import numpy as np
import pytest
import torch

from helpers.host_runs import (
    as_image,
    assert_every_row_is,
    cells,
    check_region,
    check_residuals_in_region,
    denoise,
    face_photo,
    hint_received,
    record_identity_calls,
    record_identitynet_residuals,
)
from helpers.reference import reference_attention_region, reference_box_mask, reference_hint
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning
from scripts.standins.images import standin_photo

pytestmark = pytest.mark.host

PHOTOS = [(256, 256), (640, 480), (1200, 1600), (4000, 3000)]
"""Reference photo sizes (width, height), from a small crop to a 12-megapixel phone photo."""
SETTINGS = (0.8, 0.0, 1.0, "average", 0.0)
"""Apply IdentityNet's strength, start and end percent, embedding combination and noise."""
GENERATION_SIZES = [(1024, 1024), (832, 1216), (1216, 832), (640, 1536)]


def photo(width: int, height: int) -> torch.Tensor:
    """A stand-in photo with one face, as an IMAGE (drawn at most 1600 px wide and enlarged: drawing is slow)."""
    scale = min(1.0, 1600 / max(width, height))
    small = (round(width * scale), round(height * scale))
    face = (small[0] * 0.45, small[1] * 0.42, min(small) * 0.35, 2)
    picture = standin_photo(*small, [face])
    return as_image(cv2.resize(picture, (width, height), interpolation=cv2.INTER_LINEAR))


def apply_node(comfy_host, node_id: str, adapter, face_pack, reference: torch.Tensor, **options):
    """(model, positive, negative) from an all-in-one node (or its ComfyUI_InstantID alias) on tiny models, weight
    0.8 over the whole schedule; `options` are the node's optional inputs (e.g. face_region)."""
    settings = {"InstantIDApply": (0.8, 0.0, 1.0, "error"), "ApplyInstantID": (0.8, 0.0, 1.0)}[node_id]
    conditioning = (sdxl_conditioning(1), sdxl_conditioning(2))
    if node_id == "ApplyInstantID":  # ComfyUI_InstantID's order: the photo among the graph inputs
        graph = (adapter, face_pack, tiny_controlnet(seed=4), reference, tiny_sdxl())
        return comfy_host.node(node_id).execute(*graph, *conditioning, *settings, **options).result
    graph = (adapter, face_pack, tiny_controlnet(seed=4), tiny_sdxl())
    return comfy_host.node(node_id).execute(*graph, *conditioning, *settings, image=reference, **options).result


@pytest.mark.parametrize("photo_size", PHOTOS)
def test_apply_instantid_gives_identitynet_the_keypoints_drawn_at_each_generation_size(
    comfy_host, face_pack, adapter, photo_size
):
    reference = photo(*photo_size)
    (face,) = face_pack.analyze(reference.numpy()).chosen_faces
    model, positive, negative = apply_node(
        comfy_host, "InstantIDApply", adapter, face_pack, reference, face_region=False
    )

    for size in GENERATION_SIZES:
        hint = hint_received(model, positive, negative, size)
        assert_every_row_is(hint, reference_hint(face.kps, face.image_size, size))


@pytest.mark.parametrize("keypoints_edge", ["kps", "image"])
@pytest.mark.parametrize("photo_size", [(256, 256), (4000, 3000)])
def test_the_keypoints_and_apply_identitynet_nodes_give_the_drawing_at_the_generation_size_not_the_nodes_size(
    comfy_host, face_pack, adapter, photo_size, keypoints_edge
):
    """Through the explicit 'kps' edge, and through the keypoint image the Keypoints node marked (as
    ComfyUI_InstantID graphs hand keypoints over)."""
    faces, _preview, _mask = (
        comfy_host.node("InstantIDAnalyzeFaces").execute(face_pack, photo(*photo_size), "largest", 0, "error").result
    )
    keypoints, _face_mask, kps = (
        comfy_host.node("InstantIDKeypoints").execute(faces, 512, 512, "as in source", 0.35, 0, False).result
    )
    edge = {"kps": kps} if keypoints_edge == "kps" else {"image": keypoints}
    positive, negative = (
        comfy_host.node("InstantIDApplyIdentityNet")
        .execute(sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), adapter, faces, *SETTINGS, **edge)
        .result
    )

    (face,) = faces.chosen_faces
    for size in GENERATION_SIZES:
        hint = hint_received(tiny_sdxl(), positive, negative, size)
        assert_every_row_is(hint, reference_hint(face.kps, face.image_size, size))


def test_when_generation_sizes_alternate_identitynet_draws_each_size_once_and_never_uses_a_stale_hint(
    comfy_host, face_pack, adapter, monkeypatch
):
    """A hires pass or two samplers alternate sizes through the same IdentityNet: every hint is the drawing at its
    size, drawn once per size; the hint ComfyUI prepared for the other size is never reused (ComfyUI 0.38 keeps
    prepared hints per latent size in cond_hints: IdentityNet clears them with the hint they were made from)."""
    controlnet = comfy_host.pack_module("nodes.comfy_glue.controlnet")
    drawn = []
    draw = controlnet.draw_layouts
    monkeypatch.setattr(controlnet, "draw_layouts", lambda layouts, size: drawn.append(size) or draw(layouts, size))
    faces, _preview, _mask = (
        comfy_host.node("InstantIDAnalyzeFaces").execute(face_pack, photo(640, 480), "largest", 0, "error").result
    )
    kps = comfy_host.node("InstantIDKeypoints").execute(faces, 512, 512, "as in source", 0.35, 0, False).result[2]
    positive, negative = (
        comfy_host.node("InstantIDApplyIdentityNet")
        .execute(
            sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), adapter, faces, *SETTINGS, kps=kps
        )
        .result
    )
    (face,) = faces.chosen_faces
    model, sizes = tiny_sdxl(), [(256, 384), (384, 256), (256, 384), (384, 256)]

    for size in sizes:
        assert_every_row_is(
            hint_received(model, positive, negative, size), reference_hint(face.kps, face.image_size, size)
        )

    assert drawn == sizes[:2]


def test_the_compat_keypoints_preprocessor_and_apply_controlnet_give_the_drawing_at_the_generation_size(
    comfy_host, face_pack, adapter
):
    pose = photo(1200, 1600)
    (face,) = face_pack.analyze(pose.numpy()).chosen_faces
    keypoints = comfy_host.node("FaceKeypointsPreprocessor").execute(face_pack, pose).result[0]
    tokens = adapter.tokens(face_pack.analyze(pose.numpy()).embeddings())
    positive, negative = (
        comfy_host.node("ApplyInstantIDControlNet")
        .execute(tokens, tiny_controlnet(seed=4), keypoints, sdxl_conditioning(1), sdxl_conditioning(2), 1.0, 0.0, 1.0)
        .result
    )

    for size in GENERATION_SIZES[:2]:
        hint = hint_received(tiny_sdxl(), positive, negative, size)
        assert_every_row_is(hint, reference_hint(face.kps, face.image_size, size))


def test_a_keypoint_image_that_did_not_come_from_an_instantid_node_is_resized_as_comfyui_resizes_hints(
    comfy_host, pack, adapter
):
    import comfy.utils

    picture = torch.rand(1, 300, 200, 3, generator=torch.Generator().manual_seed(3))
    tokens = adapter.tokens(np.random.default_rng(1).normal(0, 1, (1, 512)).astype(np.float32))
    positive, negative = pack.controlnet.apply_identitynet(
        sdxl_conditioning(1), sdxl_conditioning(2), tiny_controlnet(seed=4), tokens, picture, 1.0, 0.0, 1.0
    )

    hint = hint_received(tiny_sdxl(), positive, negative, (256, 384))

    expected = comfy.utils.common_upscale(picture.movedim(-1, 1), 256, 384, "nearest-exact", "center")
    assert_every_row_is(hint, expected)


def test_face_region_needs_a_keypoint_image_from_an_instantid_node(comfy_host, pack, face_pack, adapter, standins):
    faces = face_pack.analyze(face_photo(standins).numpy())
    node = comfy_host.node("InstantIDApplyIdentityNet")
    image = torch.rand(1, 64, 64, 3)

    with pytest.raises(pack.errors.InstantIDError, match="face_region needs to know where the face is"):
        node.execute(
            sdxl_conditioning(1),
            sdxl_conditioning(2),
            tiny_controlnet(seed=4),
            adapter,
            faces,
            *SETTINGS,
            image=image,
            face_region=True,
        )


def test_a_keypoint_image_without_its_keypoints_is_resized_and_the_log_says_so_once(
    comfy_host, face_pack, adapter, standins, caplog
):
    faces = face_pack.analyze(face_photo(standins).numpy())
    keypoints = comfy_host.node("InstantIDKeypoints").execute(faces, 512, 512, "as in source", 0.35, 0, False).result[0]
    resized = keypoints * 1.0  # a new tensor, as any resize or batch node makes: the layouts stay behind
    node = comfy_host.node("InstantIDApplyIdentityNet")

    with caplog.at_level(logging.INFO):
        positive, negative = node.execute(
            sdxl_conditioning(1),
            sdxl_conditioning(2),
            tiny_controlnet(seed=4),
            adapter,
            faces,
            *SETTINGS,
            image=resized,
        ).result
        hint = hint_received(tiny_sdxl(), positive, negative, (256, 256))

    said = [r for r in caplog.records if "came without its keypoints" in r.getMessage()]
    assert len(said) == 1 and "Apply IdentityNet" in said[0].getMessage()
    (face,) = faces.chosen_faces
    assert not torch.equal(hint[:1], reference_hint(face.kps, face.image_size, (256, 256)))  # resized, not redrawn


# --- the face region ---------------------------------------------------------------------------------------------------

REGION_SIZE = (256, 256)
"""The generated picture of the face-region tests: a 32×32 latent, layers at 32, 16 and 8 (cells of 8, 16, 32 px)."""


@pytest.fixture
def face_region_run(comfy_host, face_pack, adapter, pack, monkeypatch, standins):
    """Apply InstantID with face_region on and sample one step at REGION_SIZE; returns the recorded identity terms
    and IdentityNet residuals, each with the same computation without the region, and the face box as drawn."""
    model, positive, negative = apply_node(comfy_host, "InstantIDApply", adapter, face_pack, face_photo(standins))
    (layout,) = positive[0][1]["control"].keypoints
    calls = record_identity_calls(monkeypatch, pack, unlimited=True)
    residuals = record_identitynet_residuals(monkeypatch, pack)

    denoise(model, positive, negative, latent=(1, 4, REGION_SIZE[1] // 8, REGION_SIZE[0] // 8))

    return calls, residuals, layout.box_mask(REGION_SIZE)


def test_the_face_region_is_the_reference_demos_face_box_at_the_generation_size(face_region_run, face_pack, standins):
    *_, box_mask = face_region_run
    (face,) = face_pack.analyze(face_photo(standins).numpy()).chosen_faces

    expected = reference_box_mask(face.bbox, face.image_size, REGION_SIZE)
    assert np.array_equal(box_mask, expected), f"{np.count_nonzero(box_mask != expected)} pixels differ from the box"


def test_with_face_region_the_identity_attention_is_zero_outside_the_face_box_and_unchanged_inside(face_region_run):
    calls, _, box_mask = face_region_run

    assert len(calls) == 70
    for key, term, call, _, unlimited in calls:
        grid = (term.shape[0], *call.layer_hw, -1)  # [rows, h*w, C] as [rows, C, h, w]
        check_region(term.reshape(grid).movedim(-1, 1), unlimited.reshape(grid).movedim(-1, 1), box_mask, key)


def test_with_face_region_the_identity_term_is_the_reference_attentions_at_every_layer_edge_cells_included(
    face_region_run, face_pack, standins
):
    calls, _, _ = face_region_run
    (face,) = face_pack.analyze(face_photo(standins).numpy()).chosen_faces
    box_mask = reference_box_mask(face.bbox, face.image_size, REGION_SIZE)

    edge_cells = 0
    for key, term, call, _, unlimited in calls:
        tokens = term.shape[1]
        region = torch.from_numpy(reference_attention_region(box_mask, tokens)).to(term.dtype)
        expected = unlimited * region[None, :, None]
        differ = torch.count_nonzero((term != expected).any(dim=-1))
        assert differ == 0, f"{key}: the identity term differs from the reference's at {differ} of {tokens} tokens"
        inside, outside = cells(box_mask, *call.layer_hw)
        edge_cells += int((~inside & ~outside).sum())
    assert edge_cells > 0  # the box's edge runs through layer cells: bilinear and nearest sampling would differ there


def test_with_face_region_identitynets_residuals_are_zero_outside_the_face_box_and_unchanged_inside(face_region_run):
    _, residuals, box_mask = face_region_run

    ((limited, unlimited),) = residuals
    check_residuals_in_region(limited, unlimited, box_mask)


def test_face_region_is_the_face_box_in_apply_instantid_and_off_in_the_comfyui_instantid_aliases(
    comfy_host, face_pack, adapter, standins
):
    def default(node_id):
        schema = comfy_host.node(node_id).define_schema()
        return next((i.default for i in schema.inputs if i.id == "face_region"), None)

    def regions(node_id):
        model, positive, _ = apply_node(comfy_host, node_id, adapter, face_pack, face_photo(standins))
        (patch, *_) = model.model_options["transformer_options"]["patches_replace"]["attn2"].values()
        return positive[0][1]["control"].region, patch.shared.region

    assert default("InstantIDApply") is True and default("InstantIDApplyAdvanced") is True
    assert default("InstantIDApplyIdentityNet") is False
    assert default("ApplyInstantID") is None and default("ApplyInstantIDAdvanced") is None  # not an option there
    (face,) = face_pack.analyze(face_photo(standins).numpy()).chosen_faces
    for region in regions("InstantIDApply"):  # IdentityNet's, then the identity attention's
        assert region.mask is None
        for size in (REGION_SIZE, *GENERATION_SIZES):
            drawn, expected = region.faces(size), reference_box_mask(face.bbox, face.image_size, size)[None]
            assert np.array_equal(drawn, expected), f"at {size}, {np.count_nonzero(drawn != expected)} pixels differ"
    assert regions("ApplyInstantID") == (None, None)


def test_face_analysis_outputs_each_photos_chosen_face_box_as_a_mask_and_nothing_for_a_skipped_photo(
    comfy_host, face_pack, standins
):
    photos = torch.cat([face_photo(standins), torch.full_like(face_photo(standins), 0.5)])

    faces, _preview, face_mask = (
        comfy_host.node("InstantIDAnalyzeFaces").execute(face_pack, photos, "largest", 0, "skip").result
    )

    x1, y1, x2, y2 = (int(v) for v in faces.chosen_faces[0].bbox)
    assert face_mask.shape == (2, 1024, 768) and face_mask.dtype == torch.float32
    assert face_mask[0, y1:y2, x1:x2].min() == 1 and face_mask[0].sum() == (y2 - y1) * (x2 - x1)
    assert face_mask[1].sum() == 0


def test_the_keypoints_node_outputs_the_face_box_placed_like_the_keypoints_at_its_size(comfy_host, face_pack, standins):
    faces = face_pack.analyze(face_photo(standins).numpy())

    keypoints, face_mask, _kps = (
        comfy_host.node("InstantIDKeypoints").execute(faces, 640, 480, "centered", 0.3, 0, False).result
    )

    (layout,) = comfy_host.pack_module("instantid_core.keypoints").layouts_of(keypoints)
    assert keypoints.shape == (1, 480, 640, 3) and face_mask.shape == (1, 480, 640)
    assert torch.equal(face_mask[0], torch.from_numpy(layout.box_mask((640, 480))))
    assert 0 < face_mask.mean() < 0.5

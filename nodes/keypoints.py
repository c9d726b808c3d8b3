"""Keypoint nodes: the 5-point face rendering IdentityNet is conditioned on, and transforms of placed keypoints."""

import torch
from comfy_api.latest import io

from ..instantid_core.keypoints import (
    PLACEMENTS,
    Jitter,
    KeypointLayout,
    KeypointTransform,
    PlacedKeypoints,
    transformed,
)
from .io_types import CATEGORY, INSTANTID_FACE, INSTANTID_KEYPOINTS, frame_size_inputs, keypoint_outputs


class InstantIDKeypoints(io.ComfyNode):
    """Draws the keypoints of an analysed face as IdentityNet's control image."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDKeypoints",
            display_name="InstantID Keypoints",
            category=CATEGORY,
            description="Renders the 5 face keypoints (eyes, nose, mouth corners) as IdentityNet expects them. "
            "Apply IdentityNet draws them again at the size being generated, so the dots keep the size IdentityNet "
            "was trained on; the face mask marks the face boxes, placed the same way.",
            inputs=[
                INSTANTID_FACE.Input(
                    "face", tooltip="Faces from 'InstantID Face Analysis' (e.g. of a photo with the pose you want)."
                ),
                *frame_size_inputs(
                    "the keypoint image and face mask (for previews and masks: IdentityNet draws the keypoints "
                    "again at the size being generated)."
                ),
                io.Combo.Input(
                    "placement",
                    options=list(PLACEMENTS),
                    default=PLACEMENTS[0],
                    tooltip="'as in source': where the face is in its photo (centre-cropped to this "
                    "size). 'centered': moved to the middle and scaled by face_fraction.",
                ),
                io.Float.Input(
                    "face_fraction",
                    default=0.35,
                    min=0.05,
                    max=1.0,
                    step=0.01,
                    tooltip="With 'centered': how much of the shorter side the keypoints span.",
                ),
                io.Int.Input(
                    "reference_index",
                    default=0,
                    min=0,
                    max=4095,
                    tooltip="Which photo of the analysed batch to take the keypoints from.",
                ),
                io.Boolean.Input(
                    "all_faces",
                    default=False,
                    tooltip="Draw every face found in that photo (e.g. two people), not only the chosen one.",
                ),
                io.Boolean.Input(
                    "each_photo",
                    optional=True,
                    default=False,
                    tooltip="One keypoint image per photo of the faces, in order (reference_index is then not "
                    "used): picture i of the batch takes the pose of photo i, as with combine_embeds 'per picture'.",
                ),
            ],
            outputs=keypoint_outputs(),
        )

    @classmethod
    def execute(
        cls, face, width, height, placement, face_fraction, reference_index, all_faces, each_photo=False
    ) -> io.NodeOutput:
        """Render the keypoint image(s) and the face boxes' mask."""
        photos = range(len(face.results)) if each_photo else (reference_index,)
        layouts = tuple(KeypointLayout.of(face.result(i), placement, face_fraction, all_faces) for i in photos)
        return keypoints_output(PlacedKeypoints(layouts, (width, height)))


def keypoints_output(placed: PlacedKeypoints, ui=None) -> io.NodeOutput:
    """The outputs of a keypoint node (keypoint_outputs) for these placed keypoints."""
    return io.NodeOutput(placed.images(), torch.from_numpy(placed.box_masks()), placed, ui=ui)


class InstantIDTransformKeypoints(io.ComfyNode):
    """Moves, scales and turns placed keypoints, with an optional seeded jitter: poses without a canvas."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDTransformKeypoints",
            display_name="InstantID Transform Keypoints",
            category=CATEGORY,
            description="Scales and turns the keypoints of 'InstantID Keypoints' or the Keypoints Editor about the "
            "face's centre, then moves them; a seeded jitter draws a different pose for each of `variants` "
            "pictures, within its limits (for batches that should not all share one pose).",
            inputs=[
                INSTANTID_KEYPOINTS.Input("kps", tooltip="Placed keypoints, from a keypoint node's kps output."),
                io.Float.Input(
                    "scale", default=1.0, min=0.05, max=10.0, step=0.01, tooltip="Size factor (1 = unchanged)."
                ),
                io.Float.Input(
                    "rotate",
                    default=0.0,
                    min=-180.0,
                    max=180.0,
                    step=0.5,
                    tooltip="Turn in degrees, clockwise as seen, about the centre of the face's keypoints.",
                ),
                io.Float.Input(
                    "move_x",
                    default=0.0,
                    min=-1.0,
                    max=1.0,
                    step=0.005,
                    tooltip="Shift to the right, as a fraction of the frame's width (negative: to the left).",
                ),
                io.Float.Input(
                    "move_y",
                    default=0.0,
                    min=-1.0,
                    max=1.0,
                    step=0.005,
                    tooltip="Shift down, as a fraction of the frame's height (negative: up).",
                ),
                io.Int.Input(
                    "variants",
                    default=1,
                    min=1,
                    max=64,
                    tooltip="Pictures out per picture in: each with its own jitter (a batch of poses).",
                ),
                io.Float.Input(
                    "jitter_scale",
                    default=0.0,
                    min=0.0,
                    max=0.9,
                    step=0.01,
                    tooltip="Random size change of up to ± this fraction (0 = none).",
                ),
                io.Float.Input(
                    "jitter_rotate",
                    default=0.0,
                    min=0.0,
                    max=180.0,
                    step=0.5,
                    tooltip="Random turn of up to ± this many degrees (0 = none).",
                ),
                io.Float.Input(
                    "jitter_move",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.005,
                    tooltip="Random shift of up to ± this fraction of the frame's width and height (0 = none).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**32 - 1,
                    control_after_generate=True,
                    tooltip="Seed of the jitter: the same seed gives the same poses.",
                ),
            ],
            outputs=keypoint_outputs(),
        )

    @classmethod
    def execute(
        cls, kps, scale, rotate, move_x, move_y, variants, jitter_scale, jitter_rotate, jitter_move, seed
    ) -> io.NodeOutput:
        """Transform every layout, `variants` times each."""
        transform = KeypointTransform(scale, rotate, move_x, move_y)
        jitter = Jitter(jitter_scale, jitter_rotate, jitter_move, seed)
        return keypoints_output(transformed(kps, transform, variants, jitter))

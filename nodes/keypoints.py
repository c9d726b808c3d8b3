"""Keypoint image node: the 5-point face rendering IdentityNet is conditioned on."""

import torch
from comfy_api.latest import io

from ..instantid_core.images import to_image_batch
from ..instantid_core.keypoints import PLACEMENTS, KeypointLayout, with_layouts
from .io_types import CATEGORY, INSTANTID_FACE


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
                io.Int.Input(
                    "width",
                    default=1024,
                    min=64,
                    max=8192,
                    step=8,
                    tooltip="Width of the keypoint image and face mask (for previews and masks: IdentityNet "
                    "draws the keypoints again at the size being generated).",
                ),
                io.Int.Input(
                    "height",
                    default=1024,
                    min=64,
                    max=8192,
                    step=8,
                    tooltip="Height of the keypoint image and face mask (for previews and masks: IdentityNet "
                    "draws the keypoints again at the size being generated).",
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
            ],
            outputs=[io.Image.Output(display_name="keypoints"), io.Mask.Output(display_name="face_mask")],
        )

    @classmethod
    def execute(cls, face, width, height, placement, face_fraction, reference_index, all_faces) -> io.NodeOutput:
        """Render the keypoint image and the face boxes' mask."""
        layout = KeypointLayout.of(face.result(reference_index), placement, face_fraction, all_faces)
        picture = with_layouts(to_image_batch([layout.draw((width, height))]), [layout])
        return io.NodeOutput(picture, torch.from_numpy(layout.box_mask((width, height))).unsqueeze(0))

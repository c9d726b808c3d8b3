"""Apply IdentityNet: the keypoint ControlNet, conditioned on the face tokens instead of the text."""

from comfy_api.latest import io

from ..instantid_core.keypoints import faces_region_of, identitynet_keypoints
from .comfy_glue import controlnet
from .io_types import (
    CATEGORY,
    INSTANTID,
    INSTANTID_FACE,
    INSTANTID_KEYPOINTS,
    PercentRangeNode,
    identitynet_input,
    identitynet_strength_input,
    percent_inputs,
    token_inputs,
)


class InstantIDApplyIdentityNet(PercentRangeNode):
    """Attaches IdentityNet to the positive and negative conditioning, chained after any ControlNet already there."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDApplyIdentityNet",
            display_name="Apply IdentityNet",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            description="InstantID's IdentityNet: a ControlNet on the face keypoints whose cross-attention sees the "
            "face tokens (positive: the identity, negative: the empty identity).",
            inputs=[
                io.Conditioning.Input("positive", tooltip="Positive conditioning (the prompt)."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                identitynet_input(),
                INSTANTID.Input("instantid", tooltip="The InstantID adapter (its Resampler makes the face tokens)."),
                INSTANTID_FACE.Input("face", tooltip="The reference faces, from 'InstantID Face Analysis'."),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="A keypoint image, when 'kps' is not connected: centre-cropped and resized to the size "
                    "being generated, like any ControlNet hint (straight from an InstantID keypoint node it is "
                    "drawn again there instead).",
                ),
                INSTANTID_KEYPOINTS.Input(
                    "kps",
                    optional=True,
                    tooltip="The placed keypoints, from a keypoint node's 'kps' output: IdentityNet draws them at the "
                    "size being generated (dots of radius 10 px, as it was trained) and knows where the faces are. "
                    "Takes the place of 'image'.",
                ),
                identitynet_strength_input(
                    "strength", "IdentityNet's strength: how much the face's shape and pose are enforced."
                ),
                *percent_inputs("IdentityNet"),
                *token_inputs(),
                io.Boolean.Input(
                    "face_region",
                    optional=True,
                    default=False,
                    tooltip="Keep IdentityNet inside the face boxes of the keypoints (connect 'kps'), as InstantID's "
                    "reference demo does. For the identity attention "
                    "too, connect the Keypoints node's face_mask to 'InstantID Patch Attention'.",
                ),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Limits IdentityNet's effect to this region (e.g. "
                    "around the face); the rest follows the prompt.",
                ),
                io.Vae.Input(
                    "vae", optional=True, tooltip="Only for ControlNets that need a VAE (IdentityNet does not)."
                ),
            ],
            outputs=[
                io.Conditioning.Output(
                    display_name="positive", tooltip="The positive conditioning with IdentityNet (the identity)."
                ),
                io.Conditioning.Output(
                    display_name="negative", tooltip="The negative conditioning with IdentityNet (the empty identity)."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        positive,
        negative,
        control_net,
        instantid,
        face,
        strength,
        start_percent,
        end_percent,
        combine_embeds,
        noise,
        image=None,
        kps=None,
        face_region=False,
        mask=None,
        vae=None,
    ) -> io.NodeOutput:
        """Make the tokens and attach IdentityNet."""
        cls.check_percents(start_percent, end_percent)
        controlnet.check_identitynet(control_net)
        image, layouts = identitynet_keypoints(image, kps, cls.label())
        region = faces_region_of(layouts, cls.label()) if face_region else None
        tokens = instantid.face_tokens(face, combine_embeds, noise)
        return io.NodeOutput(
            *controlnet.apply_identitynet(
                positive,
                negative,
                control_net,
                tokens,
                image,
                strength,
                start_percent,
                end_percent,
                mask,
                vae,
                cls.label(),
                region,
                layouts,
            )
        )

"""InstantID Patch Attention: identity tokens attended to by every cross-attention layer of the UNet."""

from comfy_api.latest import io

from .comfy_glue import unet_patching
from .io_types import (
    CATEGORY,
    INSTANTID,
    INSTANTID_FACE,
    PercentRangeNode,
    adapter_weight_input,
    percent_inputs,
    token_inputs,
    weight_type_input,
)


class InstantIDPatchAttention(PercentRangeNode):
    """Adds InstantID's decoupled identity attention to every cross-attention layer of the model."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDPatchAttention",
            display_name="InstantID Patch Attention",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            description="Adds weight × attention(face tokens) to the text attention of every cross-attention layer "
            "(70 on SDXL). Other packs' attention patches on the model keep working.",
            inputs=[
                io.Model.Input("model", tooltip="An SDXL model."),
                INSTANTID.Input("instantid", tooltip="The InstantID adapter."),
                INSTANTID_FACE.Input("face", tooltip="The reference faces, from 'InstantID Face Analysis'."),
                adapter_weight_input("weight", "Strength of the identity attention (the paper's adapter scale)."),
                *percent_inputs("the identity attention"),
                weight_type_input(),
                *token_inputs(),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Region where the identity applies (e.g. one person "
                    "of several); nothing changes outside it.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    display_name="MODEL",
                    tooltip="A copy of the model with the identity attention in every cross-attention layer.",
                )
            ],
        )

    @classmethod
    def execute(
        cls, model, instantid, face, weight, start_percent, end_percent, weight_type, combine_embeds, noise, mask=None
    ) -> io.NodeOutput:
        """Make the tokens and patch a clone of the model."""
        cls.check_percents(start_percent, end_percent)
        tokens = instantid.face_tokens(face, combine_embeds, noise)
        return io.NodeOutput(
            unet_patching.apply_identity_attention(
                model, instantid, tokens, weight, start_percent, end_percent, weight_type, mask, cls.label()
            )
        )

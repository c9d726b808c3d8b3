"""Apply InstantID (and Advanced): face analysis, IdentityNet and attention patching in one node."""

import logging
from dataclasses import dataclass

from comfy_api.latest import io

from ..instantid_core.errors import InstantIDError
from ..instantid_core.face_analysis import ERROR, PASS_THROUGH, SKIP
from ..instantid_core.faces import PER_PICTURE
from ..instantid_core.images import to_image_batch, to_uint8_rgb
from ..instantid_core.keypoints import KeypointLayout, draw_layouts, face_boxes_region
from ..instantid_core.photo_prep import reference_sizes
from .comfy_glue import controlnet, unet_patching
from .io_types import (
    CATEGORY,
    FACEANALYSIS,
    INSTANTID,
    INSTANTID_FACE,
    PercentRangeNode,
    adapter_weight_input,
    face_choice_inputs,
    identitynet_input,
    identitynet_strength_input,
    percent_inputs,
    token_inputs,
    weight_type_input,
)

log = logging.getLogger(__name__)

NO_FACE_CHOICES = (ERROR, PASS_THROUGH)
"""What the all-in-one nodes do when no face is found: stop, or return their inputs unchanged (with a warning)."""
PASS_THROUGH_HINT = (
    "Or set no_face to 'pass through' to leave photos without a face out, and to pass model and "
    "conditioning through unchanged (with a warning) when no usable face is left."
)
"""The end of a no-face error of the nodes that have the no_face option."""
POSE_PHOTO = "Pose photo (image_kps)"
"""What messages call the photo whose pose is copied."""


@dataclass(frozen=True, kw_only=True)
class InstantIDSettings:
    """Everything the all-in-one nodes (and their ComfyUI_InstantID aliases) let the user set besides their graph
    inputs, given by name."""

    adapter_weight: float
    identitynet_strength: float
    start_percent: float
    end_percent: float
    noise: float = 0.0
    combine_embeds: str = "average"
    weight_type: str = "linear"
    face_choice: str = "largest"
    face_index: int = 0
    no_face: str | None = None  # 'error' or 'pass through'; None where the node has no such option (an error)
    face_region: bool = False  # keep IdentityNet and the identity attention inside the pose face's box


@dataclass(frozen=True)
class InstantIDInputs:
    """What the all-in-one nodes (and their ComfyUI_InstantID aliases) take from the graph."""

    face_models: object
    adapter: object
    control_net: object
    image: object
    model: object
    positive: list
    negative: list
    image_kps: object = None
    mask: object = None
    face: object = None  # analysed faces (INSTANTID_FACE) in place of `image`


def reference_faces(inputs: InstantIDInputs, settings: InstantIDSettings, policy: str, hint: str, node: str):
    """The reference faces: the `face` input as it is, or the analysis of the `image` photos; exactly one of the two
    must be connected."""
    if (inputs.image is None) == (inputs.face is None):
        raise InstantIDError(
            f"{node}: connect the reference photos to 'image', or faces already analysed (InstantID Face Analysis, "
            "Load Face or Join Faces) to 'face': one of the two.",
            "missing_input",
        )
    if inputs.face is not None:
        return inputs.face
    return inputs.face_models.analyze(
        to_uint8_rgb(inputs.image), settings.face_choice, settings.face_index, policy, no_face_hint=hint
    )


def apply_instantid(inputs: InstantIDInputs, settings: InstantIDSettings, node: str = "the InstantID node"):
    """(model, positive, negative) with InstantID applied; inputs are checked before anything is built.

    With settings.no_face 'pass through', photos without a face are skipped, and when no face is left (or the pose
    photo has none) the inputs come back unchanged, with a warning. A no-face error names the option only where the
    node has it; `node` names the calling node in errors about its mask.
    """
    controlnet.check_identitynet(inputs.control_net)
    policy = SKIP if settings.no_face == PASS_THROUGH else ERROR
    hint = "" if settings.no_face is None else PASS_THROUGH_HINT
    faces = reference_faces(inputs, settings, policy, hint, node)
    pose = (
        faces
        if inputs.image_kps is None
        else inputs.face_models.analyze(
            to_uint8_rgb(inputs.image_kps), settings.face_choice, settings.face_index, policy, POSE_PHOTO, hint
        )
    )
    usable = [result for result in pose.results if not result.skipped]
    if not faces.chosen_faces or not usable:
        log.warning(
            "InstantID: no face in the %s; passing model and conditioning through unchanged "
            "(no_face = 'pass through').",
            "reference photos" if not faces.chosen_faces else "pose photo",
        )
        return inputs.model, inputs.positive, inputs.negative
    tokens = inputs.adapter.face_tokens(faces, settings.combine_embeds, settings.noise)
    layouts = [KeypointLayout.of(result, "as in source") for result in pose_results(pose, inputs, settings)]
    # IdentityNet draws them again at the generation size; until then they stand at the size the reference pipeline
    # would generate from the first photo (long side 1280), not at a phone photo's 12 megapixels.
    _, drawn_size = reference_sizes(*layouts[0].source_size)
    keypoints = to_image_batch(list(draw_layouts(layouts, drawn_size)))
    face_region = face_boxes_region(layouts) if settings.face_region else None
    patched = unet_patching.apply_identity_attention(
        inputs.model,
        inputs.adapter,
        tokens,
        settings.adapter_weight,
        settings.start_percent,
        settings.end_percent,
        settings.weight_type,
        inputs.mask,
        node,
        face_region,
    )
    positive, negative = controlnet.apply_identitynet(
        inputs.positive,
        inputs.negative,
        inputs.control_net,
        tokens,
        keypoints,
        settings.identitynet_strength,
        settings.start_percent,
        settings.end_percent,
        inputs.mask,
        node=node,
        face_region=face_region,
        layouts=layouts,
    )
    return patched, positive, negative


def pose_results(pose, inputs: InstantIDInputs, settings: InstantIDSettings) -> list:
    """The analysed faces whose poses IdentityNet takes, one per picture: every pose photo's (picture i takes
    photo i's, repeated when the batch is longer), or, without pose photos, each reference photo's under 'per
    picture' and the first one's otherwise. A pose photo without a face among several is an error: it has no
    pose to give its picture."""
    if inputs.image_kps is None and settings.combine_embeds != PER_PICTURE:
        return [next(result for result in pose.results if not result.skipped)]
    if pose.skipped_indices:
        what = "reference photo(s)" if inputs.image_kps is None else "pose photo(s)"
        raise InstantIDError(
            f"Each picture takes the pose of its own photo, but {what} "
            f"{', '.join(str(i + 1) for i in pose.skipped_indices)} have no face: remove them, or give photos "
            "where the face is clearly visible.",
            "no_face",
        )
    return list(pose.results)


def graph_inputs(face_input: str = "face_analysis", faces_instead: bool = False) -> list:
    """The inputs the all-in-one nodes (and their ComfyUI_InstantID aliases) take from the graph, in that order;
    face_input names the face models' input; with `faces_instead` the photos may give way to analysed faces
    (`faces_input`)."""
    return [
        INSTANTID.Input("instantid", tooltip="The InstantID adapter, from 'Load InstantID Adapter'."),
        FACEANALYSIS.Input(face_input, tooltip="The face models, from 'Load InstantID Face Analysis'."),
        identitynet_input(),
        io.Image.Input(
            "image",
            optional=faces_instead,
            tooltip="One or more reference photos of the person"
            + (" (or connect analysed faces to 'face' instead)." if faces_instead else "."),
        ),
        io.Model.Input("model", tooltip="An SDXL model."),
        io.Conditioning.Input("positive", tooltip="Positive conditioning (the prompt)."),
        io.Conditioning.Input("negative", tooltip="Negative conditioning."),
    ]


def _no_face_input() -> io.Combo.Input:
    """What to do when no face is found."""
    return io.Combo.Input(
        "no_face",
        options=list(NO_FACE_CHOICES),
        default="error",
        tooltip="No face in the photos: stop with an error (default), or, for unattended runs, "
        "pass model and conditioning through unchanged with a warning.",
    )


def _face_region_input() -> io.Boolean.Input:
    """Whether the identity stays inside the face box, as InstantID's reference demo does by default."""
    return io.Boolean.Input(
        "face_region",
        optional=True,
        default=True,
        tooltip="Keep IdentityNet and the identity attention inside the face's box (where the pose photo puts it "
        "in the generated image), as InstantID's reference demo does: the rest of the picture follows the prompt. "
        "Off: the identity acts on the whole picture (ComfyUI_InstantID's behaviour).",
    )


def optional_inputs() -> list:
    """The optional inputs of the all-in-one nodes and their aliases."""
    return [
        io.Image.Input(
            "image_kps",
            optional=True,
            tooltip="A photo whose face pose to copy (its keypoints drive "
            "IdentityNet); default: the reference photo's pose.",
        ),
        io.Mask.Input(
            "mask",
            optional=True,
            tooltip="Region where the identity applies (attention and IdentityNet); nothing changes outside it. "
            "With face_region on, the identity applies where both allow it.",
        ),
    ]


def faces_input() -> INSTANTID_FACE.Input:
    """Analysed faces in place of the reference photos."""
    return INSTANTID_FACE.Input(
        "face",
        optional=True,
        tooltip="Faces already analysed, in place of 'image': from 'InstantID Face Analysis', 'InstantID Load Face' "
        "or 'InstantID Join Faces' (with combine_embeds 'per picture', picture i gets face i).",
    )


OUTPUTS = [
    io.Model.Output(display_name="MODEL", tooltip="The model with the identity attention, for the KSampler."),
    io.Conditioning.Output(
        display_name="positive", tooltip="The positive conditioning with IdentityNet attached, for the KSampler."
    ),
    io.Conditioning.Output(
        display_name="negative",
        tooltip="The negative conditioning with IdentityNet attached (empty identity), for the KSampler.",
    ),
]


class AllInOneNode(PercentRangeNode):
    """A node that applies all of InstantID at once: its execute gathers the graph inputs and the settings, `run` does
    the rest."""

    @classmethod
    def run(cls, inputs: InstantIDInputs, settings: InstantIDSettings) -> io.NodeOutput:
        """Check the start/end settings (linked values arrive only now), then apply InstantID."""
        cls.check_percents(settings.start_percent, settings.end_percent)
        return io.NodeOutput(*apply_instantid(inputs, settings, cls.label()))


class InstantIDApply(AllInOneNode):
    """InstantID in one node: one weight for the identity attention and IdentityNet."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDApply",
            display_name="Apply InstantID",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            description="Face analysis + IdentityNet + identity attention, for the common case. As in InstantID's "
            "reference pipeline, the keypoints are drawn at the size being generated and, with face_region (on by "
            "default), the identity acts inside the face's box while the prompt sets the rest.",
            inputs=[
                *graph_inputs(faces_instead=True),
                io.Float.Input(
                    "weight",
                    default=0.8,
                    min=0.0,
                    max=5.0,
                    step=0.01,
                    tooltip="Identity strength: the adapter weight and IdentityNet strength together.",
                ),
                *percent_inputs("InstantID"),
                _no_face_input(),
                _face_region_input(),
                *optional_inputs(),
                faces_input(),
            ],
            outputs=list(OUTPUTS),
        )

    @classmethod
    def execute(
        cls,
        instantid,
        face_analysis,
        control_net,
        model,
        positive,
        negative,
        weight,
        start_percent,
        end_percent,
        no_face,
        image=None,
        face_region=True,
        image_kps=None,
        mask=None,
        face=None,
    ) -> io.NodeOutput:
        """Apply InstantID."""
        inputs = InstantIDInputs(
            face_analysis, instantid, control_net, image, model, positive, negative, image_kps, mask, face
        )
        settings = InstantIDSettings(
            adapter_weight=weight,
            identitynet_strength=weight,
            start_percent=start_percent,
            end_percent=end_percent,
            no_face=no_face,
            face_region=face_region,
        )
        return cls.run(inputs, settings)


class InstantIDApplyAdvanced(AllInOneNode):
    """InstantID in one node, with separate adapter weight and IdentityNet strength and every option."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDApplyAdvanced",
            display_name="Apply InstantID Advanced",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            description="Face analysis + IdentityNet + identity attention, with every setting exposed. As in "
            "InstantID's reference pipeline, the keypoints are drawn at the size being generated and, with "
            "face_region (on by default), the identity acts inside the face's box while the prompt sets the rest.",
            inputs=[
                *graph_inputs(faces_instead=True),
                adapter_weight_input("adapter_weight", "Strength of the identity attention in the UNet (likeness)."),
                identitynet_strength_input("identitynet_strength", "Strength of IdentityNet (face shape and pose)."),
                *percent_inputs("InstantID"),
                weight_type_input(),
                *token_inputs(),
                *face_choice_inputs(),
                _no_face_input(),
                _face_region_input(),
                *optional_inputs(),
                faces_input(),
            ],
            outputs=list(OUTPUTS),
        )

    @classmethod
    def execute(
        cls,
        instantid,
        face_analysis,
        control_net,
        model,
        positive,
        negative,
        adapter_weight,
        identitynet_strength,
        start_percent,
        end_percent,
        weight_type,
        combine_embeds,
        noise,
        face_choice,
        face_index,
        no_face,
        image=None,
        face_region=True,
        image_kps=None,
        mask=None,
        face=None,
    ) -> io.NodeOutput:
        """Apply InstantID."""
        inputs = InstantIDInputs(
            face_analysis, instantid, control_net, image, model, positive, negative, image_kps, mask, face
        )
        settings = InstantIDSettings(
            adapter_weight=adapter_weight,
            identitynet_strength=identitynet_strength,
            start_percent=start_percent,
            end_percent=end_percent,
            noise=noise,
            combine_embeds=combine_embeds,
            weight_type=weight_type,
            face_choice=face_choice,
            face_index=face_index,
            no_face=no_face,
            face_region=face_region,
        )
        return cls.run(inputs, settings)

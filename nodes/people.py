"""Apply InstantID (People): two to four identities in one picture, each kept to its own region."""

import torch
from comfy_api.latest import io

from ..instantid_core.images import to_image_batch
from ..instantid_core.people import (
    DEFAULT_FEATHER,
    DEFAULT_MARGIN,
    LEFT_TO_RIGHT,
    PEOPLE_LAYOUTS,
    PeopleRegions,
    person_layouts,
)
from .comfy_glue import controlnet, unet_patching
from .io_types import (
    CATEGORY,
    INSTANTID,
    INSTANTID_FACE,
    PercentRangeNode,
    adapter_weight_input,
    frame_size_inputs,
    identitynet_input,
    identitynet_strength_input,
    percent_inputs,
)


def person_input(number: int, optional: bool = False):
    """The faces of person `number` (from 1)."""
    return INSTANTID_FACE.Input(
        f"person_{number}",
        optional=optional,
        tooltip=f"Person {number}: their face(s) from 'InstantID Face Analysis' or 'InstantID Load Face' (several "
        "photos of them are averaged, with the analysis' weights)."
        + (" Leave unconnected for fewer people." if optional else ""),
    )


class InstantIDApplyPeople(PercentRangeNode):
    """InstantID for several people: per person, identity attention and IdentityNet limited to that person's region."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDApplyPeople",
            display_name="Apply InstantID (People)",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            description="Two to four people in one picture, without hand-made masks: places each person's face "
            "(left to right, as in their photos, or on a group photo's faces), makes each a region round its "
            "keypoints, and applies each identity's attention and IdentityNet only there. IdentityNet runs once per "
            "person and step.",
            inputs=[
                INSTANTID.Input("instantid", tooltip="The InstantID adapter, from 'Load InstantID Adapter'."),
                identitynet_input(),
                io.Model.Input("model", tooltip="An SDXL model."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning: a prompt that describes everyone."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                person_input(1),
                person_input(2),
                io.Combo.Input(
                    "layout",
                    options=list(PEOPLE_LAYOUTS),
                    default=LEFT_TO_RIGHT,
                    tooltip="'left to right': person 1, 2, ... in equal columns, faces centred and sized by "
                    "face_fraction. 'as in their photos': each face where it is in its own photo (e.g. the people of "
                    "one group photo, analysed with face_index 0, 1, ...). 'pose photo': person k on face k of the "
                    "photo connected to 'pose', in reading order.",
                ),
                *frame_size_inputs(
                    "the keypoint image and regions this node outputs, and of the frame in which the regions must "
                    "not overlap (sampling draws them again at the size being generated)."
                ),
                io.Float.Input(
                    "face_fraction",
                    default=0.35,
                    min=0.05,
                    max=1.0,
                    step=0.01,
                    tooltip="With 'left to right': how much of its column's shorter side each face's keypoints span.",
                ),
                io.Float.Input(
                    "margin",
                    default=DEFAULT_MARGIN,
                    min=0.0,
                    max=4.0,
                    step=0.05,
                    tooltip="How far each person's region reaches beyond their keypoints on every side, in face "
                    "sizes (the keypoints' extent): larger takes in hair and shoulders, but neighbours' regions "
                    "must not overlap.",
                ),
                io.Float.Input(
                    "feather",
                    default=DEFAULT_FEATHER,
                    min=0.0,
                    max=4.0,
                    step=0.05,
                    tooltip="Width of the soft edge outside each region, in face sizes (0: a hard edge). The soft "
                    "edge never reaches into another person's region.",
                ),
                adapter_weight_input("weight", "Strength of each person's identity attention (likeness)."),
                identitynet_strength_input(
                    "identitynet_strength", "Strength of each person's IdentityNet (face shape and pose)."
                ),
                *percent_inputs("InstantID"),
                person_input(3, optional=True),
                person_input(4, optional=True),
                INSTANTID_FACE.Input(
                    "pose",
                    optional=True,
                    tooltip="With layout 'pose photo': the faces of a group photo, from 'InstantID Face Analysis'; "
                    "person k takes the pose and place of its face k (reading order, as its preview numbers them).",
                ),
            ],
            outputs=[
                io.Model.Output(
                    display_name="MODEL", tooltip="The model with each person's identity attention, in their region."
                ),
                io.Conditioning.Output(
                    display_name="positive", tooltip="The positive conditioning with one IdentityNet per person."
                ),
                io.Conditioning.Output(
                    display_name="negative", tooltip="The negative conditioning with one IdentityNet per person."
                ),
                io.Image.Output(
                    display_name="keypoints",
                    tooltip="Every person's keypoints in one image at width × height, to check the layout.",
                ),
                io.Mask.Output(
                    display_name="regions", tooltip="One mask per person (a batch): their region at width × height."
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        instantid,
        control_net,
        model,
        positive,
        negative,
        person_1,
        person_2,
        layout,
        width,
        height,
        face_fraction,
        margin,
        feather,
        weight,
        identitynet_strength,
        start_percent,
        end_percent,
        person_3=None,
        person_4=None,
        pose=None,
    ) -> io.NodeOutput:
        """Check everything, then patch the model and attach IdentityNet once per person."""
        cls.check_percents(start_percent, end_percent)
        controlnet.check_identitynet(control_net)
        people = [person for person in (person_1, person_2, person_3, person_4) if person is not None]
        size = (width, height)
        regions = PeopleRegions(person_layouts(people, layout, face_fraction, pose), margin, feather)
        regions.check(size)
        tokens = [instantid.face_tokens(p) for p in people]
        node = cls.label()
        for index, (person_layout, person_tokens) in enumerate(zip(regions.layouts, tokens, strict=True)):
            region = regions.region(index)
            model = unet_patching.apply_identity_attention(
                model, instantid, person_tokens, weight, start_percent, end_percent, node=node, face_region=region
            )
            keypoints = to_image_batch([person_layout.draw(size)])
            positive, negative = controlnet.apply_identitynet(
                positive,
                negative,
                control_net,
                person_tokens,
                keypoints,
                identitynet_strength,
                start_percent,
                end_percent,
                node=node,
                face_region=region,
                layouts=[person_layout],
            )
        picture = to_image_batch([regions.draw(size)])
        return io.NodeOutput(model, positive, negative, picture, torch.from_numpy(regions.masks(size)))

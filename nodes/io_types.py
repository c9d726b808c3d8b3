"""The pack's edge types, the node inputs several nodes share (so each is defined once, with its tooltip) and the
check of the start/end inputs."""

from comfy_api.latest import io

from ..instantid_core.attention import WEIGHT_TYPES
from ..instantid_core.errors import InstantIDError, problem_of
from ..instantid_core.faces import CHOICE_MODES, COMBINE_METHODS

CATEGORY = "InstantID"

INSTANTID = io.Custom("INSTANTID")
"""The loaded InstantID adapter (Resampler + identity K/V projections)."""
FACEANALYSIS = io.Custom("FACEANALYSIS")
"""The loaded face models (detector + recogniser)."""
INSTANTID_FACE = io.Custom("INSTANTID_FACE")
"""What face analysis found: per reference image the faces, keypoints, boxes, embeddings and the chosen face."""
INSTANTID_KEYPOINTS = io.Custom("INSTANTID_KEYPOINTS")
"""Placed face keypoints (one layout per picture) and their frame: from the keypoint nodes to transforms."""
POSE_KEYPOINT = io.Custom("POSE_KEYPOINT")
"""People's body poses (OpenPose's JSON layout, one entry per picture), as comfyui_controlnet_aux's pose estimators
give them."""
INSTANTID_STITCH = io.Custom("INSTANTID_STITCH")
"""How 'InstantID Face Crop' took its crop from the photo: what 'InstantID Face Paste' needs to put it back."""


PERCENT_NAMES = ("start_percent", "end_percent")
"""The names of the start/end inputs of this pack's nodes."""


def percent_inputs(what: str, names: tuple[str, str] = PERCENT_NAMES) -> list:
    """The start/end inputs (named `names`): the part of sampling where `what` acts."""
    start, end = names
    return [
        io.Float.Input(
            start,
            default=0.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip=f"When {what} starts, as a fraction of sampling (0 = first step). Must not be after "
            f"{end}; equal values switch {what} off.",
        ),
        io.Float.Input(
            end,
            default=1.0,
            min=0.0,
            max=1.0,
            step=0.001,
            tooltip=f"When {what} ends, as a fraction of sampling (1 = last step). Must not be before {start}.",
        ),
    ]


class PercentRangeNode(io.ComfyNode):
    """A node with start/end percent inputs (PERCENT_NAMES): a start after the end, or a value outside 0..1, refuses
    the prompt before anything runs, with a message naming the node and both values."""

    PERCENT_NAMES = PERCENT_NAMES

    @classmethod
    def validate_inputs(cls, start_percent=None, end_percent=None) -> bool | str:
        """ComfyUI's check of the prompt before it runs: True, or what is wrong with the two percents."""
        return cls.percent_problem(start_percent, end_percent) or True

    @classmethod
    def percent_problem(cls, start: float | None, end: float | None) -> str | None:
        """What is wrong with start/end, ending in its code, or None (check_percents)."""
        return problem_of(cls.check_percents, start, end)

    @classmethod
    def label(cls) -> str:
        """How messages name this node: 'display name' and, while ComfyUI runs it, (node #id), from the hidden
        unique_id its schema asks for."""
        node_id = cls.hidden.unique_id if cls.hidden is not None else None
        return f"'{cls.define_schema().display_name}'" + (f" (node #{node_id})" if node_id is not None else "")

    @classmethod
    def check_percents(cls, start: float | None, end: float | None) -> None:
        """Raise InstantIDError for a start after the end or a value outside 0..1, naming the node and both values.
        ComfyUI leaves the range check of inputs that validate_inputs takes to it, so 0..1 is checked here too; a
        linked value (None before it is computed) passes. Nodes call it again when they run: values that came through
        a link reach the node only then."""
        start_name, end_name = cls.PERCENT_NAMES
        outside = [
            f"{name} is {value:g}"
            for name, value in ((start_name, start), (end_name, end))
            if value is not None and not 0.0 <= value <= 1.0
        ]
        if outside:
            problem = (
                f"{' and '.join(outside)}, outside 0..1: {start_name} and {end_name} are fractions of sampling "
                "(0 = first step, 1 = last step)."
            )
        elif start is not None and end is not None and start > end:
            problem = (
                f"{start_name} ({start:g}) is after {end_name} ({end:g}), so there is no part of sampling to "
                f"act in. Set {start_name} to at most {end_name} (0 and 1: from the first step to the last)."
            )
        else:
            return
        raise InstantIDError(f"{cls.define_schema().display_name}: {problem}", "bad_percent_range")


def identitynet_input() -> io.ControlNet.Input:
    """IdentityNet, as ComfyUI's own ControlNet loader gives it."""
    return io.ControlNet.Input(
        "control_net",
        tooltip="IdentityNet, loaded with 'Load ControlNet Model' from "
        "controlnet/instantid/diffusion_pytorch_model.safetensors.",
    )


def adapter_weight_input(name: str, tooltip: str) -> io.Float.Input:
    """The identity attention's weight (the paper's adapter scale): 0.8 by default, from -1 to 5."""
    return io.Float.Input(name, default=0.8, min=-1.0, max=5.0, step=0.01, tooltip=tooltip)


def identitynet_strength_input(name: str, tooltip: str) -> io.Float.Input:
    """IdentityNet's strength: 0.8 by default, from 0 to 10."""
    return io.Float.Input(name, default=0.8, min=0.0, max=10.0, step=0.01, tooltip=tooltip)


def face_choice_inputs() -> list:
    """How a face is picked when a reference photo shows several."""
    return [
        io.Combo.Input(
            "face_choice",
            options=list(CHOICE_MODES),
            default="largest",
            tooltip="Which face to use when a photo shows several: the largest, or the one at face_index.",
        ),
        io.Int.Input(
            "face_index",
            default=0,
            min=0,
            max=63,
            tooltip="With face_choice 'index': the face's number, from 0, as the preview shows it: left to right, "
            "and row by row where the faces stand in clear rows (a group at different heights is one row).",
        ),
    ]


def token_inputs() -> list:
    """How identity tokens are made from the reference faces."""
    return [
        io.Combo.Input(
            "combine_embeds",
            options=list(COMBINE_METHODS),
            default="average",
            tooltip="With several reference photos: average the identities, average their directions "
            "('norm average'), keep each ('concat', more tokens), or read all photos in one Resampler pass "
            "('joint', the reference InstantID pipeline's way).",
        ),
        io.Float.Input(
            "noise",
            default=0.0,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="Noise in the negative identity (0 = the reference: zeros). 0.2-0.4 can soften "
            "over-saturated results.",
        ),
    ]


def weight_type_input() -> io.Combo.Input:
    """Per-block profile of the identity attention's weight."""
    return io.Combo.Input(
        "weight_type",
        options=list(WEIGHT_TYPES),
        default="linear",
        tooltip="How the weight is spread over the UNet: the same everywhere ('linear'), or "
        "weaker/stronger in the input, middle or output blocks.",
    )


def frame_size_inputs(what: str) -> list:
    """The width and height of a keypoint frame: 1024 by default, 64 to 8192 in steps of 8."""
    return [
        io.Int.Input(side, default=1024, min=64, max=8192, step=8, tooltip=f"{side.capitalize()} of {what}")
        for side in ("width", "height")
    ]


def keypoint_outputs() -> list:
    """The outputs of the keypoint nodes: the keypoint image, the face boxes' mask and the placed keypoints."""
    return [
        io.Image.Output(
            display_name="keypoints",
            tooltip="The keypoint image for 'Apply IdentityNet' or Apply InstantID's image_kps (drawn again at the "
            "size being generated).",
        ),
        io.Mask.Output(
            display_name="face_mask",
            tooltip="The face boxes, placed like the keypoints: a mask for the identity attention or IdentityNet.",
        ),
        INSTANTID_KEYPOINTS.Output(
            display_name="kps",
            tooltip="The placed keypoints, for 'InstantID Transform Keypoints' (move, scale, turn or jitter them).",
        ),
    ]

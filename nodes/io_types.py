"""The pack's edge types and the node inputs several nodes share (so each is defined once, with its tooltip)."""
from comfy_api.latest import io

from ..instantid_core.attention import WEIGHT_TYPES
from ..instantid_core.faces import CHOICE_MODES, COMBINE_METHODS

CATEGORY = "InstantID"

InstantID = io.Custom("INSTANTID")
"""The loaded InstantID adapter (Resampler + identity K/V projections)."""
FaceAnalysis = io.Custom("FACEANALYSIS")
"""The loaded face models (detector + recogniser)."""
Face = io.Custom("INSTANTID_FACE")
"""What face analysis found: per reference image the faces, keypoints, boxes, embeddings and the chosen face."""


def percent_inputs(what: str) -> list:
    """start_percent / end_percent: the part of sampling where `what` acts."""
    return [
        io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                       tooltip=f"When {what} starts, as a fraction of sampling (0 = first step)."),
        io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                       tooltip=f"When {what} ends, as a fraction of sampling (1 = last step)."),
    ]


def face_choice_inputs() -> list:
    """How a face is picked when a reference photo shows several."""
    return [
        io.Combo.Input("face_choice", options=list(CHOICE_MODES), default="largest",
                       tooltip="Which face to use when a photo shows several: the largest, or the one at face_index."),
        io.Int.Input("face_index", default=0, min=0, max=63,
                     tooltip="With face_choice 'index': the face's position in reading order (left to right, then "
                             "top to bottom), from 0."),
    ]


def token_inputs() -> list:
    """How identity tokens are made from the reference faces."""
    return [
        io.Combo.Input("combine_embeds", options=list(COMBINE_METHODS), default="average",
                       tooltip="With several reference photos: average the identities, average their directions "
                               "('norm average'), or keep each ('concat', more tokens)."),
        io.Float.Input("noise", default=0.0, min=0.0, max=1.0, step=0.01,
                       tooltip="Noise in the negative identity (0 = the reference: zeros). 0.2-0.4 can soften "
                               "over-saturated results."),
    ]


def weight_type_input() -> io.Combo.Input:
    """Per-block profile of the identity attention's weight."""
    return io.Combo.Input("weight_type", options=list(WEIGHT_TYPES), default="linear",
                          tooltip="How the weight is spread over the UNet: the same everywhere ('linear'), or "
                                  "weaker/stronger in the input, middle or output blocks.")

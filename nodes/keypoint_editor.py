"""InstantID Keypoints Editor: five face keypoints placed by hand (web/keypoints_editor.js draws the canvas)."""

from comfy_api.latest import io

from ..instantid_core.errors import InstantIDError
from ..instantid_core.keypoint_editor import default_value, editor_value_problem, frame_points, parse_editor_value
from ..instantid_core.keypoints import KeypointLayout, PlacedKeypoints
from .io_types import CATEGORY, INSTANTID_FACE, frame_size_inputs, keypoint_outputs
from .keypoints import keypoints_output

FACE_KEYPOINTS_UI = "instantid_face_kps"
"""The UI output that carries the connected face's keypoints to the editor's "load from face"."""


class InstantIDKeypointsEditor(io.ComfyNode):
    """The keypoint image of a face placed by hand: drag the five points on the node's canvas."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDKeypointsEditor",
            display_name="InstantID Keypoints Editor",
            category=CATEGORY,
            description="Place the face without a pose photo: drag the five keypoints (eyes, nose, mouth corners) "
            "on the canvas, or move, scale, turn and mirror them together; presets give common poses. The output "
            "is the keypoint image, drawn as 'InstantID Keypoints' draws it.",
            inputs=[
                *frame_size_inputs("the frame the keypoints are placed in: the size (or aspect ratio) you generate."),
                io.String.Input(
                    "keypoints",
                    default=default_value(),
                    socketless=True,
                    tooltip='The five points as JSON: {"version": 1, "points": [[x, y] ×5], "opacity": [a ×5]}, '
                    "x and y as fractions of the width and height, in the order left eye, right eye, nose, left "
                    "and right mouth corner (as seen). The canvas edits it; API prompts can write it directly.",
                ),
                INSTANTID_FACE.Input(
                    "face",
                    optional=True,
                    tooltip="Optional analysed face: after a run, the editor's 'load from face' takes its keypoints.",
                ),
            ],
            outputs=keypoint_outputs(),
        )

    @classmethod
    def validate_inputs(cls, keypoints=None, **_) -> bool | str:
        """ComfyUI's check of the prompt before it runs: True, or what is wrong with the keypoints value."""
        problem = editor_value_problem(keypoints) if keypoints is not None else None
        return f"InstantID Keypoints Editor: {problem}" if problem else True

    @classmethod
    def execute(cls, width, height, keypoints, face=None) -> io.NodeOutput:
        """Draw the edited keypoints; hand the connected face's keypoints to the canvas."""
        try:
            edited = parse_editor_value(keypoints)
        except InstantIDError as e:
            raise InstantIDError(f"InstantID Keypoints Editor: {e}", e.code) from None
        ui = None
        if face is not None:
            layout = KeypointLayout.of(face.result(0), "as in source")
            ui = {FACE_KEYPOINTS_UI: [frame_points(layout, (width, height))]}
        return keypoints_output(PlacedKeypoints((edited.layout((width, height)),), (width, height)), ui=ui)

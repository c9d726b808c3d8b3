"""Keypoints without a face photo: from a body pose (POSE_KEYPOINT), and an angle sheet of views of one head."""

from comfy_api.latest import io

from ..instantid_core.angle_sheet import angle_sheet, default_views, parse_views, view_names, views_problem
from ..instantid_core.body_pose import parse_pose_json, pose_layouts
from ..instantid_core.errors import problem_of
from ..instantid_core.face_analysis import NO_FACE_POLICIES
from ..instantid_core.keypoints import PlacedKeypoints
from .io_types import CATEGORY, POSE_KEYPOINT, frame_size_inputs, keypoint_outputs
from .keypoints import keypoints_output


class InstantIDKeypointsFromPose(io.ComfyNode):
    """The face keypoints of the people in a body pose, drawn as IdentityNet's control image."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDKeypointsFromPose",
            display_name="InstantID Keypoints from Pose",
            category=CATEGORY,
            description="Places the face where a body pose (DWPose or OpenPose estimator's POSE_KEYPOINT) has it: "
            "eyes and nose from the pose, mouth corners from its face points or, without them, from a mean head. "
            "Drawn as 'InstantID Keypoints' draws a face, so the body ControlNet and IdentityNet follow one pose.",
            inputs=[
                POSE_KEYPOINT.Input(
                    "pose",
                    tooltip="The pose estimator's POSE_KEYPOINT output (DWPose Estimator, OpenPose Pose), or "
                    "'InstantID Pose from JSON'. One keypoint image per picture of it.",
                ),
                *frame_size_inputs(
                    "the keypoint image and face mask: the size you generate. The pose's canvas is mapped onto it "
                    "as ComfyUI maps a ControlNet image (scaled, centre-cropped), never stretched."
                ),
                io.Int.Input(
                    "person",
                    default=0,
                    min=0,
                    max=63,
                    tooltip="Whose face to place: the person's number from 0, in reading order of the faces (left "
                    "to right, row by row).",
                ),
                io.Boolean.Input(
                    "all_people", default=False, tooltip="Place every person's face (person is then not used)."
                ),
                io.Combo.Input(
                    "no_face",
                    options=list(NO_FACE_POLICIES),
                    default="error",
                    tooltip="A person whose eyes or nose the pose lacks (turned away, cut off): stop with an error "
                    "naming them, or leave them out (logged).",
                ),
            ],
            outputs=keypoint_outputs(),
        )

    @classmethod
    def execute(cls, pose, width, height, person, all_people, no_face) -> io.NodeOutput:
        """Place and draw the faces of every picture of the pose."""
        layouts = pose_layouts(pose, person, all_people, no_face)
        return keypoints_output(PlacedKeypoints(layouts, (width, height)))


class InstantIDPoseFromJSON(io.ComfyNode):
    """A body pose written as JSON text, as a POSE_KEYPOINT value."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDPoseFromJSON",
            display_name="InstantID Pose from JSON",
            category=CATEGORY,
            description="A pose as JSON text (the pose estimator's JSON, a file of 'Save Pose Keypoints', an "
            "OpenPose editor's output) as POSE_KEYPOINT: for a saved pose, or an API prompt that carries it.",
            inputs=[
                io.String.Input(
                    "pose_json",
                    multiline=True,
                    default="",
                    tooltip='The pose in OpenPose\'s JSON layout: [{"people": [{"pose_keypoints_2d": [x, y, c, '
                    '...]}], "canvas_width": W, "canvas_height": H}], one entry per picture (one entry alone is '
                    "taken as a list of one).",
                ),
            ],
            outputs=[
                POSE_KEYPOINT.Output(display_name="pose", tooltip="The pose, for 'InstantID Keypoints from Pose'.")
            ],
        )

    @classmethod
    def validate_inputs(cls, pose_json=None) -> bool | str:
        """ComfyUI's check of the prompt before it runs: True, or what is wrong with the JSON."""
        problem = problem_of(parse_pose_json, pose_json) if pose_json is not None else None
        return f"InstantID Pose from JSON: {problem}" if problem else True

    @classmethod
    def execute(cls, pose_json) -> io.NodeOutput:
        """Read the pose."""
        return io.NodeOutput(parse_pose_json(pose_json))


class InstantIDAngleSheet(io.ComfyNode):
    """One keypoint image per named view of the head, all placed alike: a batch of angles of one person."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDAngleSheet",
            display_name="InstantID Angle Sheet",
            category=CATEGORY,
            description="A batch of keypoint images, one per view (the Keypoints Editor's presets), the face placed "
            "alike in each: generate it as one batch with one seed and one identity for a character sheet. "
            "Connect 'count' to the latent's batch_size.",
            inputs=[
                *frame_size_inputs("the keypoint images: the size you generate (another aspect letterboxes them)."),
                io.String.Input(
                    "views",
                    multiline=True,
                    default=default_views(),
                    tooltip=f"The views, one per line, picture 1 the first: {', '.join(view_names())}.",
                ),
                io.Boolean.Input(
                    "mirror", default=False, tooltip="Mirror every view (left and right swap: the other side)."
                ),
                io.Float.Input(
                    "scale",
                    default=1.0,
                    min=0.25,
                    max=4.0,
                    step=0.05,
                    tooltip="Face size against the presets' (1: eyes 16 % of the shorter side apart), about the "
                    "frame's centre.",
                ),
            ],
            outputs=[
                *keypoint_outputs(),
                io.Int.Output(display_name="count", tooltip="How many views: the batch size to generate."),
            ],
        )

    @classmethod
    def validate_inputs(cls, views=None, **_) -> bool | str:
        """ComfyUI's check of the prompt before it runs: True, or what is wrong with the views."""
        problem = views_problem(views) if views is not None else None
        return f"InstantID Angle Sheet: {problem}" if problem else True

    @classmethod
    def execute(cls, width, height, views, mirror, scale) -> io.NodeOutput:
        """Place and draw every view."""
        placed = angle_sheet(parse_views(views), (width, height), mirror, scale)
        images, masks, kps = keypoints_output(placed).result
        return io.NodeOutput(images, masks, kps, len(placed.layouts))

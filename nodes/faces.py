"""Face analysis node: finds the faces of a batch of reference photos and picks one per photo."""

import torch
from comfy_api.latest import io, ui

from ..instantid_core.face_analysis import NO_FACE_POLICIES, draw_preview
from ..instantid_core.faces import join_faces, parse_weights
from ..instantid_core.images import to_image_batch, to_uint8_rgb
from .io_types import CATEGORY, FACEANALYSIS, INSTANTID_FACE, face_choice_inputs

SKIP_HINT = "Or set no_face to 'skip' to leave photos without a face out (with a warning) and use the others."
"""The end of this node's no-face error: its own option for going on without a face."""


class InstantIDAnalyzeFaces(io.ComfyNode):
    """Detects the faces of every reference photo and computes their identity embeddings."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDAnalyzeFaces",
            display_name="InstantID Face Analysis",
            category=CATEGORY,
            description="Finds the face in each reference photo: box, 5 keypoints and 512-d identity embedding.",
            inputs=[
                FACEANALYSIS.Input("face_analysis", tooltip="The face models, from 'Load InstantID Face Analysis'."),
                io.Image.Input("image", tooltip="One or more reference photos of the person (a batch)."),
                *face_choice_inputs(),
                io.Combo.Input(
                    "no_face",
                    options=list(NO_FACE_POLICIES),
                    default="error",
                    tooltip="A photo without a face: stop with an error naming it, or skip it (logged) "
                    "and use the others.",
                ),
                io.String.Input(
                    "weights",
                    optional=True,
                    default="",
                    tooltip="How much each photo counts when several are combined with 'average' or 'norm "
                    "average': one number per photo, e.g. '1, 1, 0.5' (a photo of weight 2 counts as two). Empty: "
                    "every photo counts the same.",
                ),
            ],
            outputs=[
                INSTANTID_FACE.Output(
                    display_name="face",
                    tooltip="The analysed faces: per photo every face's box, keypoints and embedding, and the chosen "
                    "one.",
                ),
                io.Image.Output(
                    display_name="preview",
                    tooltip="Each photo with every face found, numbered, the chosen one highlighted.",
                ),
                io.Mask.Output(
                    display_name="face_mask",
                    tooltip="Per photo, the chosen face's box in the photo's pixels (all 0 for a skipped photo).",
                ),
            ],
        )

    @classmethod
    def execute(cls, face_analysis, image, face_choice, face_index, no_face, weights="") -> io.NodeOutput:
        """Analyse the batch; the preview shows every face found, the chosen one highlighted, and the mask each
        photo's chosen face box."""
        pictures = to_uint8_rgb(image)
        photo_weights = parse_weights(weights)
        faces = face_analysis.analyze(pictures, face_choice, face_index, no_face, no_face_hint=SKIP_HINT)
        if photo_weights is not None:
            faces = faces.with_weights(photo_weights)
        preview = to_image_batch([draw_preview(p, r) for p, r in zip(pictures, faces.results, strict=False)])
        height, width = pictures[0].shape[:2]
        face_mask = torch.from_numpy(faces.box_masks(width, height))
        return io.NodeOutput(faces, preview, face_mask, ui=ui.PreviewImage(preview, cls=cls))


JOINED_FACES = 4
"""Face inputs of 'InstantID Join Faces' (chain it for more: a joined batch goes into face_1 of the next)."""


class InstantIDJoinFaces(io.ComfyNode):
    """Joins faces from face analysis and saved faces, in order, into one batch of faces."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDJoinFaces",
            display_name="InstantID Join Faces",
            category=CATEGORY,
            description="One batch of faces from several: photo i of the result is the i-th photo of face_1, face_2, "
            "… in order. With combine_embeds 'per picture', picture i of the batch gets face i. The faces must come "
            "from the same recogniser.",
            inputs=[
                INSTANTID_FACE.Input(
                    f"face_{i}",
                    optional=i > 1,
                    tooltip=f"Faces from 'InstantID Face Analysis', 'InstantID Load Face' or another join; they come "
                    f"{'first' if i == 1 else f'after those of face_{i - 1}'}.",
                )
                for i in range(1, JOINED_FACES + 1)
            ],
            outputs=[
                INSTANTID_FACE.Output(
                    display_name="face",
                    tooltip="All the faces in order, for the InstantID nodes (combine_embeds 'per picture': one per "
                    "picture of the batch).",
                )
            ],
        )

    @classmethod
    def execute(cls, face_1, **more) -> io.NodeOutput:
        """Join the connected faces in input order."""
        later = (more.get(f"face_{i}") for i in range(2, JOINED_FACES + 1))
        return io.NodeOutput(join_faces([face_1, *(face for face in later if face is not None)]))

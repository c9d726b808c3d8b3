"""Save and load faces: an analysed person kept in models/instantid/faces/ for reuse without the photos."""

import os

from comfy_api.latest import io, ui

from ..instantid_core.errors import InstantIDError
from ..instantid_core.saved_faces import load_faces, save_faces
from .comfy_glue import folders
from .io_types import CATEGORY, INSTANTID_FACE


class InstantIDSaveFace(io.ComfyNode):
    """Writes an INSTANTID_FACE to models/instantid/faces/<name>.safetensors."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDSaveFace",
            display_name="InstantID Save Face",
            category=CATEGORY,
            description="Keeps the analysed faces (embeddings, keypoints, boxes, photo sizes, which recogniser made "
            "them and the photo weights) in a small file, for 'InstantID Load Face'.",
            is_output_node=True,
            inputs=[
                INSTANTID_FACE.Input("face", tooltip="The faces to keep, from 'InstantID Face Analysis'."),
                io.String.Input(
                    "name", default="person", tooltip="File name in models/instantid/faces/ (.safetensors is added)."
                ),
                io.Boolean.Input(
                    "overwrite",
                    default=False,
                    tooltip="Replace a saved face of the same name; off: an existing file is an error.",
                ),
            ],
            outputs=[],
        )

    @classmethod
    def execute(cls, face, name, overwrite) -> io.NodeOutput:
        """Save the faces."""
        path = folders.new_saved_face_path(name)
        if os.path.exists(path) and not overwrite:
            raise InstantIDError(
                f"{path} exists: choose another name, or turn overwrite on to replace it.", "file_exists"
            )
        count = save_faces(face, path)
        message = f"Saved {count} face(s) to {path} (recogniser: {face.recognizer.name})."
        return io.NodeOutput(ui=ui.PreviewText(message))


class InstantIDLoadFace(io.ComfyNode):
    """Reads a face saved by 'InstantID Save Face' back as INSTANTID_FACE."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDLoadFace",
            display_name="InstantID Load Face",
            category=CATEGORY,
            description="A saved person, to use wherever 'InstantID Face Analysis' output goes. Similarity refuses "
            "faces of another recogniser; identity tokens warn when it is not antelopev2's glintr100.",
            inputs=[
                io.Combo.Input(
                    "saved_face",
                    options=folders.saved_face_files(),
                    tooltip="A file in models/instantid/faces/, written by 'InstantID Save Face'.",
                ),
            ],
            outputs=[
                INSTANTID_FACE.Output(
                    display_name="face",
                    tooltip="The saved faces, for wherever the output of 'InstantID Face Analysis' goes.",
                )
            ],
        )

    @classmethod
    def execute(cls, saved_face) -> io.NodeOutput:
        """Load the saved faces."""
        return io.NodeOutput(load_faces(folders.saved_face_path(saved_face)))

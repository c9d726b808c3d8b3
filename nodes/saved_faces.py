"""Save and load faces: an analysed person kept in models/instantid/faces/ for reuse without the photos."""

import os

from comfy_api.latest import io, ui

from ..instantid_core.errors import InstantIDError, problem_of, with_code
from ..instantid_core.face_value import face_from_text, face_to_text
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
            "them and the photo weights) in a small file, for 'InstantID Load Face', and gives them as a text value "
            "that an API prompt can carry in place of the file.",
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
            outputs=[
                io.String.Output(
                    display_name="face_value",
                    tooltip="The same faces as text (about 3.5 KB a face), for Load Face's face_value: the identity "
                    "inside the prompt, so no server needs the file.",
                )
            ],
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
        value = face_to_text(face)
        message = (
            f"Saved {count} face(s) to {path} (recogniser: {face.recognizer.name}); as a value: {len(value)} "
            "characters on the face_value output."
        )
        return io.NodeOutput(value, ui=ui.PreviewText(message))


class InstantIDLoadFace(io.ComfyNode):
    """Reads a face saved by 'InstantID Save Face' back as INSTANTID_FACE."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDLoadFace",
            display_name="InstantID Load Face",
            category=CATEGORY,
            description="A saved person, from a file or from its text value, to use wherever 'InstantID Face "
            "Analysis' output goes. Similarity refuses faces of another recogniser; identity tokens warn when it is "
            "not antelopev2's glintr100.",
            inputs=[
                io.Combo.Input(
                    "saved_face",
                    options=folders.saved_face_files(),
                    optional=True,
                    tooltip="A file in models/instantid/faces/, written by 'InstantID Save Face'. Not used (nor "
                    "checked) when face_value is given.",
                ),
                io.String.Input(
                    "face_value",
                    optional=True,
                    default="",
                    tooltip="The face as text ('instantid-face:...', the face_value output of 'InstantID Save "
                    "Face'), in place of the file: an API prompt then carries the identity and no server needs the "
                    "file.",
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
    def validate_inputs(cls, saved_face=None, face_value=None) -> bool | str:
        """ComfyUI's check of the prompt before it runs: the face value when one is given (the file then need not
        exist on this server), else the saved face's name. Taking both inputs here stops ComfyUI's own check of
        the file list."""
        if face_value and face_value.strip():
            problem = problem_of(face_from_text, face_value)
            if problem is None:
                return True
        elif not saved_face:
            problem = with_code("choose a saved face, or give its face_value.", "missing_input")
        elif saved_face not in folders.saved_face_files():
            problem = with_code(
                f"there is no saved face '{saved_face}' in models/instantid/faces/ on this server: save it there, or "
                "give the face as its face_value.",
                "model_not_found",
            )
        else:
            return True
        return f"InstantID Load Face: {problem}"

    @classmethod
    def execute(cls, saved_face=None, face_value="") -> io.NodeOutput:
        """The faces of the face value, or of the saved file."""
        if face_value and face_value.strip():
            return io.NodeOutput(face_from_text(face_value))
        return io.NodeOutput(load_faces(folders.saved_face_path(saved_face or "")))

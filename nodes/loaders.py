"""Loader nodes: the InstantID adapter file and the face analysis models."""

from comfy_api.latest import io

from ..instantid_core.face_analysis import PROVIDERS, FaceModels
from ..instantid_core.identity import InstantIDAdapter
from .comfy_glue import folders
from .io_types import CATEGORY, FACEANALYSIS, INSTANTID

OTHER_RECOGNIZER = ("warn", "refuse")
"""What identity tokens from a recogniser other than antelopev2's glintr100 do: warn, or stop with an error."""


class InstantIDLoadAdapter(io.ComfyNode):
    """Loads InstantID's ip-adapter file (Resampler + per-layer identity K/V projections)."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDLoadAdapter",
            display_name="Load InstantID Adapter",
            category=CATEGORY,
            description="Loads InstantID's adapter (ip-adapter.bin or .safetensors) from models/instantid.",
            inputs=[
                io.Combo.Input(
                    "adapter_file",
                    options=folders.adapter_files(),
                    tooltip="InstantID's ip-adapter.bin (or a .safetensors conversion) in models/instantid/.",
                )
            ],
            outputs=[
                INSTANTID.Output(
                    display_name="INSTANTID",
                    tooltip="The InstantID adapter, for every 'instantid' input (Apply InstantID, Patch Attention, "
                    "Apply IdentityNet).",
                )
            ],
        )

    @classmethod
    def execute(cls, adapter_file) -> io.NodeOutput:
        """Load and validate the file."""
        return io.NodeOutput(InstantIDAdapter.load(folders.adapter_path(adapter_file)))


class InstantIDLoadFaceAnalysis(io.ComfyNode):
    """Loads the face detector and recogniser of an insightface model pack (antelopev2)."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDLoadFaceAnalysis",
            display_name="Load InstantID Face Analysis",
            category=CATEGORY,
            description="Loads the detector and recogniser of a face pack in models/insightface/models/. By "
            "default photos are resized before analysis as InstantID's reference pipeline does (reference_resize).",
            inputs=[
                io.Combo.Input(
                    "face_pack",
                    options=folders.face_pack_names(),
                    tooltip="Folder in models/insightface/models/ holding a face detector with keypoints and a "
                    "512-d recogniser as .onnx files, found by their graphs whatever their names (InstantID is "
                    "trained with antelopev2).",
                ),
                io.Combo.Input(
                    "provider",
                    options=list(PROVIDERS),
                    default="auto",
                    tooltip="Where onnxruntime runs the face models. 'auto' picks the best one installed; "
                    "one that is not installed falls back to the CPU with a warning.",
                ),
                io.Int.Input(
                    "detection_size",
                    default=640,
                    min=128,
                    max=1280,
                    step=32,
                    tooltip="Detector input size in pixels. Smaller finds close-ups; analysis also retries "
                    "smaller sizes when no face is found.",
                ),
                io.Boolean.Input(
                    "reference_resize",
                    optional=True,
                    default=True,
                    tooltip="Resize each photo as InstantID's reference pipeline does before analysing it (long "
                    "side 1280 px, both sides multiples of 64): a large photo then gives the same face whatever its "
                    "size. Off: analysed as it arrives (ComfyUI_InstantID). Positions are in the photo's own pixels "
                    "either way.",
                ),
                io.Combo.Input(
                    "other_recognizer",
                    options=list(OTHER_RECOGNIZER),
                    optional=True,
                    default=OTHER_RECOGNIZER[0],
                    tooltip="When the pack's recogniser is not antelopev2's glintr100 (the one InstantID was trained "
                    "with), identity tokens made from its faces: 'warn' (the identity will not transfer well) or "
                    "'refuse' (an error). Face analysis, keypoints and similarity work with any pack.",
                ),
            ],
            outputs=[
                FACEANALYSIS.Output(
                    display_name="FACEANALYSIS",
                    tooltip="The face detector and recogniser, for 'InstantID Face Analysis', the Apply InstantID "
                    "nodes and 'InstantID Face Similarity'.",
                )
            ],
        )

    @classmethod
    def execute(
        cls, face_pack, provider, detection_size, reference_resize=True, other_recognizer=OTHER_RECOGNIZER[0]
    ) -> io.NodeOutput:
        """Check the folder and load its detector and recogniser."""
        return io.NodeOutput(
            FaceModels.load(
                folders.face_pack_path(face_pack),
                provider,
                detection_size,
                reference_resize,
                refuse_other_recognizer=other_recognizer == "refuse",
            )
        )

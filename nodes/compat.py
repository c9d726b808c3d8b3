"""Drop-in aliases for the node classes of cubiq's ComfyUI_InstantID, so workflows saved with it load and run here.

Each alias keeps that pack's class name, input names, widget order, defaults, option lists and outputs, and runs this
pack's implementation: every cross-attention layer patched (the middle block too), errors instead of silent
fall-backs, dtypes that follow the model. `FACE_EMBEDS` carries our identity tokens between the two split nodes.
"""

from comfy_api.latest import io

from ..instantid_core.attention import WEIGHT_TYPES
from ..instantid_core.errors import InstantIDError
from ..instantid_core.face_analysis import PROVIDERS, FaceModels
from ..instantid_core.faces import COMBINE_METHODS, PER_PICTURE
from ..instantid_core.identity import InstantIDAdapter
from ..instantid_core.images import to_image_batch, to_uint8_rgb
from ..instantid_core.keypoints import KeypointLayout, draw_layouts, layouts_of, with_layouts
from .apply import OUTPUTS, AllInOneNode, InstantIDInputs, InstantIDSettings, graph_inputs, optional_inputs
from .comfy_glue import controlnet, folders, unet_patching
from .io_types import FACEANALYSIS, INSTANTID, PercentRangeNode, percent_inputs

CATEGORY = "InstantID/ComfyUI_InstantID compatible"
FACE_EMBEDS = io.Custom("FACE_EMBEDS")
COMPAT_PROVIDERS = ("CPU", "CUDA", "ROCM", "CoreML")
"""ComfyUI_InstantID's provider options, in its order."""
PROVIDER_NAMES = {name: {ours.casefold(): ours for ours in PROVIDERS}[name.casefold()] for name in COMPAT_PROVIDERS}
"""ComfyUI_InstantID's provider options -> the core's PROVIDERS of the same name in any case (one missing fails the
import)."""
COMBINE_OPTIONS = tuple(method for method in COMBINE_METHODS if method not in ("joint", PER_PICTURE))
"""ComfyUI_InstantID's combine_embeds options: the core's COMBINE_METHODS but this pack's own 'joint' and 'per
picture'."""
COMPAT_NOISE = 0.35
"""ComfyUI_InstantID's Apply InstantID perturbs the negative identity by this much (not exposed as a widget)."""
FACE_PACK = "antelopev2"
PERCENT_NAMES = ("start_at", "end_at")
"""ComfyUI_InstantID's names of the start/end inputs."""


def _float(name: str, default: float, low: float, high: float, step: float, tooltip: str) -> io.Float.Input:
    """A FLOAT widget with ComfyUI_InstantID's range."""
    return io.Float.Input(name, default=default, min=low, max=high, step=step, tooltip=tooltip)


class CompatPercentRangeNode(PercentRangeNode):
    """PercentRangeNode with the start/end inputs as ComfyUI_InstantID names them (start_at, end_at)."""

    PERCENT_NAMES = PERCENT_NAMES

    @classmethod
    def validate_inputs(cls, start_at=None, end_at=None) -> bool | str:
        """ComfyUI's check of the prompt before it runs: True, or what is wrong with start_at and end_at."""
        return cls.percent_problem(start_at, end_at) or True


def _face_tokens(insightface: FaceModels, instantid: InstantIDAdapter, image, noise: float, combine: str = "average"):
    """Identity tokens of the largest face of each reference photo (an error names a photo without one)."""
    faces = insightface.analyze(to_uint8_rgb(image), "largest", 0, "error")
    return instantid.face_tokens(faces, combine, noise)


class InstantIDModelLoaderCompat(io.ComfyNode):
    """ComfyUI_InstantID's 'Load InstantID Model'."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDModelLoader",
            display_name="Load InstantID Model (compatible)",
            category=CATEGORY,
            inputs=[
                io.Combo.Input(
                    "instantid_file",
                    options=folders.adapter_files(),
                    tooltip="InstantID's ip-adapter.bin in models/instantid/.",
                )
            ],
            outputs=[INSTANTID.Output(display_name="INSTANTID", tooltip="The InstantID adapter.")],
        )

    @classmethod
    def execute(cls, instantid_file) -> io.NodeOutput:
        """Load and validate the adapter."""
        return io.NodeOutput(InstantIDAdapter.load(folders.adapter_path(instantid_file)))


class InstantIDFaceAnalysisCompat(io.ComfyNode):
    """ComfyUI_InstantID's 'InstantID Face Analysis' (a loader: antelopev2 at detection size 640)."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDFaceAnalysis",
            display_name="InstantID Face Analysis Loader (compatible)",
            category=CATEGORY,
            inputs=[
                io.Combo.Input(
                    "provider",
                    options=list(PROVIDER_NAMES),
                    tooltip="Where onnxruntime runs the face models; unavailable ones fall back to "
                    "the CPU with a warning.",
                )
            ],
            outputs=[
                FACEANALYSIS.Output(
                    display_name="FACEANALYSIS", tooltip="The antelopev2 face models (detector and recogniser)."
                )
            ],
        )

    @classmethod
    def execute(cls, provider) -> io.NodeOutput:
        """Load antelopev2's detector and recogniser; photos are analysed at their own size, as that pack does."""
        return io.NodeOutput(
            FaceModels.load(folders.face_pack_path(FACE_PACK), PROVIDER_NAMES[provider], 640, reference_resize=False)
        )


class FaceKeypointsPreprocessorCompat(io.ComfyNode):
    """ComfyUI_InstantID's 'Face Keypoints Preprocessor': each photo's largest face as a keypoint image."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="FaceKeypointsPreprocessor",
            display_name="Face Keypoints Preprocessor (compatible)",
            category=CATEGORY,
            inputs=[
                FACEANALYSIS.Input("faceanalysis", tooltip="The face models."),
                io.Image.Input(
                    "image",
                    tooltip="Photo(s) whose face keypoints to draw, at their own size (IdentityNet draws them again "
                    "at the generation size).",
                ),
            ],
            outputs=[
                io.Image.Output(
                    display_name="IMAGE", tooltip="One keypoint image per photo: its largest face's 5 keypoints."
                )
            ],
        )

    @classmethod
    def execute(cls, faceanalysis, image) -> io.NodeOutput:
        """Draw the keypoints of every photo (a photo without a face is an error naming it)."""
        faces = faceanalysis.analyze(to_uint8_rgb(image), "largest", 0, "error", "Pose photo")
        layouts = [KeypointLayout.of(result, "as in source") for result in faces.results]
        pictures = draw_layouts(layouts, faces.results[0].face.image_size)
        return io.NodeOutput(with_layouts(to_image_batch(list(pictures)), layouts))


class ApplyInstantIDCompat(CompatPercentRangeNode, AllInOneNode):
    """ComfyUI_InstantID's 'Apply InstantID'."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="ApplyInstantID",
            display_name="Apply InstantID (compatible)",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            inputs=[
                *graph_inputs("insightface"),
                _float("weight", 0.8, 0.0, 5.0, 0.01, "Identity strength (adapter weight and IdentityNet)."),
                *percent_inputs("InstantID", PERCENT_NAMES),
                *optional_inputs(),
            ],
            outputs=list(OUTPUTS),
        )

    @classmethod
    def execute(
        cls,
        instantid,
        insightface,
        control_net,
        image,
        model,
        positive,
        negative,
        weight,
        start_at,
        end_at,
        image_kps=None,
        mask=None,
    ) -> io.NodeOutput:
        """Apply InstantID with this pack's implementation."""
        inputs = InstantIDInputs(insightface, instantid, control_net, image, model, positive, negative, image_kps, mask)
        settings = InstantIDSettings(
            adapter_weight=weight,
            identitynet_strength=weight,
            start_percent=start_at,
            end_percent=end_at,
            noise=COMPAT_NOISE,
        )
        return cls.run(inputs, settings)


class ApplyInstantIDAdvancedCompat(CompatPercentRangeNode, AllInOneNode):
    """ComfyUI_InstantID's 'Apply InstantID Advanced'."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="ApplyInstantIDAdvanced",
            display_name="Apply InstantID Advanced (compatible)",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            inputs=[
                *graph_inputs("insightface"),
                _float("ip_weight", 0.8, 0.0, 3.0, 0.01, "Strength of the identity attention."),
                _float("cn_strength", 0.8, 0.0, 10.0, 0.01, "Strength of IdentityNet."),
                *percent_inputs("InstantID", PERCENT_NAMES),
                _float("noise", 0.0, 0.0, 1.0, 0.1, "Noise in the negative identity."),
                io.Combo.Input(
                    "combine_embeds",
                    options=list(COMBINE_OPTIONS),
                    default="average",
                    tooltip="How several reference photos are combined.",
                ),
                *optional_inputs(),
            ],
            outputs=list(OUTPUTS),
        )

    @classmethod
    def execute(
        cls,
        instantid,
        insightface,
        control_net,
        image,
        model,
        positive,
        negative,
        ip_weight,
        cn_strength,
        start_at,
        end_at,
        noise,
        combine_embeds,
        image_kps=None,
        mask=None,
    ) -> io.NodeOutput:
        """Apply InstantID with this pack's implementation."""
        inputs = InstantIDInputs(insightface, instantid, control_net, image, model, positive, negative, image_kps, mask)
        settings = InstantIDSettings(
            adapter_weight=ip_weight,
            identitynet_strength=cn_strength,
            start_percent=start_at,
            end_percent=end_at,
            noise=noise,
            combine_embeds=combine_embeds,
        )
        return cls.run(inputs, settings)


class InstantIDAttentionPatchCompat(CompatPercentRangeNode):
    """ComfyUI_InstantID's 'InstantID Patch Attention' (with FACE_EMBEDS for its Apply ControlNet)."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="InstantIDAttentionPatch",
            display_name="InstantID Patch Attention (compatible)",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            inputs=[
                INSTANTID.Input("instantid", tooltip="The InstantID adapter."),
                FACEANALYSIS.Input("insightface", tooltip="The face models."),
                io.Image.Input("image", tooltip="Reference photo(s) of the person."),
                io.Model.Input("model", tooltip="An SDXL model."),
                _float("weight", 1.0, -1.0, 3.0, 0.01, "Strength of the identity attention."),
                *percent_inputs("the identity attention", PERCENT_NAMES),
                _float("noise", 0.0, 0.0, 1.0, 0.1, "Noise in the negative identity."),
                io.Mask.Input("mask", optional=True, tooltip="Region where the identity applies."),
                io.Combo.Input(
                    "weight_type",
                    options=list(WEIGHT_TYPES),
                    optional=True,
                    tooltip="Per-block profile of the weight (this pack's addition, after that pack's inputs).",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The model with the identity attention."),
                FACE_EMBEDS.Output(
                    display_name="FACE_EMBEDS", tooltip="The identity tokens, for 'InstantID Apply ControlNet'."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, instantid, insightface, image, model, weight, start_at, end_at, noise, weight_type="linear", mask=None
    ) -> io.NodeOutput:
        """Patch the attention; weight 0 leaves the model as it is and only makes the face embeddings."""
        cls.check_percents(start_at, end_at)
        tokens = _face_tokens(insightface, instantid, image, noise)
        if weight == 0:
            return io.NodeOutput(model, tokens)
        patched = unet_patching.apply_identity_attention(
            model, instantid, tokens, weight, start_at, end_at, weight_type, mask, cls.label()
        )
        return io.NodeOutput(patched, tokens)


class ApplyInstantIDControlNetCompat(CompatPercentRangeNode):
    """ComfyUI_InstantID's 'InstantID Apply ControlNet' (IdentityNet with FACE_EMBEDS)."""

    @classmethod
    def define_schema(cls):
        """Node schema."""
        return io.Schema(
            node_id="ApplyInstantIDControlNet",
            display_name="InstantID Apply ControlNet (compatible)",
            category=CATEGORY,
            hidden=[io.Hidden.unique_id],
            inputs=[
                FACE_EMBEDS.Input("face_embeds", tooltip="From 'InstantID Patch Attention'."),
                io.ControlNet.Input("control_net", tooltip="IdentityNet."),
                io.Image.Input("image_kps", tooltip="The keypoint image."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                _float("strength", 1.0, 0.0, 10.0, 0.01, "Strength of IdentityNet."),
                *percent_inputs("IdentityNet", PERCENT_NAMES),
                io.Mask.Input("mask", optional=True, tooltip="Region where IdentityNet acts."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="The positive conditioning with IdentityNet."),
                io.Conditioning.Output(display_name="negative", tooltip="The negative conditioning with IdentityNet."),
            ],
        )

    @classmethod
    def execute(
        cls, face_embeds, control_net, image_kps, positive, negative, strength, start_at, end_at, mask=None
    ) -> io.NodeOutput:
        """Attach IdentityNet; strength 0 leaves the conditioning as it is."""
        cls.check_percents(start_at, end_at)
        if strength == 0:
            return io.NodeOutput(positive, negative)
        if face_embeds is None:
            raise InstantIDError("No FACE_EMBEDS: connect 'InstantID Patch Attention' to face_embeds.", "missing_input")
        return io.NodeOutput(
            *controlnet.apply_identitynet(
                positive,
                negative,
                control_net,
                face_embeds,
                image_kps,
                strength,
                start_at,
                end_at,
                mask,
                node=cls.label(),
                layouts=layouts_of(image_kps),  # FaceKeypointsPreprocessor marks its image with them
            )
        )


COMPAT_NODES = [
    InstantIDModelLoaderCompat,
    InstantIDFaceAnalysisCompat,
    FaceKeypointsPreprocessorCompat,
    ApplyInstantIDCompat,
    ApplyInstantIDAdvancedCompat,
    InstantIDAttentionPatchCompat,
    ApplyInstantIDControlNetCompat,
]

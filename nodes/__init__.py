"""ComfyUI nodes of the InstantID pack: one module per graph stage, all registered in one extension."""

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from .apply import InstantIDApply, InstantIDApplyAdvanced
from .attention import InstantIDPatchAttention
from .comfy_glue import folders
from .compat import COMPAT_NODES
from .doctor import InstantIDDoctor
from .download import InstantIDDownloadModels
from .face_crop import InstantIDFaceCrop, InstantIDFacePaste
from .faces import InstantIDAnalyzeFaces, InstantIDJoinFaces
from .identitynet import InstantIDApplyIdentityNet
from .keypoint_editor import InstantIDKeypointsEditor
from .keypoints import InstantIDKeypoints, InstantIDTransformKeypoints
from .loaders import InstantIDLoadAdapter, InstantIDLoadFaceAnalysis
from .people import InstantIDApplyPeople
from .pose import InstantIDAngleSheet, InstantIDKeypointsFromPose, InstantIDPoseFromJSON
from .saved_faces import InstantIDLoadFace, InstantIDSaveFace
from .similarity import InstantIDFaceSimilarity

NODE_CLASSES: list[type[io.ComfyNode]] = [
    InstantIDLoadAdapter,
    InstantIDLoadFaceAnalysis,
    InstantIDAnalyzeFaces,
    InstantIDJoinFaces,
    InstantIDKeypoints,
    InstantIDKeypointsEditor,
    InstantIDTransformKeypoints,
    InstantIDKeypointsFromPose,
    InstantIDPoseFromJSON,
    InstantIDAngleSheet,
    InstantIDApplyIdentityNet,
    InstantIDPatchAttention,
    InstantIDApply,
    InstantIDApplyAdvanced,
    InstantIDApplyPeople,
    InstantIDFaceSimilarity,
    InstantIDSaveFace,
    InstantIDLoadFace,
    InstantIDFaceCrop,
    InstantIDFacePaste,
    InstantIDDoctor,
    InstantIDDownloadModels,
    *COMPAT_NODES,
]


class InstantIDExtension(ComfyExtension):
    """Registers the pack's model folders and nodes with ComfyUI."""

    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """Return every node class of the pack."""
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> InstantIDExtension:
    """ComfyUI's entry point for V3 node packs."""
    folders.register_model_folders()
    return InstantIDExtension()

"""The facts about the model files InstantID uses, in one place: where each is published and goes, its exact size and
sha256, and the architecture that tells IdentityNet from other ControlNets.

The loaders' checks, InstantID Doctor and InstantID Download Models all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

HUB = "https://huggingface.co"
INSTANTID_REPO = f"{HUB}/InstantX/InstantID"
"""InstantID's model page: the adapter and IdentityNet."""
ANTELOPEV2_REPO = f"{HUB}/MonsterMMORPG/InstantID_Models"
"""A copy of insightface's antelopev2 pack on the hub (insightface itself publishes no direct link)."""
SDXL_CONTEXT_WIDTH = 2048
"""SDXL's cross-attention (text context) width."""
SDXL_ADM_WIDTH = 2816
"""SDXL's ADM input width: the 1280-d pooled text embedding and six 256-d size and crop embeddings."""


@dataclass(frozen=True)
class KnownFile:
    """A released model file, known by its exact size and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PublishedFile(KnownFile):
    """A released model file InstantID uses: its repository page and path there, and where it goes in ComfyUI (a
    model folder and a path inside it)."""

    repo: str
    path: str
    folder: str
    relative: str

    @property
    def url(self) -> str:
        """Its direct download address."""
        return f"{self.repo}/resolve/main/{self.path}"

    @property
    def source(self) -> str:
        """Where messages send the user for it: the repository page and the file's path there."""
        return f"{self.repo} ({self.path})"

    @property
    def install_path(self) -> str:
        """Where it goes, relative to ComfyUI's models folder."""
        return f"{self.folder}/{self.relative}"


@dataclass(frozen=True)
class ControlNetShape:
    """What tells a ControlNet's architecture: its cross-attention and ADM input widths, and its transformer blocks
    per input block and in the middle block."""

    context_width: int
    adm_width: int
    input_depths: tuple[int, ...]
    middle_depth: int

    @property
    def depths(self) -> tuple[tuple[int, ...], int]:
        """Transformer blocks per input block, and in the middle block."""
        return self.input_depths, self.middle_depth

    @property
    def transformer_blocks(self) -> int:
        """All its transformer blocks."""
        return sum(self.input_depths) + self.middle_depth


ADAPTER = PublishedFile(
    "ip-adapter.bin",
    1_691_134_141,
    "02b3618e36d803784166660520098089a81388e61a93ef8002aa79a5b1c546e1",
    INSTANTID_REPO,
    "ip-adapter.bin",
    "instantid",
    "ip-adapter.bin",
)
"""InstantID's adapter (the Resampler and the K/V projections of the identity tokens)."""
IDENTITYNET = PublishedFile(
    "diffusion_pytorch_model.safetensors",
    2_502_139_136,
    "c8127be9f174101ebdafee9964d856b49b634435cf6daa396d3f593cf0bbbb05",
    INSTANTID_REPO,
    "ControlNetModel/diffusion_pytorch_model.safetensors",
    "controlnet",
    "instantid/diffusion_pytorch_model.safetensors",
)
"""IdentityNet, InstantID's ControlNet."""
ANTELOPEV2_DETECTOR = PublishedFile(
    "scrfd_10g_bnkps.onnx",
    16_923_827,
    "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
    ANTELOPEV2_REPO,
    "models/antelopev2/scrfd_10g_bnkps.onnx",
    "insightface",
    "models/antelopev2/scrfd_10g_bnkps.onnx",
)
"""antelopev2's face detector (SCRFD-10G, with the five keypoints)."""
GLINTR100 = PublishedFile(
    "glintr100.onnx",
    260_665_334,
    "4ab1d6435d639628a6f3e5008dd4f929edf4c4124b1a7169e1048f9fef534cdf",
    ANTELOPEV2_REPO,
    "models/antelopev2/glintr100.onnx",
    "insightface",
    "models/antelopev2/glintr100.onnx",
)
"""antelopev2's face recogniser, glintr100, whose embeddings InstantID was trained on."""
IDENTITYNET_SHAPE = ControlNetShape(SDXL_CONTEXT_WIDTH, SDXL_ADM_WIDTH, (0, 0, 0, 0, 2, 2, 0, 10, 10), 10)
"""IdentityNet's architecture: a full-size SDXL ControlNet's (34 transformer blocks; a 'mid' or 'small' one has
fewer)."""

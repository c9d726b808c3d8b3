"""Running the tiny models the way the host tests need: faces, one denoising step, recording identity calls."""

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from scripts.harness.conditioning import sdxl_conditioning

LATENT = (1, 4, 16, 16)  # 128×128 pixels


def as_image(array: np.ndarray) -> torch.Tensor:
    """An HxWx3 uint8 picture as a ComfyUI IMAGE batch of one."""
    return torch.from_numpy(array.copy()).float().unsqueeze(0) / 255


def face_photo(standins: Path) -> torch.Tensor:
    """The stand-in reference photo, with one face, as a ComfyUI IMAGE."""
    return as_image(np.array(Image.open(standins / "input" / "instantid_face.png").convert("RGB")))


def make_faces(pack, seeds=(1,)):
    """INSTANTID_FACE with one face per seed (random 512-d embeddings of ArcFace-like norm)."""
    results = []
    for index, seed in enumerate(seeds):
        embedding = np.random.default_rng(seed).normal(0, 1, 512) * 1.0
        face = pack.faces.DetectedFace(
            embedding=embedding,
            kps=[[40, 50], [80, 50], [60, 70], [45, 95], [75, 95]],
            bbox=[25, 25, 100, 110],
            det_score=0.9,
            image_size=(128, 128),
        )
        results.append(pack.faces.FaceAnalysisResult(faces=(face,), chosen=0, batch_index=index))
    return pack.faces.InstantIDFaces(results)


def denoise(model, positive=None, negative=None, sigma=None, seed=0, latent=LATENT):
    """One Euler step from `sigma` to 0 (the model's x0 prediction with CFG 5), cond and uncond batched, on a latent
    of this shape (by default 128×128 pixels)."""
    import comfy.sample
    import comfy.samplers

    sampling = model.get_model_object("model_sampling")
    sigma = float(sampling.sigma_max) if sigma is None else sigma
    positive = positive if positive is not None else sdxl_conditioning(10)
    negative = negative if negative is not None else sdxl_conditioning(11)
    noise = torch.randn(latent, generator=torch.Generator().manual_seed(seed))
    return comfy.sample.sample_custom(
        model,
        noise,
        5.0,
        comfy.samplers.sampler_object("euler"),
        torch.tensor([sigma, 0.0]),
        positive,
        negative,
        torch.zeros(latent),
        disable_pbar=True,
        seed=seed,
    )


def cells(mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Which cells of an h×w layer lie wholly inside (mask 1), and wholly outside (mask 0), a region drawn at the
    picture size (a boundary cell is partly both: its weight is between 0 and 1)."""
    blocks = mask.reshape(height, mask.shape[0] // height, width, mask.shape[1] // width)
    return blocks.min(axis=(1, 3)) == 1, blocks.max(axis=(1, 3)) == 0


class IdentityCall(NamedTuple):
    """One identity-term computation: the layer, the term, the layer call's options and which identity it was."""

    key: tuple
    term: torch.Tensor
    options: dict
    identity: object


def record_identity_calls(monkeypatch, pack) -> list[IdentityCall]:
    """Replace IdentityAttention.identity_term with a recording wrapper; returns the list of calls it records."""
    calls = []
    original = pack.attention.IdentityAttention.identity_term

    def recording(self, key, q, heads, extra_options):
        term = original(self, key, q, heads, extra_options)
        calls.append(IdentityCall(key, term, dict(extra_options), self))
        return term

    monkeypatch.setattr(pack.attention.IdentityAttention, "identity_term", recording)
    return calls

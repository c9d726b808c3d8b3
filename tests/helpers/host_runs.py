"""Running the tiny models the way the host tests need: faces, one denoising step, recording identity calls, the hint
IdentityNet receives and its residuals with and without a region."""

import dataclasses
import inspect
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
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


def as_run_by_comfyui(node_class, node_id: str):
    """The node class as ComfyUI's executor prepares it to run node #node_id: a clone holding the hidden inputs it
    asks for (0.3.75 passes them as a dict, 0.33 inside its V3 data)."""
    from comfy_api.latest import io

    hidden = {io.Hidden.unique_id: node_id}
    takes_v3_data = "v3_data" in inspect.signature(node_class.PREPARE_CLASS_CLONE).parameters
    return node_class.PREPARE_CLASS_CLONE({"hidden_inputs": hidden} if takes_v3_data else hidden)


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


def check_region(values: torch.Tensor, unlimited: torch.Tensor, box_mask: np.ndarray, what) -> None:
    """[rows, C, h, w] values: zero in every cell outside the box (an H×W mask at the picture size), equal to the
    values computed without a region inside it; the unlimited values are not zero outside (so the region did it)."""
    inside, outside = cells(box_mask, *values.shape[-2:])
    assert inside.any() and outside.any(), f"{what}: the layer does not see both sides of the box"
    inside, outside = torch.from_numpy(inside), torch.from_numpy(outside)
    leaked = torch.count_nonzero(values[..., outside])
    assert leaked == 0, f"{what}: {leaked} values outside the box are not zero"
    assert torch.count_nonzero(unlimited[..., outside]) > 0, f"{what}: zero outside the box even without the region"
    assert torch.equal(values[..., inside], unlimited[..., inside]), f"{what}: inside the box, not as without region"


class HintSeen(Exception):
    """Raised by the ControlNet spy once it has the hint: nothing else of the sampling step needs to run."""


def hint_received(model, positive, negative, size: tuple[int, int], pictures: int = 1) -> torch.Tensor:
    """The hint IdentityNet's control model is called with when sampling a batch of `pictures` width×height
    pictures."""
    control = positive[0][1]["control"]
    seen = []

    def spy(self, x, hint, timesteps, context, **kwargs):
        seen.append(hint.detach().clone())
        raise HintSeen

    with pytest.MonkeyPatch.context() as patch, pytest.raises(HintSeen):
        patch.setattr(type(control.control_model), "forward", spy)
        denoise(model, positive, negative, latent=(pictures, 4, size[1] // 8, size[0] // 8))
    return seen[0]


def assert_every_row_is(hint: torch.Tensor, expected: torch.Tensor) -> None:
    """Each row of the (cond/uncond batched) hint equals the expected [1, C, H, W] drawing exactly."""
    assert hint.shape[1:] == expected.shape[1:], f"hint {tuple(hint.shape)}, expected {tuple(expected.shape)}"
    for row in hint:
        differ = torch.count_nonzero((row != expected[0]).any(dim=0))
        assert differ == 0, f"the hint differs from the expected drawing at {differ} of {row[0].numel()} pixels"


def record_identitynet_residuals(monkeypatch, pack) -> list[tuple[dict, dict]]:
    """Wrap IdentityNetControl.get_control so each call also computes its residuals without the region; returns the
    list of (residuals, residuals without the region) it records."""
    residuals = []
    original = pack.controlnet.IdentityNetControl.get_control

    def control_and_unlimited(self, x_noisy, t, cond, batched_number, transformer_options):
        limited = original(self, x_noisy, t, cond, batched_number, transformer_options)
        region, self.region = self.region, None
        try:
            unlimited = original(self, x_noisy, t, cond, batched_number, transformer_options)
        finally:
            self.region = region
        residuals.append(({name: list(r) for name, r in limited.items()}, unlimited))  # the UNet pops the lists
        return limited

    monkeypatch.setattr(pack.controlnet.IdentityNetControl, "get_control", control_and_unlimited)
    return residuals


def check_residuals_in_region(limited: dict, unlimited: dict, box_mask: np.ndarray) -> None:
    """IdentityNet's residuals with a region: at every layer, zero outside the box and as without the region inside."""
    checked = 0
    for name in limited:
        for index, (values, plain) in enumerate(zip(limited[name], unlimited[name], strict=True)):
            if values is not None:
                check_region(values, plain, box_mask, (name, index))
                checked += 1
    assert checked >= 10, f"only {checked} residuals to check"


class IdentityCall(NamedTuple):
    """One identity-term computation: the layer, the term, the layer call (its batch layout, sigmas and sizes), which
    identity it was, and (when asked for) the same term computed without the region."""

    key: tuple
    term: torch.Tensor | None
    call: object
    identity: object
    unlimited: torch.Tensor | None = None


def record_identity_calls(monkeypatch, pack, unlimited: bool = False) -> list[IdentityCall]:
    """Wrap IdentityAttention.term_by_head (every layer call's term goes through it) with a recorder; returns the
    list of calls it records, each term as [B, tokens, heads*dim] (None where the gate was closed), with
    `unlimited` also the term without the identity's region."""
    calls = []
    original = pack.attention.IdentityAttention.term_by_head

    def flat(term, q):
        return None if term is None else term.transpose(1, 2).reshape(q.shape).clone()

    def recording(self, key, q, heads, call):
        term = original(self, key, q, heads, call)
        plain = original(dataclasses.replace(self, region=None), key, q, heads, call) if unlimited else None
        calls.append(IdentityCall(key, flat(term, q), call, self, flat(plain, q)))
        return term

    monkeypatch.setattr(pack.attention.IdentityAttention, "term_by_head", recording)
    return calls

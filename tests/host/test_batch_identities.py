"""One batch, many people: with 'per picture' identities, picture i of a batch gets identity i in every layer's
identity attention and as IdentityNet's context, on the cond and the uncond side, however ComfyUI lays the batch out:
cond and uncond in one model call, in separate calls (what ComfyUI does when memory is short), or the batch run in
context windows (ComfyUI's own 'Context Windows (Manual)' over the batch dimension). Checked against N separate
single-picture runs with the same latents, noise and sigmas."""

import inspect
from dataclasses import dataclass

import pytest
import torch

from helpers.add_protocol import apply_other_pack
from helpers.host_runs import make_faces, record_identity_calls
from helpers.tiny_models import tiny_controlnet
from scripts.harness.conditioning import sdxl_conditioning

pytestmark = pytest.mark.host

LATENT_SIDE = 16  # 128×128 pixels
LAYOUTS = ("cond and uncond in one call", "cond and uncond in separate calls", "two context windows")


def hints(pictures: int) -> torch.Tensor:
    """A keypoint-image stand-in per picture (IMAGE, 128×128): each picture its own pose."""
    return torch.rand(pictures, 128, 128, 3, generator=torch.Generator().manual_seed(9))


def schedule(pictures: int) -> torch.Tensor:
    """The sigmas a batch of `pictures` is sampled over: from 10 to 0, as many as there are pictures (at least two).

    ComfyUI 0.3.75's context windows compare the step's timestep of every picture with the schedule element by
    element (0.33 takes the first picture's), which works only when the batch has as many pictures as the schedule
    has sigmas; with one sigma per picture the same test holds on both."""
    return torch.linspace(10.0, 0.0, max(2, pictures))


def sample(model, positive, negative, noise: torch.Tensor, sigmas: torch.Tensor | None = None) -> torch.Tensor:
    """Euler with CFG 5 over `sigmas` (by default one step from 10 to 0) on this noise (one row per picture)."""
    import comfy.sample
    import comfy.samplers

    return comfy.sample.sample_custom(
        model,
        noise,
        5.0,
        comfy.samplers.sampler_object("euler"),
        schedule(1) if sigmas is None else sigmas,
        positive,
        negative,
        torch.zeros_like(noise),
        disable_pbar=True,
        seed=0,
    )


def with_context_windows(comfy_host, model, length: int):
    """The model run by ComfyUI's own 'Context Windows (Manual)' node over the batch dimension, `length` pictures per
    window, windows side by side (no overlap)."""
    node = comfy_host.node("ContextWindowsManual")
    settings = {
        "context_length": length,
        "context_overlap": 0,
        "context_schedule": "standard_static",
        "context_stride": 1,
        "closed_loop": False,
        "fuse_method": "pyramid",
        "dim": 0,
        "freenoise": False,
    }
    accepted = inspect.signature(node.execute).parameters
    return node.execute(model, **{k: v for k, v in settings.items() if k in accepted}).result[0]


def short_of_memory(monkeypatch) -> None:
    """Make ComfyUI see no free memory, so that it runs each of cond and uncond in its own model call."""
    import comfy.model_management
    import comfy.model_patcher

    def none_free(dev=None, torch_free_too=False):
        return (0, 0) if torch_free_too else 0

    monkeypatch.setattr(comfy.model_management, "get_free_memory", none_free)
    if hasattr(comfy.model_patcher.ModelPatcher, "get_free_memory"):  # where 0.33 asks the model's patcher
        monkeypatch.setattr(comfy.model_patcher.ModelPatcher, "get_free_memory", lambda self, device: 0)


def record_residuals(monkeypatch, pack) -> list:
    """Every IdentityNet call's (cond_or_uncond, pictures of the batch, sigma, residuals by block)."""
    calls = []
    original = pack.controlnet.IdentityNetControl.get_control

    def recording(self, x_noisy, t, cond, batched_number, transformer_options):
        control = original(self, x_noisy, t, cond, batched_number, transformer_options)
        pictures = pack.attn2_protocol.batch_pictures(transformer_options)
        residuals = {name: [r.clone() for r in rs if r is not None] for name, rs in control.items()}
        sigma = float(transformer_options["sigmas"][0])
        calls.append((tuple(transformer_options["cond_or_uncond"]), pictures, sigma, residuals))
        return control

    monkeypatch.setattr(pack.controlnet.IdentityNetControl, "get_control", recording)
    return calls


def by_picture(rows: torch.Tensor, chunks, pictures, name) -> dict:
    """The rows of one model call's values keyed by (picture of the batch, what and at which sigma, cond or uncond)."""
    images = rows.shape[0] // len(chunks)
    pictures = range(images) if pictures is None else pictures
    return {(pictures[r], name, chunk): rows[h * images + r] for h, chunk in enumerate(chunks) for r in range(images)}


@dataclass(frozen=True)
class Extras:
    """What else an apply may carry, per picture where it is a batch: a weight type, masks (one per picture), and
    another pack's attention added to our patch through the IP-Adapter-style `add`."""

    weight_type: str = "linear"
    masks: torch.Tensor | None = None
    other_pack: bool = False

    def of(self, picture: int) -> "Extras":
        """The extras of one picture run alone."""
        masks = None if self.masks is None else self.masks[picture : picture + 1]
        return Extras(self.weight_type, masks, self.other_pack)


@dataclass(frozen=True)
class Setting:
    """The models of a run and where ComfyUI's host is."""

    comfy_host: object
    pack: object
    adapter: object
    model: object
    identitynet: object


@pytest.fixture(scope="module")
def setting(comfy_host, pack, adapter, model) -> Setting:
    """The host, the pack, a tiny adapter, model and IdentityNet-topology ControlNet (copied per apply)."""
    return Setting(comfy_host, pack, adapter, model, tiny_controlnet(seed=4))


@pytest.fixture(scope="module")
def single_runs(setting):
    """run_alone(pictures): each of `pictures` pictures generated alone with its own identity (made once a module)."""
    made = {}

    def run_alone(pictures: int) -> list:
        if pictures not in made:
            with pytest.MonkeyPatch.context() as patch:
                made[pictures] = alone(setting, patch, pictures)
        return made[pictures]

    return run_alone


def inputs(pack, pictures: int) -> tuple:
    """The face embeddings (one person per picture) and the noise of a batch."""
    embeddings = make_faces(pack, seeds=tuple(range(1, pictures + 1))).embeddings()
    return embeddings, torch.randn(pictures, 4, LATENT_SIDE, LATENT_SIDE, generator=torch.Generator().manual_seed(3))


def run(at: Setting, monkeypatch, tokens, hint, noise, sigmas, layout=LAYOUTS[0], extras=Extras()) -> tuple:
    """Apply both halves of InstantID with these tokens and keypoint images, sample over `sigmas` in `layout`; the
    identity terms and IdentityNet residuals keyed by (picture, layer or block, cond or uncond, step), and the
    sample."""
    pack = at.pack
    with monkeypatch.context() as patch:
        patched = pack.unet_patching.apply_identity_attention(
            at.model, at.adapter, tokens, 0.8, 0.0, 1.0, extras.weight_type, extras.masks
        )
        if extras.other_pack:
            patched = apply_other_pack(patched, list(pack.unet_patching.attn2_modules(at.model)), tag=7, weight=0.5)
        conditioning = (sdxl_conditioning(10), sdxl_conditioning(11))
        positive, negative = pack.controlnet.apply_identitynet(
            *conditioning, at.identitynet, tokens, hint, 0.9, 0.0, 1.0, extras.masks
        )
        if layout == LAYOUTS[1]:
            short_of_memory(patch)
        if layout == LAYOUTS[2]:
            patched = with_context_windows(at.comfy_host, patched, noise.shape[0] // 2)
        terms, residuals = record_identity_calls(patch, pack), record_residuals(patch, pack)
        out = sample(patched, positive, negative, noise, sigmas)
    values = {"layouts": {(call.chunks, call.pictures) for _, _, call, *_ in terms}}
    for key, term, call, *_ in terms:
        values.update(by_picture(term, call.chunks, call.pictures, ("term", key, float(call.sigmas[0]))))
    for chunks, pictures, sigma, control in residuals:
        for block, rs in control.items():
            for i, r in enumerate(rs):
                values.update(by_picture(r, chunks, pictures, ("residual", block, i, sigma)))
    return values, out


def pictures_of(values: dict) -> list:
    """The per-picture values of a run (its batch layouts left out)."""
    return [(key, v) for key, v in values.items() if key != "layouts"]


def assert_laid_out(values: dict, layout: str, pictures: int) -> None:
    """The model calls of a run were laid out as `layout` says: cond and uncond together, apart, or in windows."""
    seen = values["layouts"]
    if layout == LAYOUTS[0]:
        assert seen == {((0, 1), None)} or seen == {((1, 0), None)}, seen
    elif layout == LAYOUTS[1]:
        assert {chunks for chunks, _ in seen} == {(0,), (1,)} and {p for _, p in seen} == {None}, seen
    else:
        windows = {p for _, p in seen}  # newer ComfyUI puts the picture before a window first in it (its anchor)
        assert len(windows) == 2 and {i for w in windows for i in w} == set(range(pictures)), seen


def mismatches(batch: dict, singles: list[dict]) -> list:
    """Where the batch's values differ from the single-picture runs' (picture i against run i, beyond float
    rounding); every (picture, layer or block, side) must be present in both."""
    wanted = {(i, what, side): v for i, single in enumerate(singles) for (_, what, side), v in pictures_of(single)}
    batch = dict(pictures_of(batch))
    assert set(batch) == set(wanted), "the batch and the single runs computed different layers or sides"
    return [key for key, v in batch.items() if (v - wanted[key]).abs().max() > 1e-5 * wanted[key].abs().max() + 1e-7]


def batch_run(at: Setting, monkeypatch, pictures: int, layout: str, extras=Extras()) -> tuple:
    """The batch of `pictures` pictures run with one identity per picture, in `layout`."""
    embeddings, noise = inputs(at.pack, pictures)
    tokens = at.adapter.tokens(embeddings, "per picture")
    return run(at, monkeypatch, tokens, hints(pictures), noise, schedule(pictures), layout, extras)


def alone(at: Setting, monkeypatch, pictures: int, extras=Extras()) -> list:
    """Each of `pictures` pictures generated alone with its own identity and extras."""
    embeddings, noise = inputs(at.pack, pictures)
    tokens = [at.adapter.tokens(embeddings[i : i + 1]) for i in range(pictures)]
    return [
        run(
            at,
            monkeypatch,
            tokens[i],
            hints(pictures)[i : i + 1],
            noise[i : i + 1],
            schedule(pictures),
            extras=extras.of(i),
        )
        for i in range(pictures)
    ]


def assert_same_pictures(out: torch.Tensor, singles: list) -> None:
    """The batch's sample is the single runs' side by side (CFG 5 amplifies float rounding: a tolerance to scale)."""
    together = torch.cat([o for _, o in singles])
    torch.testing.assert_close(out, together, rtol=0, atol=1e-4 * float(together.abs().max()))


@pytest.mark.parametrize(
    "pictures, layout",
    [(n, layout) for layout in LAYOUTS for n in (1, 2, 4) if n > 1 or layout != LAYOUTS[2]],  # one picture: no windows
)
def test_each_picture_gets_its_own_identity_as_if_generated_alone(setting, single_runs, monkeypatch, pictures, layout):
    values, out = batch_run(setting, monkeypatch, pictures, layout)
    singles = single_runs(pictures)

    assert_laid_out(values, layout, pictures)
    assert mismatches(values, [single for single, _ in singles]) == []
    kinds = [what[0] for (_, what, _), _ in pictures_of(values)]
    assert kinds.count("term") >= 2 * 70 * pictures and kinds.count("residual") >= 2 * 10 * pictures  # both recorded
    assert_same_pictures(out, singles)


@pytest.mark.parametrize("layout", [LAYOUTS[0], LAYOUTS[2]])
def test_masks_weight_types_and_another_packs_contribution_follow_each_picture(setting, monkeypatch, layout):
    masks = torch.zeros(2, 128, 128)
    masks[0, :, :80], masks[1, 40:, 30:] = 1.0, 0.7  # each picture its own region
    extras = Extras("ease in", masks, other_pack=True)

    values, out = batch_run(setting, monkeypatch, 2, layout, extras)
    singles = alone(setting, monkeypatch, 2, extras)

    assert mismatches(values, [single for single, _ in singles]) == []
    assert_same_pictures(out, singles)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_swapping_two_identities_inside_the_patch_is_caught(setting, single_runs, monkeypatch, layout):
    original = setting.pack.attention.identity_rows

    def swapped(chunks, images, identities, *args):  # pictures 0 and 1 trade identities, in the attention only
        rows = original(chunks, images, identities, *args)
        return rows if identities == 1 else tuple({0: 1, 1: 0}.get(row, row) for row in rows)

    singles = single_runs(2)
    monkeypatch.setattr(setting.pack.attention, "identity_rows", swapped)
    values, _ = batch_run(setting, monkeypatch, 2, layout)

    wrong = mismatches(values, [single for single, _ in singles])
    assert {picture for picture, what, side in wrong if what[0] == "term" and side == 0} == {0, 1}


def test_a_batch_of_one_per_picture_is_bit_for_bit_one_identity(setting, monkeypatch):
    embeddings, noise = inputs(setting.pack, 1)
    runs = [
        run(setting, monkeypatch, setting.adapter.tokens(embeddings, combine), hints(1), noise, schedule(1))[1]
        for combine in ("per picture", "average")
    ]

    assert torch.equal(*runs)


def test_identities_for_a_batch_of_another_size_are_refused_naming_both_numbers(pack, adapter, model):
    tokens = adapter.tokens(make_faces(pack, seeds=(1, 2, 3)).embeddings(), "per picture")
    patched = pack.unet_patching.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0, node="My node")
    noise = torch.randn(2, 4, LATENT_SIDE, LATENT_SIDE)

    with pytest.raises(pack.errors.InstantIDError) as raised:
        sample(patched, sdxl_conditioning(10), sdxl_conditioning(11), noise)

    assert "My node has 3 identities" in str(raised.value) and "has 2 pictures" in str(raised.value)


def test_the_kv_of_n_identities_grow_by_one_identitys_conditional_row_each(pack, adapter, model):
    def kv_bytes(pictures: int) -> int:
        tokens = adapter.tokens(make_faces(pack, seeds=tuple(range(1, pictures + 1))).embeddings(), "per picture")
        patched = pack.unet_patching.apply_identity_attention(model, adapter, tokens, 0.8, 0.0, 1.0)
        (kv,) = {p.shared.kv for p in patched.model_options["transformer_options"]["patches_replace"]["attn2"].values()}
        return sum(t.numel() * t.element_size() for t in kv.parameters())

    one, four, sixteen = kv_bytes(1), kv_bytes(4), kv_bytes(16)

    assert four == one // 2 * 5 and sixteen == one // 2 * 17  # N conditional rows and the shared unconditional one

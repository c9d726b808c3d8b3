"""Apply InstantID (People) on real faces of the six-person photo (real face models, tiny UNet and IdentityNet): each
person's identity attention and IdentityNet act in that person's region and nowhere in another person's."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.host_runs import cells, denoise, record_identity_calls
from helpers.tiny_models import tiny_controlnet, tiny_sdxl
from scripts.harness.conditioning import sdxl_conditioning
from scripts.harness.real_faces import real_faces

pytestmark = [pytest.mark.host, pytest.mark.realface]

SIZE = (640, 448)
"""The generated picture: about the six-person photo's shape (1280×886); layers of 80×56, 40×28 and 20×14."""


@pytest.fixture(scope="module")
def group(comfy_host):
    """The real face models (loaded by the pack as ComfyUI imported it) and the six-person photo."""
    real = real_faces(fetch=False)
    models = comfy_host.pack_module("instantid_core.face_analysis").FaceModels.load(real.pack_dir, "CPU", 640)
    return models, np.array(Image.open(real.photos["t1.jpg"]).convert("RGB"))


@pytest.fixture(scope="module")
def people_module(comfy_host):
    """The pack's people module as ComfyUI imported it."""
    return comfy_host.pack_module("instantid_core.people")


def person(group, index: int):
    """INSTANTID_FACE of face `index` (reading order) of the six-person photo."""
    models, picture = group
    return models.analyze(picture[None], "index", index)


@dataclasses.dataclass
class PeopleRun:
    """What one denoising step of Apply InstantID (People) did, per person (in the node's order)."""

    masks: np.ndarray  # the node's regions output, (N, H, W) at SIZE
    terms: list  # per person: [(layer key, term [rows, C, h, w], the term without a region)]
    residuals: list  # per person: [(IdentityNet output name, residual [rows, C, h, w])]


def owner(masks: np.ndarray, region) -> int:
    """Which person a region drawn at SIZE belongs to."""
    drawn = region.faces(SIZE)[0]
    (person,) = [k for k, mask in enumerate(masks) if np.array_equal(mask, drawn)]
    return person


def run_people(comfy_host, pack, adapter, monkeypatch, people, layout, pose=None, pictures=1) -> PeopleRun:
    """Apply InstantID (People) to tiny models at SIZE and denoise one step of a batch of `pictures`, recording every
    identity term and every person's own IdentityNet residuals."""
    graph = (adapter, tiny_controlnet(seed=4), tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))
    settings = (layout, *SIZE, 0.35, 0.8, 0.3, 0.8, 0.8, 0.0, 1.0)
    optional = dict(zip(("person_3", "person_4"), people[2:], strict=False))
    node = comfy_host.node("InstantIDApplyPeople")
    model, positive, negative, _, masks = node.execute(*graph, *people[:2], *settings, **optional, pose=pose).result
    masks = masks.numpy()
    run = PeopleRun(masks, [[] for _ in people], [[] for _ in people])

    calls = record_identity_calls(monkeypatch, pack, unlimited=True)
    original_control = pack.controlnet.IdentityNetControl.get_control

    def own_residuals(self, x_noisy, t, cond, batched_number, transformer_options):
        previous, self.previous_controlnet = self.previous_controlnet, None
        try:
            own = original_control(self, x_noisy, t, cond, batched_number, transformer_options)
        finally:
            self.previous_controlnet = previous
        for name, residuals in own.items():
            run.residuals[owner(masks, self.region)] += [(name, r) for r in residuals if r is not None]
        return original_control(self, x_noisy, t, cond, batched_number, transformer_options)

    monkeypatch.setattr(pack.controlnet.IdentityNetControl, "get_control", own_residuals)
    denoise(model, positive, negative, latent=(pictures, 4, SIZE[1] // 8, SIZE[0] // 8))
    assert len(calls) == 70 * len(people)
    for key, term, call, identity, unlimited in calls:
        grid = (term.shape[0], *call.layer_hw, -1)  # [rows, h*w, C] as [rows, C, h, w]
        run.terms[owner(masks, identity.region)].append(
            (key, term.reshape(grid).movedim(-1, 1), unlimited.reshape(grid).movedim(-1, 1))
        )
    return run


def assert_only_in_own_region(run: PeopleRun, person: int, values: torch.Tensor, what) -> None:
    """[rows, C, h, w] values of one person: present in the person's core, zero wherever its region is 0, which
    includes every other person's core."""
    own_core, outside = (torch.from_numpy(c) for c in cells(run.masks[person], *values.shape[-2:]))
    assert own_core.any(), what  # the layer resolves the region
    assert torch.count_nonzero(values[..., own_core]) > 0, what
    assert torch.count_nonzero(values[..., outside]) == 0, what
    for other, mask in enumerate(run.masks):
        if other != person:
            assert not (cells(mask, *values.shape[-2:])[0] & ~outside.numpy()).any(), what


def check_people(run: PeopleRun) -> None:
    """Every person's identity terms (all 70 layers) and IdentityNet residuals only in that person's region; the
    identity term inside the person's core is exactly the one without a region."""
    for person, (terms, residuals) in enumerate(zip(run.terms, run.residuals, strict=True)):
        assert len(terms) == 70 and len(residuals) >= 10
        for key, term, unlimited in terms:
            assert_only_in_own_region(run, person, term, (person, key))
            core = torch.from_numpy(cells(run.masks[person], *term.shape[-2:])[0])
            assert torch.equal(term[..., core], unlimited[..., core]), (person, key)
        for name, residual in residuals:
            assert_only_in_own_region(run, person, residual, (person, name))


@pytest.mark.parametrize("pictures", [1, 2])
def test_two_people_of_the_group_photo_each_act_only_in_their_own_region(
    comfy_host, pack, adapter, group, monkeypatch, pictures
):
    people = [person(group, 1), person(group, 2)]

    run = run_people(comfy_host, pack, adapter, monkeypatch, people, "as in their photos", pictures=pictures)

    check_people(run)
    cores = run.masks == 1
    assert cores[0].any() and cores[1].any() and not (cores[0] & cores[1]).any()
    assert run.masks[0][cores[1]].max() == 0 and run.masks[1][cores[0]].max() == 0


def test_four_people_left_to_right_each_act_only_in_their_own_column(comfy_host, pack, adapter, group, monkeypatch):
    people = [person(group, index) for index in (0, 2, 3, 5)]

    run = run_people(comfy_host, pack, adapter, monkeypatch, people, "left to right")

    check_people(run)
    for column, mask in enumerate(run.masks):
        xs = np.flatnonzero(mask.max(axis=0) == 1)
        assert SIZE[0] / 4 * column <= xs.min() and xs.max() < SIZE[0] / 4 * (column + 1)


def test_the_six_peoples_regions_do_not_overlap_at_the_default_margin(people_module, group):
    models, picture = group
    faces = models.analyze(picture[None])
    regions = people_module.PeopleRegions(people_module.person_layouts([faces] * 6, "pose photo", pose=faces))
    size = (picture.shape[1], picture.shape[0])

    regions.check(size)
    masks = regions.masks(size)
    assert ((masks == 1).sum(axis=0) <= 1).all()
    for person, mask in enumerate(masks):  # each core holds that person's face box's centre
        x1, y1, x2, y2 = faces.results[0].faces[person].bbox
        assert mask[int((y1 + y2) / 2), int((x1 + x2) / 2)] == 1


def test_the_pose_photo_layout_puts_person_k_on_the_group_photos_face_k(comfy_host, adapter, group):
    models, picture = group
    faces = models.analyze(picture[None])
    graph = (adapter, tiny_controlnet(seed=4), tiny_sdxl(), sdxl_conditioning(1), sdxl_conditioning(2))
    people = [person(group, 5), person(group, 0), person(group, 3)]  # any identities, placed on faces 0, 1, 2
    settings = ("pose photo", picture.shape[1], picture.shape[0], 0.35, 0.8, 0.3, 0.8, 0.8, 0.0, 1.0)

    *_, keypoints, masks = (
        comfy_host.node("InstantIDApplyPeople").execute(*graph, *people[:2], *settings, person_3=people[2], pose=faces)
    ).result

    assert masks.shape == (3, picture.shape[0], picture.shape[1])
    for k in range(3):
        x, y = faces.results[0].faces[k].kps[2]  # the nose
        assert masks[k, int(y), int(x)] == 1
        assert tuple(keypoints[0, int(y), int(x)].mul(255).round().int().tolist()) == (0, 0, 255)

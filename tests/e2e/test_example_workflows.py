"""The example workflows and ComfyUI_InstantID's published ones run end to end through a real ComfyUI server on the
full-size stand-in models (the compat workflows' file names are linked to the stand-ins by make_standins.py), lowered
as tests/e2e/conftest.py says, each run once and shared.

These runs are also the e2e lane's proof that ComfyUI's own loaders read the full-size files: every workflow loads the
stand-in checkpoint with CheckpointLoaderSimple (under the name it names, a link to sdxl_standin.safetensors) and the
stand-in IdentityNet with ControlNetLoader, and its picture is checked here.
"""

import pytest

from scripts.harness.paths import COMPAT, WORKFLOWS
from scripts.standins.images import input_image

pytestmark = pytest.mark.e2e

PHOTO_SIZES = {"instantid_face_swap": (768, 1024)}
"""Workflows whose result is a photo with a face pasted in, not a generated picture: the photo's height and width."""


def test_the_compat_workflows_are_there():
    assert len(list(COMPAT.glob("*.json"))) == 2, f"expected the two ComfyUI_InstantID workflows in {COMPAT}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_every_node_and_produces_a_picture_that_is_not_blank(runner, path):
    run = runner.workflow(path.stem)

    assert runner.nodes_that_did_not_run(run) == set()
    expected = PHOTO_SIZES.get(path.stem, (runner.size, runner.size))
    results = run.results()
    assert results and all(picture.shape[:2] == expected for picture in results), [p.shape for p in results]
    assert all(picture.std() > 1.0 for picture in results)  # not one flat colour


def test_the_face_swap_replaces_the_largest_face_and_leaves_the_rest_of_the_photo_bit_identical(runner):
    (swapped,) = runner.workflow("instantid_face_swap").results()

    changed = (swapped != input_image("instantid_two_people.png")).any(axis=-1)

    assert changed[300:420, 670:790].mean() > 0.5  # the largest face: 240 px round (730, 360)
    assert not changed[:, :450].any()  # the other person, and everything left of them


def test_the_angle_sheet_generates_one_picture_per_view_in_one_batch(runner):
    pictures = runner.workflow("instantid_angle_sheet").results()

    assert len(pictures) == 7  # its seven views: the sheet's count is the latent's batch size
    assert len({picture.tobytes() for picture in pictures}) == 7

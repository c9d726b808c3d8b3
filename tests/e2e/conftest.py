"""The e2e lane's shared runs: every shipped and compat workflow (scripts.harness.paths.WORKFLOWS), lowered for a
CPU, run once on the session's server when a test first asks for it, and kept (prompt, history entry, decoded
pictures) for every test that reads it.

Lowered: every empty latent 128×128 with at most 2 pictures a batch, every face crop 128 px and every KSampler at one
step (scripts.harness.workflow_api.lowered_prompt); nothing else in a workflow changes. Every node of every workflow
runs at this size (tests/e2e/test_example_workflows.py checks it).
"""

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.harness.paths import COMPAT, WORKFLOWS
from scripts.harness.workflow_api import lowered_prompt

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptRun:
    """One finished prompt: what was queued, its history entry, and every picture it saved or previewed (node id ->
    H×W×3 uint8 arrays)."""

    prompt: dict
    entry: dict
    pictures: dict[str, list[np.ndarray]]

    def picture(self, node_id: str) -> np.ndarray:
        """The one picture node `node_id` saved or previewed."""
        (picture,) = self.pictures[node_id]
        return picture

    def results(self) -> list[np.ndarray]:
        """The prompt's result: the pictures its SaveImage nodes saved, or its PreviewImage nodes' when it saves none
        (the compat workflows)."""
        for kind in ("SaveImage", "PreviewImage"):
            nodes = [node_id for node_id, node in self.prompt.items() if node["class_type"] == kind]
            if nodes:
                return [picture for node_id in nodes for picture in self.pictures.get(node_id, [])]
        return []


class PromptRunner:
    """Runs prompts on the session's server; each shipped workflow (lowered) at most once a session."""

    size, steps, max_batch = 128, 1, 2  # the lowering the module docstring describes

    def __init__(self, server):
        self.server = server
        self.object_info = server.get_json("/object_info")
        self.workflow_runs: dict[str, PromptRun] = {}

    def lowered(self, path: Path) -> dict:
        """The workflow at `path` as the frontend would queue it, lowered to `size`, `steps` and `max_batch`."""
        return lowered_prompt(json.loads(path.read_text()), self.object_info, self.size, self.steps, self.max_batch)

    def run(self, prompt: dict) -> PromptRun:
        """Run a prompt and decode every picture it saved or previewed."""
        entry = self.server.run(prompt)
        pictures = {
            node_id: [
                np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                for png in self.server.output_images(entry, node_id)
            ]
            for node_id in entry["outputs"]
        }
        return PromptRun(prompt, entry, pictures)

    def workflow(self, stem: str) -> PromptRun:
        """The shipped or compat workflow named `stem`, lowered and run on first request, then kept."""
        if stem not in self.workflow_runs:
            (path,) = [path for path in WORKFLOWS if path.stem == stem]
            logger.info("running %s at %d×%d, %d step(s)", stem, self.size, self.size, self.steps)
            self.workflow_runs[stem] = self.run(self.lowered(path))
        return self.workflow_runs[stem]

    def nodes_that_did_not_run(self, run: PromptRun) -> set[str]:
        """The prompt's nodes that gave no result (run, or taken from ComfyUI's cache) to an output: the output nodes
        that reported no output, and every node that none of those that did depends on."""
        reported = {
            node_id
            for node_id, node in run.prompt.items()
            if self.object_info[node["class_type"]]["output_node"] and node_id in run.entry["outputs"]
        }
        reached, todo = set(), list(reported)
        while todo:
            node_id = todo.pop()
            if node_id not in reached:
                reached.add(node_id)
                todo += [
                    v[0] for v in run.prompt[node_id]["inputs"].values() if isinstance(v, list) and v[0] in run.prompt
                ]
        return set(run.prompt) - reached


def runs_a_compat_workflow(item) -> bool:
    """Whether an e2e test is parametrized with one of the compat workflows."""
    path = getattr(item, "callspec", None) and item.callspec.params.get("path")
    return bool(item.get_closest_marker("e2e")) and isinstance(path, Path) and path.parent == COMPAT


def pytest_collection_modifyitems(items):
    """Move the tests of the compat workflows after every other e2e test: they load the checkpoint under another name
    (sdxl/AlbedoBaseXL.safetensors) and ComfyUI's cache keeps only the previous prompt's outputs, so anywhere else they
    cost one more load of the 6.9 GB checkpoint for the prompt after them."""
    compat = [item for item in items if runs_a_compat_workflow(item)]
    rest = [item for item in items if not runs_a_compat_workflow(item)]
    after = 1 + max((i for i, item in enumerate(rest) if item.get_closest_marker("e2e")), default=len(rest) - 1)
    items[:] = rest[:after] + compat + rest[after:]


@pytest.fixture(scope="session")
def runner(comfy_server) -> PromptRunner:
    """The session's server with the lowered workflows run at most once each (PromptRunner)."""
    return PromptRunner(comfy_server)

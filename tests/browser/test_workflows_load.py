"""Every example workflow and both ComfyUI_InstantID workflows load in the real frontend with no missing node types
and no console errors, on the frontend ComfyUI pins and on the newest one it accepts (the `frontend` fixture); a
screenshot of one on each is kept in test-artifacts/."""

import json

import pytest

from helpers.frontends import open_frontend
from scripts.harness.paths import REPO, WORKFLOWS

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def page(frontend, browser):
    """The frontend under test, opened once per frontend."""
    open_frontend(browser, frontend)
    return browser


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_with_every_node_type_known_and_no_console_errors(page, frontend, path):
    workflow = json.loads(path.read_text())
    errors_before = len(page.errors())

    loaded = page.evaluate(f"""(async () => {{
        const workflow = {json.dumps(workflow)};
        await window.app.loadGraphData(workflow);
        const known = new Set(Object.keys(LiteGraph.registered_node_types));
        return {{
            missing: [...new Set(workflow.nodes.map(n => n.type).filter(t => !known.has(t)))],
            nodes: window.app.graph.nodes.length,
            broken: window.app.graph.nodes.filter(n => n.has_errors).map(n => n.type),
        }};
    }})()""")

    assert loaded["missing"] == [] and loaded["broken"] == []
    assert loaded["nodes"] == len(workflow["nodes"])
    assert page.errors()[errors_before:] == []
    if path.stem == "instantid_basic":
        ARTIFACTS.mkdir(exist_ok=True)
        name = (
            "instantid_basic_loaded.png" if frontend.name == "pinned" else f"instantid_basic_loaded_{frontend.name}.png"
        )
        page.screenshot(ARTIFACTS / name)

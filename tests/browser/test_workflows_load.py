"""Every example workflow and both ComfyUI_InstantID workflows load in the real frontend with no missing node types
and no console errors; a screenshot of one is kept in test-artifacts/."""

import json

import pytest

from scripts.harness.paths import REPO, WORKFLOWS

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def frontend(comfy_server, browser):
    """The frontend of the test server, opened once."""
    browser.navigate(comfy_server.url)
    browser.wait_for("window.app && window.app.graph && document.querySelector('canvas') !== null", timeout=120)
    return browser


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_loads_with_every_node_type_known_and_no_console_errors(frontend, path):
    workflow = json.loads(path.read_text())
    errors_before = len(frontend.errors())

    loaded = frontend.evaluate(f"""(async () => {{
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
    assert frontend.errors()[errors_before:] == []
    if path.stem == "instantid_basic":
        ARTIFACTS.mkdir(exist_ok=True)
        frontend.screenshot(ARTIFACTS / "instantid_basic_loaded.png")

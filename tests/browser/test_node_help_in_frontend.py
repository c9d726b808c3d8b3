"""The real frontend fetches this pack's help pages where it looks for them and shows them in its node help panel.

The frontend builds the address from the node's python_module (custom_nodes.<folder>): first
/extensions/<folder>/docs/<node id>/<locale>.md, then /extensions/<folder>/docs/<node id>.md (src/services/
nodeHelpService.ts, the same in 1.32.9, 1.38.3 and 1.49.6). The selection toolbox's info button opens the help of the
selected node (1.32.9 and 1.38.3: the node library sidebar's help page; 1.49.6: the properties panel's Info tab),
rendered from the markdown into `.markdown-content`; a missing page would show a `.fallback-content` table made from
the node's definition instead, with no page title.
"""

import json
import re

import pytest

from helpers.frontends import open_frontend
from scripts.harness.paths import REPO

pytestmark = pytest.mark.browser

DOCS = REPO / "web" / "docs"
NODES = ("InstantIDApply", "ApplyInstantID", "InstantIDFaceSimilarity")
"""An own node, a ComfyUI_InstantID alias and a node with several outputs."""


def title(node_id: str) -> str:
    """The first heading of a node's help page."""
    first = (DOCS / f"{node_id}.md").read_text(encoding="utf-8").splitlines()[0]
    return re.sub(r"^#\s+", "", first).strip()


@pytest.fixture(scope="module")
def page(frontend, browser):
    """The frontend under test (pinned and newest: the `frontend` fixture), opened once per frontend."""
    open_frontend(browser, frontend)
    return browser


@pytest.mark.parametrize("node_id", NODES)
def test_the_frontend_finds_each_page_at_the_address_it_builds_from_python_module(page, node_id):
    errors_before = len(page.errors())

    fetched = page.evaluate(f"""(async () => {{
        const id = {json.dumps(node_id)};
        const module = LiteGraph.registered_node_types[id].nodeData.python_module;
        const parts = module.split('.');
        const folder = parts[0] === 'custom_nodes' ? parts[1].split('@')[0] : null;
        const path = `/extensions/${{folder}}/docs/${{id}}.md`;
        const res = await fetch(window.app.api.fileURL(path));
        return {{module, path, status: res.status, type: res.headers.get('content-type'), text: await res.text()}};
    }})()""")

    assert fetched["module"] == "custom_nodes.comfyui-instantid-suite"
    assert fetched["status"] == 200, fetched["path"]
    assert "text/html" not in (fetched["type"] or "")  # 1.38.3 and 1.49.6 treat an HTML answer as no page
    assert fetched["text"] == (DOCS / f"{node_id}.md").read_text(encoding="utf-8")
    assert page.errors()[errors_before:] == []


OPEN_HELP = """(async () => {
    const graph = window.app.graph;
    graph.clear();
    const node = LiteGraph.createNode(%s);
    graph.add(node);
    window.app.canvas.selectNode(node);
    window.app.canvas.setDirty(true, true);
    for (let i = 0; i < 40; i++) {
        await new Promise(resolve => setTimeout(resolve, 250));
        const info = document.querySelector('[data-testid="info-button"]');
        if (info) { info.click(); return true; }
    }
    return false;
})()"""

SHOWN = """(() => {
    const want = %s;
    const shown = [...document.querySelectorAll('.markdown-content')]
        .find(e => e.querySelector('h1') && e.querySelector('h1').innerText.trim() === want);
    if (!shown) return null;
    return {
        headings: [...shown.querySelectorAll('h2')].map(e => e.innerText.trim()),
        code: [...shown.querySelectorAll('code')].map(e => e.innerText.trim()),
        text: shown.innerText,
    };
})()"""


@pytest.mark.parametrize("node_id", NODES)
def test_the_help_panel_shows_the_page_of_the_selected_node(page, node_id):
    errors_before = len(page.errors())
    heading = title(node_id)

    assert page.evaluate(OPEN_HELP % json.dumps(node_id)), "the selection toolbox's info button did not appear"
    page.wait_for(f"({SHOWN % json.dumps(heading)}) !== null", timeout=30)
    shown = page.evaluate(SHOWN % json.dumps(heading))
    node_def = page.evaluate(f"LiteGraph.registered_node_types[{json.dumps(node_id)}].nodeData")

    names = [*node_def["input"]["required"], *node_def["input"].get("optional", {}), *node_def["output_name"]]
    assert {"Inputs", "Outputs", "Typical wiring"} <= set(shown["headings"])
    assert [name for name in names if name not in shown["code"]] == []
    assert "##" not in shown["text"]  # rendered, not shown as raw markdown
    assert page.errors()[errors_before:] == []

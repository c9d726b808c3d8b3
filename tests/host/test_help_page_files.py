"""Every node the pack registers has a help page where the ComfyUI frontend looks for it, naming each of its inputs
and outputs, and every output has a tooltip.

The frontend (comfyui-frontend-package 1.32.9 and 1.49.6, src/services/nodeHelpService.ts) fetches a custom node's
help from /extensions/<folder>/docs/<node id>/<locale>.md, then /extensions/<folder>/docs/<node id>.md, where <folder>
is the second part of the node's python_module (custom_nodes.<folder>, any @version cut off). ComfyUI serves the pack's
WEB_DIRECTORY at /extensions/<folder>/, so the pages live in web/docs/<node id>.md (one page for every locale).
"""

import re
from pathlib import Path

import pytest

from scripts.harness.paths import PACK_LINK_NAME, REPO

pytestmark = pytest.mark.host

DOCS = REPO / "web" / "docs"
SECTIONS = ("## Inputs", "## Outputs", "## Typical wiring")


def section(page: str, heading: str) -> str:
    """The text of a `## ` section of a markdown page, up to the next `## ` heading ('' when it is missing)."""
    match = re.search(rf"^{re.escape(heading)}\s*$(.*?)(?=^## |\Z)", page, flags=re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def input_names(node: type) -> list[str]:
    """The names of a node's inputs (required and optional), as saved workflows and the frontend name them."""
    return [spec.id for spec in node.define_schema().inputs]


def output_names(node: type) -> list[str]:
    """The names of a node's outputs as the frontend shows them (ComfyUI's output_name: display name, else type)."""
    return [spec.display_name or spec.io_type for spec in node.define_schema().outputs]


def test_the_pack_serves_web_docs_at_the_folder_the_frontend_derives_from_python_module(comfy_host):
    import nodes

    folders = {node.RELATIVE_PYTHON_MODULE.split(".")[1].split("@")[0] for node in comfy_host.pack_nodes.values()}

    assert folders == {PACK_LINK_NAME}
    assert {node.RELATIVE_PYTHON_MODULE.split(".")[0] for node in comfy_host.pack_nodes.values()} == {"custom_nodes"}
    assert Path(nodes.EXTENSION_WEB_DIRS[PACK_LINK_NAME]).resolve() == (REPO / "web").resolve()


def test_every_registered_node_has_a_help_page(comfy_host):
    missing = sorted(node_id for node_id in comfy_host.pack_nodes if not (DOCS / f"{node_id}.md").is_file())

    assert missing == [], f"nodes without a help page in {DOCS}: {missing}"


def test_no_help_page_belongs_to_a_node_that_is_not_registered(comfy_host):
    pages = {path.stem for path in DOCS.glob("*.md")}
    pages |= {path.parent.name for path in DOCS.glob("*/*.md")}  # per-locale pages: docs/<node id>/<locale>.md

    assert sorted(pages - set(comfy_host.pack_nodes)) == []


def test_each_help_page_has_a_title_and_names_every_input_and_output_in_its_section(comfy_host):
    problems = {}
    for node_id, node in sorted(comfy_host.pack_nodes.items()):
        path = DOCS / f"{node_id}.md"
        if not path.is_file():
            continue  # reported by test_every_registered_node_has_a_help_page
        page = path.read_text(encoding="utf-8")
        found = []
        if not page.startswith("# "):
            found.append("no '# ' title on the first line")
        found += [f"no '{heading}' section" for heading in SECTIONS if not section(page, heading)]
        inputs, outputs = section(page, "## Inputs"), section(page, "## Outputs")
        found += [f"input `{name}` not in ## Inputs" for name in input_names(node) if f"`{name}`" not in inputs]
        found += [f"output `{name}` not in ## Outputs" for name in output_names(node) if f"`{name}`" not in outputs]
        if found:
            problems[node_id] = found

    assert problems == {}


def test_every_output_of_every_node_has_a_tooltip(comfy_host):
    untipped = {
        node_id: [spec.display_name or spec.io_type for spec in node.define_schema().outputs if not spec.tooltip]
        for node_id, node in sorted(comfy_host.pack_nodes.items())
    }

    assert {node_id: names for node_id, names in untipped.items() if names} == {}

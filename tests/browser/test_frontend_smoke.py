"""The real ComfyUI frontend (served by the test server) opens in headless Chromium with this pack loaded, cleanly."""

import pytest

pytestmark = pytest.mark.browser


def test_frontend_opens_with_this_pack_and_no_console_errors(comfy_server, browser):
    browser.navigate(comfy_server.url)
    browser.wait_for("window.app && window.app.graph && document.querySelector('canvas') !== null", timeout=120)

    node_types = browser.evaluate("Object.keys(LiteGraph.registered_node_types)")

    assert {"KSampler", "InstantIDApply", "InstantIDPatchAttention", "ApplyInstantID"} <= set(node_types)
    assert browser.errors() == []

"""The real ComfyUI frontend (served by the test server) opens in headless Chromium with this pack loaded, cleanly: on
the frontend ComfyUI pins and on the newest one it accepts (the `frontend` fixture)."""

import pytest

from helpers.frontends import open_frontend

pytestmark = pytest.mark.browser


def test_frontend_opens_with_this_pack_and_no_console_errors(frontend, browser):
    open_frontend(browser, frontend)

    node_types = browser.evaluate("Object.keys(LiteGraph.registered_node_types)")

    assert {"KSampler", "InstantIDApply", "InstantIDPatchAttention", "ApplyInstantID"} <= set(node_types)
    assert browser.errors() == []

"""The newest ComfyUI frontend that ComfyUI 0.3.75 accepts (scripts/harness/frontend.py), served with --front-end-root
from its hash-checked cache: the server really serves it, and the app reaches the queue and the history through
routes this ComfyUI has (newer frontends ask for /api/jobs, which 0.3.75 lacks: the reason the version stops there).

That it opens with this pack and no unexpected console errors, lists this pack's node types and loads every example
workflow with no missing node type is tested on both frontends by test_frontend_smoke.py and test_workflows_load.py
(the `frontend` fixture, ids `[pinned]` and `[newest]`)."""

import pytest

from helpers.frontends import Frontend, open_frontend
from scripts.harness.frontend import NEWEST_FRONTEND_SHA256, NEWEST_FRONTEND_VERSION, newest_frontend_root

pytestmark = pytest.mark.browser

LEGACY_API = "window.comfyAPI.api.api"
"""The frontend's own API client (the `api` that extensions import)."""


@pytest.fixture(scope="module")
def newest(newest_frontend_server, browser):
    """The newest frontend, opened once."""
    frontend = Frontend("newest", NEWEST_FRONTEND_VERSION, newest_frontend_server)
    open_frontend(browser, frontend)
    return frontend


def test_the_server_serves_the_cached_frontend_whose_wheel_hash_is_pinned(newest, browser):
    root = newest_frontend_root()
    argv = newest.server.get_json("/system_stats")["system"]["argv"]

    assert argv[argv.index("--front-end-root") + 1] == str(root)
    assert (root.parent / "COMPLETE").read_text().splitlines()[1] == f"sha256={NEWEST_FRONTEND_SHA256}"
    assert browser.frontend_version() == NEWEST_FRONTEND_VERSION
    assert browser.errors() == []


def test_the_queue_and_the_history_come_through_routes_this_comfyui_has(newest, browser):
    """A prompt with no model (an empty image, previewed) queued on the server shows in the frontend's history; the
    queue reads cleanly too. A frontend that needs /api/jobs logs a 404 here and finds no history."""
    prompt_id = newest.server.post_prompt(
        {
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        }
    )
    newest.server.wait(prompt_id, timeout=120)

    seen = browser.evaluate(f"""(async () => {{
        const api = {LEGACY_API};
        const queue = await api.getQueue();
        const history = await api.getHistory();
        return {{
            queue: [Array.isArray(queue.Running), Array.isArray(queue.Pending)],
            history: JSON.stringify(history).includes({prompt_id!r}),
        }};
    }})()""")

    assert seen == {"queue": [True, True], "history": True}
    assert browser.errors() == []

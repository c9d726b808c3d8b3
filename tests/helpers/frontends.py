"""The two ComfyUI frontends the browser tier runs on (the `frontend` fixture in tests/conftest.py) and opening one."""

from dataclasses import dataclass

from scripts.harness.comfy_server import ComfyServer

FRONTENDS = ("pinned", "newest")
"""pinned: the comfyui-frontend-package ComfyUI pins and the venv has installed, served by `comfy_server`; newest: the
newest one ComfyUI accepts (scripts/harness/frontend.py), served by `newest_frontend_server` with --front-end-root."""

APP_READY = "window.app && window.app.graph && document.querySelector('canvas') !== null"
"""True once the frontend's app has set up its graph and its canvas."""


QUIET_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingModelsWarning": False}
"""Frontend settings the tests set first: no templates dialog on a fresh user folder, and no missing-models dialog
for the frontend's default workflow (its download buttons ask huggingface.co for file sizes, which this machine
cannot reach, and log the failure as a console error)."""


@dataclass(frozen=True)
class Frontend:
    """One frontend under test: which one, its version and the ComfyUI server that serves it."""

    name: str  # "pinned" or "newest"
    version: str  # the comfyui-frontend-package version the server serves
    server: ComfyServer

    @property
    def url(self) -> str:
        return self.server.url


def open_frontend(browser, frontend: Frontend, timeout: float = 120) -> None:
    """Open the frontend's server in the browser's page, wait until its app is ready, and check that the page runs
    the frontend version expected (so a test can never pass on the other frontend by mistake)."""
    for setting, value in QUIET_SETTINGS.items():
        frontend.server.post_json(f"/settings/{setting}", value)
    browser.navigate(frontend.url)
    browser.wait_for(APP_READY, timeout=timeout)
    browser.wait_for("window.__COMFYUI_FRONTEND_VERSION__ !== undefined", timeout=timeout)
    served = browser.frontend_version()
    if served != frontend.version:
        raise AssertionError(f"{frontend.url} runs frontend {served}, expected {frontend.name} {frontend.version}")

"""Fixtures shared by the test tiers: stand-in models, the in-process host, the server and the browser."""

from pathlib import Path

import pytest

from helpers.frontends import FRONTENDS
from scripts.harness.paths import STANDINS, TEST_PACK, standin_models

NEWEST_SERVER = pytest.StashKey()
LAST_NEWEST_USER = pytest.StashKey()


@pytest.fixture(scope="session")
def standins() -> Path:
    """The stand-in folder (models/ and input/) written by scripts/make_standins.py."""
    standin_models()
    return STANDINS


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory):
    """The real ComfyUI imported in-process, with this pack loaded."""
    from scripts.harness.comfy_host import start_in_process

    return start_in_process(tmp_path_factory.mktemp("comfy_host_base"))


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory, standins):
    """A real ComfyUI server on 127.0.0.1 with this pack, the test node pack of tiny models (tests/comfy_test_pack) and
    the full-size stand-in models (none loaded until a prompt asks); stopped at the end of the session."""
    from scripts.harness.comfy_server import start_server

    inputs = sorted((standins / "input").iterdir())
    server = start_server(tmp_path_factory.mktemp("comfy_server_base"), standins / "models", inputs, packs=(TEST_PACK,))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def newest_frontend_server(request, tmp_path_factory, standins):
    """A second ComfyUI server like `comfy_server` (the same stand-in models: it loads none until a prompt runs) that
    serves the newest frontend ComfyUI accepts (scripts/harness/frontend.py, cached by `make frontend-newest`) through
    `--front-end-root`. About 0.9 GB: it is stopped right after the last test that uses it (see
    pytest_runtest_teardown below; a test reaches it through its arguments or `frontend[newest]`, not through
    request.getfixturevalue), so the heavy tiers after the browser tier do not carry it."""
    from scripts.harness.comfy_server import DEFAULT_FLAGS, start_server
    from scripts.harness.frontend import newest_frontend_root

    root = newest_frontend_root()
    inputs = sorted((standins / "input").iterdir())
    flags = (*DEFAULT_FLAGS, "--front-end-root", str(root))
    server = start_server(tmp_path_factory.mktemp("newest_frontend_base"), standins / "models", inputs, flags=flags)
    request.config.stash[NEWEST_SERVER] = server
    yield server
    server.stop()


def uses_newest_frontend_server(item) -> bool:
    """Whether a test uses `newest_frontend_server`: as an argument (directly or through its fixtures) or through
    `frontend[newest]`."""
    callspec = getattr(item, "callspec", None)
    return "newest_frontend_server" in getattr(item, "fixturenames", ()) or (
        callspec is not None and callspec.params.get("frontend") == "newest"
    )


def pytest_collection_finish(session):
    """Note the last test (in the final order) that uses `newest_frontend_server`."""
    users = [item for item in session.items if uses_newest_frontend_server(item)]
    session.config.stash[LAST_NEWEST_USER] = users[-1] if users else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop `newest_frontend_server` once the last test that uses it is done (its fixture's own stop then does
    nothing)."""
    server = item.config.stash.get(NEWEST_SERVER, None)
    if server is not None and item is item.config.stash.get(LAST_NEWEST_USER, None):
        server.stop()


@pytest.fixture(scope="session", params=FRONTENDS)
def frontend(request):
    """Each frontend the browser tier runs on, in turn: "pinned" (the version ComfyUI pins, served by `comfy_server`)
    and "newest" (the newest version ComfyUI accepts, served by `newest_frontend_server`). A test that takes it runs
    once for each, with ids `[pinned]` and `[newest]`; its server starts only when a test asks for it.

    It gives a `helpers.frontends.Frontend`: `.name` ("pinned" or "newest"), `.version` (the comfyui-frontend-package
    version served), `.server` (the `ComfyServer`, for /prompt, /history, /view...) and `.url`. Open it with
    `helpers.frontends.open_frontend(browser, frontend)`, which also checks that the page runs `.version`;
    `browser.errors()` then leaves out that version's known errors (KNOWN_FRONTEND_ERRORS in helpers/browser.py).

        from helpers.frontends import open_frontend

        @pytest.fixture(scope="module")
        def page(frontend, browser):
            open_frontend(browser, frontend)
            return browser

        def test_something(page, frontend):
            ...
            assert page.errors() == []

    pytest orders the tests so that each frontend's tests run together (a module-scoped fixture built on it, like `page`
    above, is set up once per frontend and module). Select one with `-k pinned` or `-k newest`.
    """
    from helpers.frontends import Frontend

    if request.param == "pinned":
        from scripts.harness.frontend import pinned_frontend_version

        return Frontend("pinned", pinned_frontend_version(), request.getfixturevalue("comfy_server"))
    from scripts.harness.frontend import NEWEST_FRONTEND_VERSION

    return Frontend("newest", NEWEST_FRONTEND_VERSION, request.getfixturevalue("newest_frontend_server"))


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium with one page."""
    from helpers.browser import Browser, find_chromium

    b = Browser(find_chromium())
    yield b
    b.close()

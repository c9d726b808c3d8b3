"""Fixtures shared by the test tiers: stand-in models, the in-process host, the server and the browser."""

from pathlib import Path

import pytest

from scripts.harness.paths import STANDINS, standin_models


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
    """A real ComfyUI server on 127.0.0.1 with this pack and the stand-in models; stopped at the end of the session."""
    from scripts.harness.comfy_server import start_server

    inputs = sorted((standins / "input").iterdir())
    server = start_server(tmp_path_factory.mktemp("comfy_server_base"), standins / "models", inputs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium with one page."""
    from helpers.browser import Browser, find_chromium

    b = Browser(find_chromium())
    yield b
    b.close()

"""Headless Debian Chromium driven over the DevTools protocol (browser tier)."""

import asyncio
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from scripts.harness.comfy_server import free_port
from scripts.harness.frontend import pinned_frontend_version

# Errors of the frontend itself, by comfyui-frontend-package version, seen with every custom node disabled too, so
# they say nothing about this pack. 1.32.9 (ComfyUI 0.3.75): GraphView's load() stores a setting before its
# definition is registered, and the setting store's onChange then reads `.id` of the missing definition. 1.49.6
# (ComfyUI 0.33.0): its app reads `rootGraph` during start-up, before the graph exists, and logs that it did. 1.38.3
# (the newest frontend ComfyUI 0.3.75 accepts, served with --front-end-root: scripts/harness/frontend.py): it asks for
# /templates/fuse_options.json (the template search's settings), which the workflow templates package 0.3.75 pins
# (comfyui-workflow-templates 0.7.25) does not ship, logs the 404 and keeps its default search settings; and a
# WebAssembly module bundled with its 3D code (vendor-three) is fetched from a data: URL at start-up, which the
# Content-Security-Policy `connect-src 'self'` that ComfyUI sends under --disable-api-nodes (the test servers' flag)
# refuses: the error is gone without that flag.
KNOWN_FRONTEND_ERRORS = {
    "1.32.9": (
        re.compile(
            r"^TypeError: Cannot read properties of undefined \(reading 'id'\)\n\s+at onChange "
            r"\(.*/assets/index-"
        ),
    ),
    "1.38.3": (
        re.compile(r"^Error loading fuse options: AxiosError"),
        re.compile(r'^"TypeError: Failed to fetch\\n\s+at __wbg_init \(.*/assets/vendor-three-'),
    ),
    "1.49.6": (re.compile(r"^ComfyApp graph accessed before initialization$"),),
}

VERSION_GLOBAL = "__COMFYUI_FRONTEND_VERSION__"
"""The global the ComfyUI frontend sets to its own version once its app is mounted (1.32.9 and later do)."""


def known_frontend_errors(version: str | None = None) -> tuple:
    """The known errors of the given frontend version, by default the one this venv has installed (what a server
    without --front-end-root serves). None known for a version: every error counts."""
    return KNOWN_FRONTEND_ERRORS.get(version or pinned_frontend_version(), ())


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1400,900",
)


class CdpError(RuntimeError):
    """An error reported by Chromium for a DevTools command, or a JavaScript exception."""


class Browser:
    """One headless Chromium process with one page, driven synchronously through CDP."""

    def __init__(self, executable: str):
        self._profile = tempfile.mkdtemp(prefix="instantid-chromium-")
        port = free_port()
        self.process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._loop = asyncio.new_event_loop()
        self._next_id = 0
        self.console: list[dict] = []
        self.exceptions: list[dict] = []
        self._page_start = (0, 0)  # where the current page's entries start in console and exceptions
        ws_url = self._page_ws_url(port)
        self._session = self._loop.run_until_complete(self._make_session())
        self._ws = self._loop.run_until_complete(self._session.ws_connect(ws_url, max_msg_size=0))
        self.call("Runtime.enable")
        self.call("Page.enable")

    @staticmethod
    async def _make_session():
        return aiohttp.ClientSession()

    def _page_ws_url(self, port: int, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=5) as r:
                    pages = [t for t in json.loads(r.read()) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("Chromium did not open its DevTools port")

    async def _call(self, method: str, params: dict):
        self._next_id += 1
        my_id = self._next_id
        await self._ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            msg = await self._ws.receive_json()
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise CdpError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._record_event(msg)
            if msg.get("method") == "Page.javascriptDialogOpening":
                await self._accept_dialog()

    async def _accept_dialog(self) -> None:
        """Accept the open dialog, as a user clicking OK (or "Leave" on leaving a page whose workflow was edited):
        until then the page, and every command sent to it, waits. Its reply is read and dropped by a later `_call`."""
        self._next_id += 1
        await self._ws.send_json(
            {"id": self._next_id, "method": "Page.handleJavaScriptDialog", "params": {"accept": True}}
        )

    def _record_event(self, msg: dict) -> None:
        if msg.get("method") == "Runtime.consoleAPICalled":
            p = msg["params"]
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append({"type": p["type"], "text": text})
        elif msg.get("method") == "Runtime.exceptionThrown":
            self.exceptions.append(msg["params"]["exceptionDetails"])
        elif msg.get("method") == "Page.javascriptDialogOpening" and msg["params"]["type"] != "beforeunload":
            p = msg["params"]  # an alert, confirm or prompt of the page counts as an error; leaving a page does not
            self.console.append({"type": "error", "text": f"dialog ({p['type']}): {p['message']}"})

    def call(self, method: str, **params):
        """Send one DevTools command and return its result."""
        return self._loop.run_until_complete(self._call(method, params))

    def evaluate(self, expression: str, await_promise: bool = True):
        """Evaluate JavaScript in the page and return its JSON value; raise CdpError on a JavaScript exception."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=await_promise, returnByValue=True)
        if "exceptionDetails" in result:
            raise CdpError(f"JavaScript error: {json.dumps(result['exceptionDetails'])[:2000]}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        """Poll a JavaScript expression until it is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.25)
        raise TimeoutError(f"timed out waiting for: {expression}")

    def navigate(self, url: str) -> None:
        """Open a URL in the page. What the page logged before is kept in `console` and `exceptions`, but `errors()`
        reports only what the newly opened page logs (its frontend may be another version, with other known errors)."""
        self.evaluate("0")  # what the old page logged until now arrives before this reply
        self._page_start = (len(self.console), len(self.exceptions))
        self.call("Page.navigate", url=url)

    def frontend_version(self) -> str | None:
        """The version of the ComfyUI frontend the open page runs, as the frontend itself reports it once its app is
        mounted (`window.__COMFYUI_FRONTEND_VERSION__`); None before that or on another page."""
        return self.evaluate(f"window.{VERSION_GLOBAL} ?? null")

    def screenshot(self, path: Path, clip: dict | None = None) -> Path:
        """Save a PNG screenshot of the page, or of the `clip` rectangle ({x, y, width, height, scale}) of it."""
        data = self.call("Page.captureScreenshot", format="png", **({"clip": clip} if clip else {}))["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self, settle_ms: int = 500) -> list[str]:
        """Console errors and uncaught exceptions of the page opened by the last `navigate()`, up to now, except the
        known errors of the frontend that page runs (KNOWN_FRONTEND_ERRORS under the version the page reports; the
        installed frontend's before the app has mounted and reported one).

        Events are read only while a command waits for its reply, so this first waits settle_ms in the page: what the
        page logged until then has arrived, in order, before that wait's reply.
        """
        self.evaluate(f"new Promise(resolve => setTimeout(resolve, {int(settle_ms)}))")
        console, exceptions = self.console[self._page_start[0] :], self.exceptions[self._page_start[1] :]
        found = [c["text"] for c in console if c["type"] == "error"]
        found += [json.dumps(e.get("exception", {}).get("description", e.get("text")))[:500] for e in exceptions]
        known = known_frontend_errors(self.frontend_version())
        return [text for text in found if not any(pattern.search(text) for pattern in known)]

    def close(self) -> None:
        """Close the connection and end the Chromium process."""
        self._loop.run_until_complete(self._ws.close())
        self._loop.run_until_complete(self._session.close())
        self._loop.close()
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self._profile, ignore_errors=True)


def find_chromium() -> str:
    """Path of Debian's chromium; `make test` installs it (scripts/ensure_chromium.sh)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError(
            "chromium is not installed: run `make test` (it installs Debian's chromium) or `apt-get install chromium`."
        )
    return path

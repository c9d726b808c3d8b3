"""A real ComfyUI server started on a free 127.0.0.1 port with this pack and the stand-in models (server tier)."""

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .paths import PACK_LINK_NAME, REPO, comfy_dir

log = logging.getLogger(__name__)

# CPU memory: full-size SDXL in fp32 is ~10 GB for the UNet alone; bf16 halves it (docs/development.md, the e2e
# tier). The classic cache frees a node's outputs once no later node needs them; ComfyUI 0.33's default cache frees
# only under memory pressure, and a server running the e2e workflows then nears this machine's 24 GiB. Both hosts
# accept the flag.
DEFAULT_FLAGS = ("--bf16-unet", "--bf16-text-enc", "--cache-classic")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptError(RuntimeError):
    """A prompt that ComfyUI refused or that failed while executing; `body` holds ComfyUI's own error report."""

    def __init__(self, message: str, body: dict):
        super().__init__(message)
        self.body = body


@dataclass
class ComfyServer:
    """A running ComfyUI process this test session started, and a small HTTP client for it."""

    process: subprocess.Popen | None
    url: str
    base_dir: Path
    log_path: Path
    command: tuple[str, ...]  # without --port
    env: dict[str, str]

    def launch(self, timeout: float = 300) -> None:
        """Start the process on a free port (its log appended to log_path) and wait until it answers
        /system_stats."""
        port = free_port()
        cmd = [*self.command, "--port", str(port)]
        log.info("starting ComfyUI: %s", " ".join(cmd))
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                cmd, cwd=str(comfy_dir()), stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ComfyUI exited with code {self.process.returncode} during start-up:\n{self.log_tail()}"
                )
            try:
                self.get_json("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log_tail()}")

    @contextlib.contextmanager
    def stopped(self):
        """Stop the server for a while (to free its memory) and start it again, on a new port, afterwards: the same
        object, so every test holding it follows."""
        self.stop()
        try:
            yield
        finally:
            self.launch()

    def get_json(self, path: str):
        """GET a JSON document from the server."""
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str, **query) -> bytes:
        """GET raw bytes (e.g. /view?filename=...)."""
        with urllib.request.urlopen(self.url + path + "?" + urllib.parse.urlencode(query), timeout=60) as r:
            return r.read()

    def post_json(self, path: str, body):
        """POST a JSON body to the server; its JSON answer (None when the answer is empty)."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = r.read()
        return json.loads(answer) if answer.strip() else None

    def post_prompt(self, prompt: dict) -> str:
        """POST an API-format prompt; return its id, or raise PromptError with ComfyUI's validation errors."""
        req = urllib.request.Request(
            self.url + "/prompt",
            data=json.dumps({"prompt": prompt, "client_id": "tests"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["prompt_id"]
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
            raise PromptError(f"ComfyUI refused the prompt ({e.code}): {json.dumps(body)[:2000]}", body) from None

    def wait(self, prompt_id: str, timeout: float = 900) -> dict:
        """Wait for a prompt to finish; return its history entry, or raise PromptError with the execution error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ComfyUI exited (code {self.process.returncode}) while running a prompt:\n{self.log_tail()}"
                )
            history = self.get_json(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                if entry["status"]["status_str"] != "success":
                    raise PromptError(f"prompt failed: {json.dumps(entry['status']['messages'])[:4000]}", entry)
                return entry
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 900) -> dict:
        """Post a prompt and wait for it; return its history entry."""
        return self.wait(self.post_prompt(prompt), timeout)

    def output_images(self, entry: dict, node_id: str | None = None) -> list[bytes]:
        """The PNG bytes of every image a finished prompt saved or previewed (only node `node_id`'s when given)."""
        images = []
        for node, node_output in entry["outputs"].items():
            if node_id is not None and node != node_id:
                continue
            for img in node_output.get("images", []):
                images.append(
                    self.get_bytes("/view", filename=img["filename"], subfolder=img["subfolder"], type=img["type"])
                )
        return images

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the server's log."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Stop the process this session started (and only that one)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def write_base_dir(base_dir: Path, models_dir: Path, input_files: list[Path], packs: tuple[Path, ...] = ()) -> Path:
    """Lay out a ComfyUI base directory: this pack (and the other node packs `packs` names) in custom_nodes/, inputs
    copied (ComfyUI 0.33 refuses links out of input/), models via extra_model_paths.yaml."""
    (base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
    for name, folder in ((PACK_LINK_NAME, REPO), *((pack.name, pack) for pack in packs)):
        link = base_dir / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(folder, target_is_directory=True)
    (base_dir / "input").mkdir(exist_ok=True)
    for f in input_files:
        target = base_dir / "input" / f.name
        if not target.exists():
            shutil.copyfile(f, target)
    yaml_path = base_dir / "extra_model_paths.yaml"
    # ComfyUI folder name -> subfolder of models_dir. UNETLoader lists "diffusion_models": pointed at checkpoints/, it
    # loads a full checkpoint's UNet (ComfyUI strips the `model.diffusion_model.` prefix), e.g. in fp8.
    folders = {f: f for f in ("checkpoints", "controlnet", "instantid", "insightface", "vae", "loras")} | {
        "diffusion_models": "checkpoints"
    }
    yaml_path.write_text(
        f"instantid_tests:\n  base_path: {models_dir}\n" + "".join(f"  {f}: {sub}/\n" for f, sub in folders.items())
    )
    return yaml_path


def start_server(
    base_dir: Path,
    models_dir: Path,
    input_files: list[Path],
    flags=DEFAULT_FLAGS,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    packs: tuple[Path, ...] = (),
) -> ComfyServer:
    """Start ComfyUI on a free port with this pack (and the node packs `packs` names) and the given models (and `env`
    added to its environment); wait until it answers /system_stats."""
    yaml_path = write_base_dir(base_dir, models_dir, input_files, packs)
    command = (
        sys.executable,
        str(comfy_dir() / "main.py"),
        "--cpu",
        "--listen",
        "127.0.0.1",
        "--base-directory",
        str(base_dir),
        "--extra-model-paths-config",
        str(yaml_path),
        "--database-url",
        "sqlite:///:memory:",
        "--disable-api-nodes",
        "--disable-auto-launch",
        *flags,
    )
    server = ComfyServer(
        process=None,
        url="",
        base_dir=base_dir,
        log_path=base_dir / "comfyui.log",
        command=command,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
    )
    server.launch(timeout)
    return server

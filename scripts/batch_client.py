"""An example of using InstantID through ComfyUI's own HTTP API: send a list of (identity, prompt, seed) jobs to one
or more ComfyUI servers and save the pictures, with each failed job's error code.

    python scripts/batch_client.py --servers http://127.0.0.1:8188 http://127.0.0.1:8189 \\
        --prompt scripts/batch_client_prompt.json --jobs jobs.json --out results/

`--prompt` is an API-format prompt (ComfyUI's "Export (API)") with one 'InstantID Load Face' node, one KSampler and
the positive text node given by `--text-node` (default: the node titled "positive"). `--jobs` is a JSON
list of {"name": ..., "face": "instantid-face:...", "text": ..., "seed": ...}: each job's face value (the 'face_value'
output of 'InstantID Save Face') travels inside the prompt, so no server needs a saved-face file. Jobs are shared out
among the servers, one job at a time per server (ComfyUI queues the rest itself); each job's pictures are saved as
<out>/<name>_<n>.png. A failed job is reported with the error code the pack gives (`instantid.<code>`: the README's
Troubleshooting table) and its message, and the others go on. Only the standard library is used.

This is an example of ComfyUI's API (POST /prompt, GET /history/<id>, GET /view), not a scheduler: for many servers
and queues, use an orchestrator such as ComfyUI-Distributed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("batch_client")

CODE_IN_TEXT = re.compile(r"\[instantid\.(\w+)\]")
"""How a prompt refusal's message names the pack's error code."""


@dataclass
class JobResult:
    """What became of one job: its saved pictures, or the error code and message."""

    name: str
    server: str
    pictures: list[Path]
    code: str | None = None
    message: str | None = None


def job_prompt(template: dict, job: dict, text_node: str) -> dict:
    """The template with the job's face value, text and seed filled in."""
    prompt = copy.deepcopy(template)
    (face_node,) = [k for k, n in prompt.items() if n["class_type"] == "InstantIDLoadFace"]
    (sampler,) = [k for k, n in prompt.items() if n["class_type"] == "KSampler"]
    prompt[face_node]["inputs"] = {"face_value": job["face"]}
    prompt[text_node]["inputs"]["text"] = job["text"]
    prompt[sampler]["inputs"]["seed"] = int(job["seed"])
    return prompt


def positive_text_node(template: dict) -> str:
    """The id of the text node titled "positive" (a CLIPTextEncode, as ComfyUI's "Export (API)" titles it)."""
    (node,) = [k for k, n in template.items() if n.get("_meta", {}).get("title") == "positive"]
    return node


def _request(url: str, body: dict | None = None, timeout: float = 60):
    """GET (or POST `body` as JSON to) a server; its JSON answer, or the raw bytes for a picture."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        raw = answer.read()
        return json.loads(raw) if answer.headers.get_content_type() == "application/json" else raw


def refusal(error: urllib.error.HTTPError) -> tuple[str, str]:
    """The code and message of a prompt ComfyUI refused before running it."""
    body = json.loads(error.read() or b"{}")
    details = [e.get("details", "") for n in body.get("node_errors", {}).values() for e in n.get("errors", [])]
    text = "; ".join(d for d in details if d) or body.get("error", {}).get("message", str(error))
    found = CODE_IN_TEXT.search(text)
    return (found.group(1) if found else "refused"), text


def run_job(server: str, prompt: dict, name: str, out: Path, timeout: float = 3600) -> JobResult:
    """Queue one prompt on a server, wait for it, and save its pictures (or say why there are none)."""
    try:
        queued = _request(f"{server}/prompt", {"prompt": prompt, "client_id": f"batch-{uuid.uuid4()}"})
    except urllib.error.HTTPError as e:
        code, message = refusal(e)
        return JobResult(name, server, [], code, message)
    prompt_id, deadline = queued["prompt_id"], time.monotonic() + timeout
    while (entry := _request(f"{server}/history/{prompt_id}").get(prompt_id)) is None:
        if time.monotonic() > deadline:
            return JobResult(name, server, [], "timeout", f"no result after {timeout:g} s")
        time.sleep(0.5)
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            module, _, code = data["exception_type"].rpartition(".")
            return JobResult(name, server, [], code if module == "instantid" else "other", data["exception_message"])
    pictures = []
    for output in entry.get("outputs", {}).values():
        for image in output.get("images", []):
            if image.get("type") != "output":
                continue
            query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
            path = out / f"{name}_{len(pictures)}.png"
            path.write_bytes(_request(f"{server}/view?{query}"))
            pictures.append(path)
    return JobResult(name, server, pictures)


def run_jobs(servers: list[str], template: dict, jobs: list[dict], out: Path, text_node: str) -> list[JobResult]:
    """Every job, shared out among the servers (job i to server i mod n, each server's jobs one after another)."""
    out.mkdir(parents=True, exist_ok=True)

    def server_jobs(index: int) -> list[JobResult]:
        server = servers[index].rstrip("/")
        return [
            run_job(server, job_prompt(template, job, text_node), job["name"], out)
            for job in jobs[index :: len(servers)]
        ]

    with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
        results = [r for rs in pool.map(server_jobs, range(len(servers))) for r in rs]
    order = {job["name"]: i for i, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.name])


def main() -> None:
    """Command line: see the module's docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs="+", required=True, help="ComfyUI base URLs")
    parser.add_argument("--prompt", type=Path, required=True, help="API-format prompt with InstantID Load Face")
    parser.add_argument("--jobs", type=Path, required=True, help='JSON list of {"name", "face", "text", "seed"}')
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the pictures")
    parser.add_argument("--text-node", help="id of the positive text node (default: the one titled 'positive')")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    template = json.loads(args.prompt.read_text())
    jobs = json.loads(args.jobs.read_text())
    text_node = args.text_node or positive_text_node(template)
    for result in run_jobs(args.servers, template, jobs, args.out, text_node):
        if result.code is None:
            logger.info(
                "%s: %d picture(s) from %s: %s", result.name, len(result.pictures), result.server, result.pictures
            )
        else:
            logger.error("%s: failed on %s: [%s] %s", result.name, result.server, result.code, result.message)


if __name__ == "__main__":
    main()

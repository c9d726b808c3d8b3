"""The real ComfyUI imported in-process (host tier): CPU mode, a throw-away base directory, this pack loaded."""
import asyncio
import importlib
import inspect
import logging
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .paths import PACK_LINK_NAME, REPO, comfy_dir

log = logging.getLogger(__name__)


class _RecordingServer:
    """The part of PromptServer that PromptExecutor and nodes touch; records the messages it is sent."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.messages: list[tuple[str, object]] = []

    def send_sync(self, event, data, sid=None):
        """Record one message."""
        self.messages.append((event, data))

    def queue_updated(self):
        """Nothing to update without a queue."""


@dataclass
class ComfyHost:
    """Handles on the imported ComfyUI modules and this pack as ComfyUI registered it."""

    root: Path
    version: str
    nodes: ModuleType
    execution: ModuleType
    server: _RecordingServer
    pack_nodes: dict[str, type] = field(default_factory=dict)

    def pack_module(self, name: str) -> ModuleType:
        """A module of this pack as ComfyUI imported it, e.g. 'nodes.host' or 'instantid_core.identity'."""
        root = self.node("InstantIDLoadAdapter").__module__.rsplit(".nodes.", 1)[0]  # ComfyUI names it by its path
        return importlib.import_module(f"{root}.{name}")

    def node(self, class_name: str) -> type:
        """A node class as registered in ComfyUI's NODE_CLASS_MAPPINGS."""
        return self.nodes.NODE_CLASS_MAPPINGS[class_name]

    def run_prompt(self, prompt: dict) -> dict:
        """Validate and execute an API-format prompt in-process; return the history outputs or raise with the errors."""
        prompt_id = str(uuid.uuid4())
        valid, error, outputs, node_errors = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        if not valid:
            raise RuntimeError(f"prompt failed validation: {error} {node_errors}")
        params = inspect.signature(self.execution.PromptExecutor.__init__).parameters
        cache = {"cache_args": {"lru": 0, "ram": 0}} if "cache_args" in params else {"cache_size": 0}
        executor = self.execution.PromptExecutor(self.server, cache_type=self.execution.CacheType.CLASSIC, **cache)
        executor.execute(prompt, prompt_id, {"client_id": "tests"}, outputs)
        if not executor.success:
            errors = [m for m in executor.status_messages if m[0] == "execution_error"]
            raise RuntimeError(f"prompt failed: {errors}")
        return executor.history_result["outputs"]


def start_in_process(base_dir: Path) -> ComfyHost:
    """Import ComfyUI (CPU only) with `base_dir` as its base directory and load this pack from custom_nodes/."""
    root = comfy_dir()
    (base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base_dir / "custom_nodes" / PACK_LINK_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from comfy.cli_args import args

    args.cpu = True
    args.base_directory = str(base_dir)
    args.disable_api_nodes = True
    import folder_paths  # noqa: F401  (reads args.base_directory)
    import utils.extra_config  # noqa: F401  (bind ComfyUI's `utils` package before nodes.py shadows it)
    import execution
    import server
    import nodes
    from comfyui_version import __version__

    recorder = _RecordingServer()
    server.PromptServer.instance = recorder
    before = set(nodes.NODE_CLASS_MAPPINGS)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if PACK_LINK_NAME not in nodes.LOADED_MODULE_DIRS:
        raise RuntimeError(f"ComfyUI did not import this pack from {link}: see the log above for the import error")
    pack_nodes = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if k not in before and PACK_LINK_NAME in getattr(v, "RELATIVE_PYTHON_MODULE", "")}
    log.info("ComfyUI %s imported from %s with %d pack nodes", __version__, root, len(pack_nodes))
    return ComfyHost(root=root, version=__version__, nodes=nodes, execution=execution, server=recorder, pack_nodes=pack_nodes)

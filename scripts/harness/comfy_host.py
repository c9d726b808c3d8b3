"""The real ComfyUI imported in-process (host tier, benchmarks, stand-in generators): CPU mode, a throw-away base
directory, this pack loaded."""

import asyncio
import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .paths import PACK_LINK_NAME, REPO, comfy_dir

log = logging.getLogger(__name__)


class _SilentServer:
    """The part of PromptServer that nodes and ComfyUI's progress hooks touch, with nowhere to send messages."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None

    def send_sync(self, event, data, sid=None):
        """No client to tell."""

    def queue_updated(self):
        """Nothing to update without a queue."""


@dataclass
class ComfyHost:
    """Handles on the imported ComfyUI modules and this pack as ComfyUI registered it."""

    root: Path
    version: str
    nodes: ModuleType
    pack_nodes: dict[str, type] = field(default_factory=dict)

    def pack_module(self, name: str) -> ModuleType:
        """A module of this pack as ComfyUI imported it, e.g. 'nodes.host' or 'instantid_core.identity'."""
        root = self.node("InstantIDLoadAdapter").__module__.rsplit(".nodes.", 1)[0]  # ComfyUI names it by its path
        return importlib.import_module(f"{root}.{name}")

    def node(self, class_name: str) -> type:
        """A node class as registered in ComfyUI's NODE_CLASS_MAPPINGS."""
        return self.nodes.NODE_CLASS_MAPPINGS[class_name]


def comfy_args_on_cpu():
    """ComfyUI's command-line arguments, switched to the CPU before comfy.model_management loads (it reads them
    once); ComfyUI must be the one this venv was provisioned with."""
    root = comfy_dir()
    spec = importlib.util.find_spec("folder_paths")
    if spec is None or Path(spec.origin).parent != root:
        found = "no ComfyUI" if spec is None else f"the ComfyUI in {Path(spec.origin).parent}"
        raise RuntimeError(
            f"This Python ({sys.executable}) imports {found}, not {root}: run `make host` (or "
            "scripts/provision.sh) for this venv."
        )
    from comfy.cli_args import args

    args.cpu = True
    return args


def start_in_process(base_dir: Path) -> ComfyHost:
    """Import ComfyUI (CPU only) with `base_dir` as its base directory and load this pack from custom_nodes/."""
    root = comfy_dir()
    (base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base_dir / "custom_nodes" / PACK_LINK_NAME
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    args = comfy_args_on_cpu()
    args.base_directory = str(base_dir)
    args.disable_api_nodes = True
    import folder_paths  # noqa: F401  (reads args.base_directory)

    # ComfyUI's nodes.py (imported by server) puts comfy/ first on sys.path, where comfy/utils.py would then shadow
    # ComfyUI's `utils` package: bind the package first, as ComfyUI's main.py does.
    import utils.extra_config  # noqa: F401

    # isort: split
    import server
    from comfyui_version import __version__

    import nodes

    server.PromptServer.instance = _SilentServer()
    before = set(nodes.NODE_CLASS_MAPPINGS)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if PACK_LINK_NAME not in nodes.LOADED_MODULE_DIRS:
        raise RuntimeError(f"ComfyUI did not import this pack from {link}: see the log above for the import error")
    pack_nodes = {
        k: v
        for k, v in nodes.NODE_CLASS_MAPPINGS.items()
        if k not in before and PACK_LINK_NAME in getattr(v, "RELATIVE_PYTHON_MODULE", "")
    }
    log.info("ComfyUI %s imported from %s with %d pack nodes", __version__, root, len(pack_nodes))
    return ComfyHost(root=root, version=__version__, nodes=nodes, pack_nodes=pack_nodes)

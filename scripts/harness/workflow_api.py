"""Convert a UI-format workflow (as the ComfyUI frontend saves it) into an API prompt, the way the frontend does.

ComfyUI has no Python converter; the frontend's graphToPrompt is the reference. Its rules, as used here:
- `widgets_values` are positional over the node's widget inputs, in the order `/object_info` declares them (required,
  then optional). An INT input with `control_after_generate` (or named `seed`/`noise_seed`) is followed by the hidden
  "control after generate" value, and an input with `image_upload` by the upload button's value; both are skipped.
- A widget input that a link drives takes the link; its stale widget value still occupies its position.
- Notes, reroutes and primitive nodes are not executed: links are resolved through reroutes, and a primitive's value
  becomes the value of the input it feeds. Muted nodes (mode 2) are dropped; bypassed nodes (mode 4) pass their first
  input of the same type through.
"""

from __future__ import annotations

from typing import Any

from instantid_core.faces import PER_PICTURE

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4
SEED_NAMES = {"seed", "noise_seed"}


class WorkflowError(ValueError):
    """The workflow cannot be converted (unknown node type, missing widget values, dangling link)."""


def _ordered_inputs(info: dict) -> list[tuple[str, list]]:
    """(name, spec) of every input of a node definition, required first, in the declared order."""
    out = []
    for group in ("required", "optional"):
        specs = info["input"].get(group, {})
        order = info.get("input_order", {}).get(group, list(specs))
        out += [(name, specs[name]) for name in order]
    return out


def _is_widget(spec: list) -> bool:
    """True when the frontend shows this input as a widget (a value, not only a socket)."""
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_widget_values(name: str, spec: list) -> int:
    """How many hidden values the frontend stores after this widget's own value."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if spec[0] == "INT" and (options.get("control_after_generate") or name in SEED_NAMES):
        return 1
    if options.get("image_upload") or options.get("video_upload") or options.get("audio_upload"):
        return 1
    return 0


def widget_inputs(node: dict, info: dict) -> dict[str, Any]:
    """The node's widget values mapped onto its widget input names."""
    values = node.get("widgets_values") or []
    if isinstance(values, dict):
        return dict(values)
    mapped, position = {}, 0
    for name, spec in _ordered_inputs(info):
        if not _is_widget(spec):
            continue
        if position >= len(values):
            if name in info["input"].get("required", {}):
                raise WorkflowError(f"node {node['id']} ({node['type']}): no widget value for required input {name!r}")
            break
        mapped[name] = values[position]
        position += 1 + _extra_widget_values(name, spec)
    return mapped


class _Graph:
    """Nodes and links of one UI workflow, with link resolution through reroutes, primitives and bypassed nodes."""

    def __init__(self, workflow: dict):
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = {link[0]: link for link in workflow["links"]}

    def source(self, link_id: int) -> tuple[str, Any]:
        """('link', [node_id, slot]) or ('value', v) for what ultimately feeds a link."""
        if link_id not in self.links:
            raise WorkflowError(f"link {link_id} is referenced but not defined")
        _, from_id, from_slot, _to_id, _to_slot, link_type = self.links[link_id]
        node = self.nodes[from_id]
        if node["type"] == "Reroute" or node.get("mode") == BYPASSED:
            upstream = self._pass_through_input(node, link_type)
            if upstream is None:
                raise WorkflowError(f"node {from_id} ({node['type']}) passes nothing through for link {link_id}")
            return self.source(upstream)
        if node["type"] == "PrimitiveNode":
            return "value", node["widgets_values"][0]
        if node.get("mode") == MUTED:
            raise WorkflowError(f"link {link_id} comes from muted node {from_id} ({node['type']})")
        return "link", [str(from_id), from_slot]

    @staticmethod
    def _pass_through_input(node: dict, link_type: str) -> int | None:
        """The link of the first connected input of the same type (any type for a reroute)."""
        for entry in node.get("inputs", []):
            if entry.get("link") is not None and (node["type"] == "Reroute" or entry.get("type") == link_type):
                return entry["link"]
        return None


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API prompt ({id: {class_type, inputs}}) that the frontend would queue for this UI-format workflow."""
    graph = _Graph(workflow)
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode") in (MUTED, BYPASSED):
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise WorkflowError(f"node {node['id']}: type {node['type']!r} is not installed on this server")
        inputs = widget_inputs(node, info)
        for entry in node.get("inputs", []):
            if entry.get("link") is None:
                continue
            _kind, value = graph.source(entry["link"])
            inputs[entry["name"]] = value
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def lowered_prompt(workflow: dict, object_info: dict, size: int, steps: int, max_batch: int | None = None) -> dict:
    """The workflow as the frontend would queue it, with every empty latent at size×size (and, given `max_batch`, at
    most that many pictures a batch, unless each picture has its own identity: 'per picture' needs one picture per
    face, or a link sets the batch size: an angle sheet's count of views), every face crop `size` pixels on its long side and every KSampler at `steps` steps (for a CPU); nothing
    else changes."""
    prompt = ui_to_api(workflow, object_info)
    per_picture = any(node["inputs"].get("combine_embeds") == PER_PICTURE for node in prompt.values())
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"] |= {"width": size, "height": size}
            batch = node["inputs"]["batch_size"]
            if max_batch is not None and not per_picture and isinstance(batch, int):
                node["inputs"]["batch_size"] = min(batch, max_batch)
        if node["class_type"] == "InstantIDFaceCrop":
            node["inputs"]["size"] = size
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = steps
    return prompt

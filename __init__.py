"""InstantID for ComfyUI: identity-preserving SDXL generation from one face photo (Wang et al., 2024).

ComfyUI loads this package from `custom_nodes/`. The nodes use ComfyUI's V3 schema and are exported through
`comfy_entrypoint`. Importing this package does not import ComfyUI itself (the nodes are imported when ComfyUI asks for
them), so tools such as pytest can import it.
"""


async def comfy_entrypoint():
    """ComfyUI's entry point for V3 node packs: the pack's ComfyExtension."""
    from .nodes import comfy_entrypoint as nodes_entrypoint

    return await nodes_entrypoint()


__all__ = ["comfy_entrypoint"]

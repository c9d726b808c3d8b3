"""InstantID for ComfyUI: identity-preserving SDXL generation from one face photo (Wang et al., 2024).

ComfyUI loads this package from `custom_nodes/`. The nodes use ComfyUI's V3 schema and are exported through
`comfy_entrypoint`. `WEB_DIRECTORY` has ComfyUI serve web/ at /extensions/<this folder's name>/, where the frontend's
node help reads each node's page, web/docs/<node id>.md. Importing this package does not import ComfyUI itself (the
nodes are imported when ComfyUI asks for them), so tools such as pytest can import it.
"""

WEB_DIRECTORY = "./web"
"""Served by ComfyUI at /extensions/<folder>/; every .js file in it is loaded by the frontend as an extension."""


async def comfy_entrypoint():
    """ComfyUI's entry point for V3 node packs: the pack's ComfyExtension."""
    from .nodes import comfy_entrypoint as nodes_entrypoint

    return await nodes_entrypoint()


__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]

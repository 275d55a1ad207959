# The two commands a newcomer needs: `make run` and `make test`.
# Everything else (virtual environment, system packages, dev PKI, PostgreSQL) is set up on demand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CONTAINER  ?= podman
BASE_IMAGE ?= docker.io/library/python:3.11-slim-bookworm
IMAGE      ?= localhost/peppol-gateway:dev

.PHONY: run test test-unit lint bench soak system-deps venv pki image clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash .ci/system-deps

pki: $(STAMP)
	@$(BIN)/peppol-gateway dev-pki --if-missing

run: system-deps $(STAMP) pki
	exec $(BIN)/peppol-gateway sandbox

test: system-deps $(STAMP)
	@bash .ci/peers
	@bash .ci/phase4
	@bash .ci/validation-rules
	@bash .ci/container-deps
	@bash .ci/k8s-tools
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# The unit tier alone: pure code, no system packages, no PostgreSQL, no processes; seconds.
test-unit: $(STAMP)
	@bash .ci/validation-rules
	$(BIN)/python -m pytest -q tests/unit; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every benchmark, then one summary of the targets beside our figures and the peers' (BENCH_ARGS="--only e2e_bench").
bench: system-deps $(STAMP)
	@bash .ci/peers
	@bash .ci/validation-rules || echo "bench: validation rules missing; the benches that validate will say so"
	@bash .ci/phase4 || echo "bench: the phase4 peer could not be built; its figures will say so"
	@bash .ci/phive || echo "bench: the phive peer could not be built; its figures will say so"
	$(BIN)/python -m bench $(BENCH_ARGS)

# Kill and restart both gateways and PostgreSQL under load; nothing lost, nothing twice.
# SOAK_ARGS="--docs 1000 --kills-a 5 --kills-b 5 --pg-restarts 1 --seed 7" changes the run.
soak: system-deps $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The container image (deploy/Containerfile); BASE_IMAGE=<image> changes the base.
image: $(STAMP)
	@bash deploy/build-image.sh "$(BASE_IMAGE)" "$(IMAGE)" "$(CONTAINER)"

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

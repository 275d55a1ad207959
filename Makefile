# The two commands a newcomer needs: `make run` and `make test`.
# Everything else (virtual environment, system packages, dev PKI, PostgreSQL) is set up on demand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench system-deps venv pki clean

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
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: system-deps $(STAMP)
	@bash .ci/peers
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

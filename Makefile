# Both targets build the virtual environment they need on first use.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench bench-compare clean

demo: $(VENV)/.installed
	$(BIN)/skyrelay demo

test: $(VENV)/.installed-test
	$(BIN)/pytest -q -n 2

bench: $(VENV)/.installed-test
	$(BIN)/python bench/gateway_overhead.py

# skyrelay beside nginx (and LiteLLM with ARGS=--with-litellm) in one run; installs nginx and wrk when missing.
bench-compare: $(VENV)/.installed-test
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk || \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk)
	@case "$(ARGS)" in *--layers*) command -v perf >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf;; esac
	$(BIN)/python bench/compare.py $(ARGS)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV)

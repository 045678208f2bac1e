# The two commands: `make demo` (the main job) and `make test` (`make lint`, then pytest).
# Both create .venv when missing, install agentfn into it, and install Debian's redis-server
# (and, for the tests, Node.js and chromium) when it is not on PATH.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.agentfn-installed
BENCH_STAMP := $(VENV)/.agentfn-bench-installed

.PHONY: demo test lint bench redis-deps system-deps protocol release clean

demo: $(STAMP) redis-deps
	$(BIN)/agentfn demo

test: lint system-deps
	$(BIN)/pytest

# ruff's lint rules and formatting, and mypy (strict, on the whole package): pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerate agentfn/client/async_surface.pyi (AsyncClient's methods as mypy sees them) after
# adding or changing a method of the API mixins (agentfn/client/api/); a test fails until then.
.PHONY: async-surface
async-surface: $(STAMP)
	$(BIN)/python -m agentfn.client.surface --write

bench: $(BENCH_STAMP) redis-deps
	$(BIN)/python bench/run.py

# redis-server and redis-tools; the tests also need Node.js (the cross-language contract) and
# Debian's chromium (the dashboard's browser tests).
redis-deps:
	@scripts/system-deps.sh

system-deps:
	@scripts/system-deps.sh --node --browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The benchmark's peers (Dramatiq, Celery), pinned in the bench extra.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

# Refresh the generated function reference in docs/PROTOCOL.md after editing a Lua header.
protocol: $(STAMP)
	$(BIN)/agentfn protocol --write docs/PROTOCOL.md

# Refresh the release files (release/: rendered library, migrations, runner scripts) after
# editing lua/ or migrations/; release/deploy.sh deploys them with redis-cli alone.
release: $(STAMP)
	$(BIN)/agentfn render --release release

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache

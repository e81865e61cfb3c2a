# The template's own developer tasks. The generated project's Makefile is template/Makefile.jinja.
UV ?= uv
# The uv that pyproject.toml requires, and every generated project (extensions/toolchain.py).
UV_VERSION := 0.13.9
PYTEST_ARGS ?=
# Two workers fit two cores: the suite waits on installs, servers and subprocesses half the time.
PYTEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help setup system-deps test lint docs bench

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-11s\033[0m %s\n", $$1, $$2}'

setup: ## Install the required uv (UV_VERSION) unless PATH has it, and sync the template's dev environment (.venv)
	@[ "$$($(UV) --version 2>/dev/null | cut -d' ' -f2)" = "$(UV_VERSION)" ] || python3 -m pip install --quiet uv==$(UV_VERSION)
	$(UV) sync --locked

system-deps: ## Install the Debian packages the tests drive (as root); else name what is missing and skips
	@bash tools/system-deps.sh

test: setup system-deps ## Run the template's test suite: render, install, lint, test, train and update
	$(UV) run --locked pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: setup ## Lint the template's own Python (extensions, tests, bench, docs hooks)
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

docs: setup ## Build the documentation site into site/
	$(UV) run --locked mkdocs build --strict

bench: setup ## Run the benchmarks quoted in docs/benchmarks.md
	$(UV) run --locked python bench/run_all.py

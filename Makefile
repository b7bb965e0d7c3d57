# thinkbank developer entry points. Two commands matter:
#   make run    build and start PostgreSQL (embedded), the ai-worker and the gateway
#   make test   what CI runs: the launcher's unit tests, fmt check, clippy, then every test
#               against a throwaway PostgreSQL
# The work is done by deploy/local/thinkbank_dev.py (the stdlib Python package beside it,
# deploy/local/thinkbank_dev/); its state lives in .data/.

PYTHON ?= python3
DEV    := $(PYTHON) deploy/local/thinkbank_dev.py
# Extra arguments for the test runner, e.g. make test ARGS='-E "test(search)"'
ARGS   ?=

# CI clones afresh each run: keep cargo's build cache outside the clone so it survives.
ifneq ($(CI),)
# A fresh clone recompiles the workspace crates anyway: incremental state only costs disk.
export CARGO_INCREMENTAL := 0
ifeq ($(CARGO_TARGET_DIR),)
ifneq ($(HOME),)
export CARGO_TARGET_DIR := $(HOME)/.cache/thinkbank/target
endif
endif
endif

.DEFAULT_GOAL := help
.PHONY: help run stop test setup build fmt lint clean eval bench-ingest bench-chat bench-embed bench-search soak

help: ## list the targets
	@echo "thinkbank make targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-7s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## build and run PostgreSQL + worker + gateway on http://127.0.0.1:8080 (Ctrl-C stops all)
	@$(DEV) run

stop: ## stop what `make run` started (from another terminal)
	@$(DEV) stop

test: ## launcher unit tests, fmt check, clippy, all tests against a throwaway PostgreSQL (ARGS=... go to nextest)
	@$(DEV) test -- $(ARGS)

setup: ## install the pinned Python tools (PostgreSQL, model, test tools) into .data/venv
	@$(DEV) setup --test

build: ## release build of the worker and the gateway
	@$(DEV) build

fmt: ## format all Rust code
	cargo fmt --all

lint: ## cargo fmt --check and clippy with warnings denied
	@$(DEV) lint

eval: ## retrieval quality per corpus and mode (Rust Book, man pages, vs a BM25 reference) and the answer suite → bench/results/eval.json
	@eval "$$($(DEV) env --purpose test)" && \
	  THINKBANK_EVAL_SECTIONS=all THINKBANK_EVAL_MAX_CHARS=all THINKBANK_EVAL_SWEEP=1 \
	  THINKBANK_EVAL_OUT=$(CURDIR)/bench/results/eval.json \
	  cargo test --release -p thinkbank-gateway --test retrieval_eval --test answer_eval -- --nocapture --test-threads 1

bench-chat: ## streaming chat figures with the fake LLM (release build); writes bench/results/chat.json
	@eval "$$($(DEV) env --purpose test)" && cargo run --release -p thinkbank-testkit --bin bench-chat

clean: ## stop everything and delete .data/ (venv, databases, logs, objects)
	@$(DEV) clean

bench-ingest: ## ingest the Rust Book through the gateway; figures to bench/results/ingest.json
	@$(DEV) bench ingest $(ARGS)

bench-embed: ## local embedder vs sentence-transformers (torch) and onnxruntime, same texts → bench/results/embed.json
	@$(PYTHON) deploy/local/bench_embed.py $(ARGS)

bench-search: ## HNSW recall/latency, HTTP vs SQL, 1% filters, hybrid on 100k real chunks → bench/results/search.json + PNG
	@$(PYTHON) deploy/local/bench_search.py $(ARGS)

soak: ## 10 min (SOAK_SECONDS) of mixed load with a worker and a PostgreSQL restart: outcomes, p50/p99, RSS, 0 stuck/lost → bench/results/soak.json
	@$(PYTHON) deploy/local/soak.py $(ARGS)

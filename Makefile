# hub: make targets. `make help` lists them.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`: two per core. A worker waits on its hubs' brokers,
# processes and timers much of the time: three workers kept 2 cores only 1.44 busy, and on
# fresh clones of 1ba11ab, nothing else running, three took 5 min 29 s and four 4 min 38 s.
# JOBS=N to choose, JOBS=0 runs in this process. --dist loadfile keeps a module on one
# worker, so a module-scoped hub starts once. Each worker has its own broker, hub, ports and
# tmp dirs (tests/conftest.py), so more workers share nothing but the machine.
JOBS    ?= $(shell $(PY) -c 'import os; print(2 * len(os.sched_getaffinity(0)))' 2>/dev/null || echo auto)
XDIST   := $(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist loadfile)

.DEFAULT_GOAL := help
.PHONY: help venv lock shell demo demo-federation up test test-unit test-integration lint format bench clean deploy-manifests browser-deps

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# Exactly the locked versions (requirements/dev.txt, exported from uv.lock), hash-checked;
# then the hub itself, editable, with no dependency of its own left to resolve. uv (pinned
# and hash-checked in requirements/uv.txt, installed by pip) installs them: from its cache
# (~/.cache/uv) a fresh clone's venv takes ~10 s, pip took 52 s. pip byte-compiled all
# ~6,500 modules as it installed them; uv leaves that to Python: each module is compiled
# when a process first imports it, and its .pyc written for the next (`make test` sees to
# that).
UV_PIP_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python
$(STAMP): pyproject.toml requirements/dev.txt requirements/uv.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements/uv.txt
	$(UV_PIP_INSTALL) --require-hashes --no-deps -r requirements/dev.txt
	$(UV_PIP_INSTALL) --no-deps -e .
	$(BIN)/uv pip check --quiet --python $(BIN)/python
	touch $(STAMP)

venv: $(STAMP) ## create .venv and install the project with its dev tools (from the lock)

lock: $(STAMP) ## refresh uv.lock and requirements/*.txt from pyproject.toml (UPGRADE=1: newest allowed)
	$(BIN)/python scripts/lock.py $(if $(UPGRADE),--upgrade)

# `hub` is .venv/bin/hub: this shell puts it on PATH (the repo's hub/ package directory
# leaves no room for a ./hub wrapper script at the root).
shell: $(STAMP) ## a shell with .venv active, so `hub ...` runs as the README shows (exit to leave)
	@echo "hub is on PATH in this shell ($(abspath $(BIN))/hub); exit to leave" >&2
	@VIRTUAL_ENV="$(abspath $(VENV))" PATH="$(abspath $(BIN)):$$PATH" $${SHELL:-/bin/sh} -i

demo: $(STAMP) ## embedded broker + hub + a North Worcestershire scenario, live summary
	$(BIN)/hub demo

demo-federation: $(STAMP) ## two linked hubs (North and South Worcs): a victim moves, the case is transferred
	$(BIN)/hub federation demo

up: $(STAMP) ## run the hub until Ctrl-C (embedded broker unless HUB_KAFKA_BOOTSTRAP)
	$(BIN)/hub up

# The console's browser tests need Debian's chromium and chromium-driver: installed here when
# missing and possible (root with apt); otherwise the tests skip with a loud reason.
browser-deps: ## chromium + chromium-driver for the browser tests (apt, root only; no-op if present)
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium and chromium-driver for the browser tests (apt)"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium chromium-driver >/dev/null \
			|| echo "warning: apt could not install chromium: the browser tests will SKIP" >&2; \
	else \
		echo "warning: chromium/chromedriver missing and not installable here (needs root and apt): the browser tests will SKIP" >&2; \
	fi

# The tests start some 400 Python processes (hub workers, sinks, CLI commands): each reads
# its modules' .pyc, written by the first that imported them. PYTHONDONTWRITEBYTECODE (set
# on the CI machine) would have every one compile the hub and uv-installed packages afresh,
# ~0.1-0.2 s of CPU per process; the tests run without it (the .pyc go to gitignored dirs).
# Their temporary files (pytest's tmp_path: every test hub's audit store, keys, outbox and
# state, each commit of which is fsync'd) go to /dev/shm when it is a tmpfs with 2 GiB free
# (a full run writes some 200 MB, and pytest keeps the last three runs'): the hubs then never
# wait on the disk. The same tests side by side under the same load: test_restart,
# test_intake and test_audit_faults 142 s against 155 s on /tmp, tests/scenarios 149 s
# against 155 s, with the same CPU. TEST_TMPDIR= (empty) keeps the system's.
TEST_TMPDIR ?= $(shell [ -w /dev/shm ] && [ "$$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] \
	&& [ "$$(df -Pk /dev/shm | awk 'NR==2 {print $$4}')" -ge 2097152 ] && echo /dev/shm)
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR))
# Exit code 5 (no test collected) fails: a suite that ran nothing has not passed.
test: $(STAMP) browser-deps ## the whole test suite in parallel (unit, integration, e2e, browser; JOBS=N)
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-unit: $(STAMP) ## unit tests only (no network)
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) tests/unit $(PYTEST_ARGS)


test-integration: $(STAMP) ## integration and e2e tests on the embedded broker
	$(TEST_ENV) $(BIN)/python -m pytest $(XDIST) tests/integration tests/e2e $(PYTEST_ARGS)

lint: $(STAMP) ## ruff format --check, ruff check, mypy --strict
	$(BIN)/ruff format --check hub tests scripts bench examples
	$(BIN)/ruff check hub tests scripts bench examples
	$(BIN)/mypy

format: $(STAMP) ## apply ruff format and safe fixes
	$(BIN)/ruff format hub tests scripts bench examples
	$(BIN)/ruff check --fix hub tests scripts bench examples

bench: $(STAMP) ## benchmarks: bench/results/*.json and the tables of docs/benchmarks.md (BENCH="crypto ...")
	$(BIN)/python -m bench $(BENCH)

# The settings reference is generated from HubSettings and checked before the build; --strict
# makes a broken link, a missing page or a page left out of the nav fail.
.PHONY: docs
docs: $(STAMP) ## the documentation site: mkdocs build --strict into site/ (git-ignored)
	$(BIN)/python scripts/settings_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

vectors: $(STAMP) ## rebuild the byte-exact envelope vectors in tests/vectors/envelope (review the diff)
	$(BIN)/python scripts/make_envelope_vectors.py

# the same arguments as tests/unit/test_deploy.py, which fails when the committed files drift
DEPLOY_PROTOCOL  := --protocol hub/policies/north-worcestershire.yaml --partitions 3
DEPLOY_BOOTSTRAP := kafka-1:9092,kafka-2:9092,kafka-3:9092
DEPLOY_ACL_ARGS  := $(DEPLOY_PROTOCOL) --bootstrap $(DEPLOY_BOOTSTRAP) \
	--command-config /tmp/admin.properties --tool-dir /opt/kafka/bin

deploy-manifests: $(STAMP) ## regenerate deploy/compose and deploy/k8s files derived from the protocol (`hub acl`)
	$(BIN)/hub acl --format principals $(DEPLOY_PROTOCOL) > deploy/compose/principals.txt
	$(BIN)/hub acl --format kafka-acls $(DEPLOY_ACL_ARGS) > deploy/compose/acls.sh
	$(BIN)/hub acl --format kafka-topics $(DEPLOY_ACL_ARGS) > deploy/compose/topics.sh
	$(BIN)/hub acl --format strimzi $(DEPLOY_PROTOCOL) --cluster hub > deploy/k8s/users.yaml
	$(BIN)/hub acl --format strimzi-topics $(DEPLOY_PROTOCOL) --cluster hub > deploy/k8s/topics.yaml

clean: ## remove the venv, caches and the local data dir
	rm -rf $(VENV) .hub .pytest_cache .mypy_cache .ruff_cache

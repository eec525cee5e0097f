# The README's two commands: `make run` (the main job) and `make test` (the whole suite).
# Both work on a fresh clone: they create .venv and install the pinned, hashed versions in
# requirements.lock (every extra: the core, report, server, postgres, dask, test), then stroketrial
# itself, editable and without dependencies. `make lock` regenerates the lock from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements.lock

.PHONY: run test install lock bench clean

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# The platform with demo data: five trials, a user per role (logins printed), patients waiting in AMASS-2.
# The demo database is made afresh each time, in demo/.
HOST ?= 127.0.0.1
PORT ?= 8000
run: $(STAMP)
	mkdir -p demo
	rm -f demo/stroketrial.db demo/stroketrial.db-wal demo/stroketrial.db-shm
	$(BIN)/stroketrial serve --demo --db sqlite:///demo/stroketrial.db --host $(HOST) --port $(PORT)

# The whole suite; database tests run on SQLite and on a throw-away PostgreSQL server
# (Debian's postgresql, installed by scripts/test-postgres if missing).
test: $(STAMP)
	scripts/run-tests $(BIN)/python

bench: $(STAMP)
	$(BIN)/python benchmarks/screening.py
	$(BIN)/python benchmarks/randomization.py
	$(BIN)/python benchmarks/escalation.py
	$(BIN)/python benchmarks/power.py --workers 2
	scripts/bench-server $(BIN)/python

# requirements.lock: every extra (--extra all) resolved for CI's platform, Linux x86_64 CPython 3.11,
# with the sha256 of every file of each pinned release. Pins already in the lock are kept unless
# `make lock UPGRADE=1`. Needs PyPI; uv (pinned) is installed into build/lock-tools, not into .venv.
UV_VERSION   := 0.13.9
LOCK_TOOLS   := build/lock-tools
lock:
	test -x $(LOCK_TOOLS)/bin/uv || { $(PYTHON) -m venv $(LOCK_TOOLS) && \
	  $(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION); }
	$(LOCK_TOOLS)/bin/uv pip compile pyproject.toml --extra all --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) --output-file $(LOCK)

clean:
	rm -rf $(VENV) demo .pytest_cache .hypothesis $(LOCK_TOOLS)

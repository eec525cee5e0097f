# The README's two commands: `make run` (the main job) and `make test` (the whole suite).
# Both work on a fresh clone: they create .venv and install everything pyproject.toml names.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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

clean:
	rm -rf $(VENV) demo .pytest_cache .hypothesis

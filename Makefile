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

# Until the web platform lands: list the built-in trials, screen a demo cohort and two demo patients,
# then randomize the cohort's eligible patients by AMASS-2's minimization and compare its methods.
run: $(STAMP)
	$(BIN)/stroketrial trials
	mkdir -p demo
	$(BIN)/stroketrial cohort synth --n 5000 --seed 1 --trial amass-2 --out demo/cohort.csv
	$(BIN)/stroketrial screen amass-2 demo/cohort.csv --funnel
	$(BIN)/stroketrial screen amass-2 examples/amass-2-eligible.json
	$(BIN)/stroketrial screen amass-2 examples/amass-2-ineligible.json
	$(BIN)/stroketrial randomization run amass-2 demo/cohort.csv --limit 60 --out demo/allocations.csv
	$(BIN)/stroketrial randomization compare amass-2 --trials 1000 --seed 1 --plot demo/amass-2-randomization.png

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/screening.py
	$(BIN)/python benchmarks/randomization.py

clean:
	rm -rf $(VENV) demo .pytest_cache .hypothesis

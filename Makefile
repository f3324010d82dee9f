# One-command set-up: every target builds .venv from the pinned requirements when it is
# missing or older than the requirement files, then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-slow mutation demo clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The suite in two tiers (pytest.ini's `slow` marker): `make test` runs every test not marked slow (a couple
# of minutes); `make test-slow` the end-to-end ones that train through run.py in subprocesses, the shell
# scripts, SIGKILL-and-resume and the GPU check's CPU dry run. CI (.ci/run) runs both.
test: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow" tests

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 -q -m slow tests

# Mutation testing of the modules where a silent bug changes a reported number (setup.cfg [mutmut];
# docs/TESTING.md has the scores and how long it takes). Low priority and two workers: the machine may be
# shared. Not part of `make test`.
mutation: $(STAMP)
	nice -n 10 $(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

demo: $(STAMP)
	$(PY) -m utils.demo

clean:
	rm -rf $(VENV) .pytest_cache mutants

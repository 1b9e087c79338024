# Two front doors: `make tune` runs the main job, `make test` runs the suite. Each creates the
# virtual environment first if it is missing (about 2-3 minutes: torch is a CUDA build from PyPI).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: tune test test-fast install test-services clean-venv

tune: $(STAMP)
	$(PY) -m platform.tune --space augmentation $(ARGS)

test: $(STAMP) test-services
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Everything but the end-to-end tests (no Ray run, PostgreSQL or Chromium): the quick loop while editing.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e" $(PYTEST_ARGS)

# The suite starts a private PostgreSQL server and drives a headless Chromium (Debian packages).
test-services:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql >/dev/null)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)

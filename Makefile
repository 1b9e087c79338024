# Two front doors: `make tune` runs the main job, `make test` runs the suite. Each creates the
# virtual environment first if it is missing (about 2-3 minutes: torch is a CUDA build from PyPI).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: tune test install clean-venv

tune: $(STAMP)
	$(PY) -m platform.tune --space augmentation $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)

# Everything runs inside .venv, made with `python3 -m venv` (uv/poetry would
# pull a CUDA torch instead of the CPU build this machine has on disk).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-train-dev

.PHONY: test demo install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m ffreason_env sample --kind evaluation --steps 3 --strategy forward -n 1
	$(PY) -m ffreason_env sample --kind evaluation --steps 3 --strategy backward -n 1
	$(PY) -m ffreason_env sample --kind inversion --steps 3 --strategy backward -n 1
	$(PY) -m ffreason_env sample --kind inversion --steps 3 --strategy forward -n 1
	$(PY) -m ffreason_env sample --kind composition --steps 2 --parts 2 -n 1

clean:
	rm -rf $(VENV) *.egg-info

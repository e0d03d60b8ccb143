# Everything runs inside .venv, made with `python3 -m venv` (uv/poetry would
# pull a CUDA torch instead of the CPU build this machine has on disk).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-train-dev

.PHONY: test demo install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

# two workers (pytest-xdist), each with its share of the cores; tests sharing a trained fixture stay together
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[train,dev,bench]'
	touch $(BENCH_STAMP)

# every benchmark, results into benchmarks/results/ and docs/performance.md (about 15 minutes on 2 CPUs)
bench: $(BENCH_STAMP)
	$(PY) -m benchmarks env_throughput
	$(PY) -m benchmarks verify_scaling
	$(PY) -m benchmarks roofline
	$(PY) -m benchmarks trainer_overhead

# The study's central experiment (SFT arms F, B, FB; GRPO on 2-5 and 6-9 steps) with the tiny model on a CPU,
# two stages at a time (one torch thread each on 2 cores: more work per second than one stage on two threads);
# rerunning resumes; 100 validation problems per set (the experiments' default is 400), for speed.
# Report: runs/demo/report.md.
demo: $(STAMP)
	$(PY) -m baselines.cli reproduce selection --preset tiny --out runs/demo --jobs 2 --eval-n 100

clean:
	rm -rf $(VENV) *.egg-info

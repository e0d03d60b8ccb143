import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")

SHARED_FIXTURES = ("one_step_run", "fb_one_step_run", "selection_run", "qwen_selection")
"""Fixtures that train or run for a minute: under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``)
every test using one goes to the same worker, so each is built once."""


def pytest_configure(config):
    # each xdist worker gets its share of the cores: two workers with two torch threads each on two cores run
    # many times slower than one (OpenMP threads spin on a busy core); torch reads this when it is imported
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in SHARED_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(name))


@pytest.fixture(scope="session")
def micro_dir(tmp_path_factory):
    """An untrained micro model + tokenizer, saved (seconds)."""
    from trainers.models import build_tiny_model

    path = str(tmp_path_factory.mktemp("micro"))
    build_tiny_model("micro", path)
    return path


@pytest.fixture(scope="session")
def stand_in_dir(tmp_path_factory):
    """The micro stand-in for Qwen2.5-Instruct (trainers/stand_in.py), saved (seconds)."""
    from trainers.stand_in import build_stand_in

    path = str(tmp_path_factory.mktemp("stand_in"))
    build_stand_in(path, "micro")
    return path


@pytest.fixture(scope="session")
def one_step_run(tmp_path_factory):
    """A tiny model trained on 1-step evaluation problems for 600 steps (about 90 s on one thread), shared.

    The table a 1-step trace needs is learnt after a plateau; with the tiny preset's initialisation at lr 1e-3
    it ended at step 200 on seeds 0 and 1 (``python -m benchmarks sft_plateau``); after 600 steps greedy
    accuracy on 100 1-step problems was 1.0 (as after 800).
    """
    from ffreason_env import ProblemConfig
    from trainers.sft import SFTRunConfig, run_sft

    out = str(tmp_path_factory.mktemp("one_step"))
    cfg = SFTRunConfig(
        out=out, arm="F", model_size="tiny",
        problem=ProblemConfig(min_steps=1, max_steps=1, problem_types=["evaluation"]),
        examples=19200, num_train_epochs=1, per_device_train_batch_size=32, learning_rate=1e-3,
        lr_scheduler_type="constant", warmup_steps=0.0, eval_n=0, logging_steps=40, max_length=256, seed=0,
    )
    summary = run_sft(cfg)
    return out, summary


@pytest.fixture(scope="session")
def fb_one_step_run(tmp_path_factory):
    """A tiny FB-arm model: both strategies on both kinds of 1-step GF(11) problems, 200 SFT steps (109 s on one
    thread), shared. Examples are cut at 48 tokens: a direct 1-step trace (11 tokens) is whole, a search (median
    82-98 tokens) only begun, which is all an FB-like start needs where the RL budget cuts searches anyway."""
    from ffreason_env import ProblemConfig
    from trainers.sft import SFTRunConfig, run_sft

    out = str(tmp_path_factory.mktemp("fb_one_step"))
    cfg = SFTRunConfig(
        out=out, arm="FB", model_size="tiny", position_coupling=True,
        problem=ProblemConfig(min_steps=1, max_steps=1),
        examples=6400, num_train_epochs=1, per_device_train_batch_size=32, learning_rate=1e-3,
        lr_scheduler_type="constant", warmup_steps=0.0, eval_n=0, logging_steps=50, max_length=48, seed=0,
    )
    return out, run_sft(cfg)

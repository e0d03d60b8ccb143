import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def micro_dir(tmp_path_factory):
    """An untrained micro model + tokenizer, saved (seconds)."""
    from trainers.models import build_tiny_model

    path = str(tmp_path_factory.mktemp("micro"))
    build_tiny_model("micro", path)
    return path


@pytest.fixture(scope="session")
def one_step_run(tmp_path_factory):
    """A tiny model trained on 1-step evaluation problems for 800 steps (about a minute), shared by the session.

    The table a 1-step trace needs is learnt after a plateau; with the tiny preset's initialisation at lr 1e-3
    it ended at step 200 on seeds 0 and 1 (``python -m benchmarks sft_plateau``); 800 steps leave a margin.
    """
    from trainers.sft import SFTRunConfig, run_sft

    out = str(tmp_path_factory.mktemp("one_step"))
    cfg = SFTRunConfig(
        out=out, arm="F", model_size="tiny", steps_range=(1, 1), problem={"problem_types": ["evaluation"]},
        examples=25600, epochs=1, batch_size=32, lr=1e-3, lr_scheduler="constant", warmup_ratio=0.0, eval_n=0,
        logging_steps=40, max_length=256, seed=0,
    )
    summary = run_sft(cfg)
    return out, summary

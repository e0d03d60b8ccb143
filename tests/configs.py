"""Run configs as the commands build them: a preset's sections with a test's overrides on top."""

from trainers import presets
from trainers.rl_config import from_layers
from trainers.settings import merge
from trainers.sft import SFTRunConfig


def rl_config(init, out, algo="grpo", preset="micro", **overrides):
    """``ffreason rl --preset PRESET --algo ALGO`` with ``overrides``; one thread, as the tests run."""
    return from_layers(algo, *presets.section(preset, "rl", algo),
                       {"preset": preset, "init": str(init), "out": str(out), "threads": 1, **overrides})


def sft_config(out, preset="micro", **overrides):
    """``ffreason sft --preset PRESET`` with ``overrides``."""
    return merge(SFTRunConfig, *presets.section(preset, "sft"), {"preset": preset, "out": str(out), **overrides})

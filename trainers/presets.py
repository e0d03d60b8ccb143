"""Presets: the recipes of each scale, as YAML files shipped in ``trainers/presets/``.

One file per scale (``micro``, ``tiny``, ``qwen1.5b``) with a section per
command: ``sft``, ``rl`` (shared by the RL algorithms), one per algorithm
(``grpo``, ``ppo``: its own knobs) and ``reproduce`` (the experiments'
evaluation stages and validation set size). ``ffreason sft|rl --preset NAME`` and ``ffreason
reproduce ... --preset NAME`` read the same sections, so a stage of a
reproduction is the run those commands make. To change a recipe, copy a file,
edit it and give its path as the preset (``--preset my_tiny.yaml``).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PRESET_DIR", "SECTIONS", "DEFAULT_PRESET", "names", "load", "section"]

PRESET_DIR = os.path.join(os.path.dirname(__file__), "presets")
SECTIONS = ("sft", "rl", "grpo", "ppo", "reproduce")
DEFAULT_PRESET = "tiny"
"""The preset of a command given none: the recipe that runs on a CPU."""


def names() -> list[str]:
    """The presets shipped, smallest first."""
    order = {"micro": 0, "tiny": 1}
    found = [f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".yaml")]
    return sorted(found, key=lambda n: (order.get(n, 2), n))


def _path(name: str) -> str:
    """A shipped preset's file, or ``name`` itself when it is the path of a YAML file (a user's copy)."""
    if name.endswith((".yaml", ".yml")):
        if not os.path.isfile(name):
            raise FileNotFoundError(f"preset: no such file {name!r}")
        return name
    if name not in names():
        raise ValueError(f"preset: {name!r} is not one of {', '.join(names())} (or the path of a preset file)")
    return os.path.join(PRESET_DIR, f"{name}.yaml")


def _read(name: str) -> dict[str, dict[str, Any]]:
    import yaml

    with open(_path(name), encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"preset {name}: expected a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValueError(f"preset {name}: unknown section {unknown[0]!r} (expected {', '.join(SECTIONS)})")
    return {s: dict(data.get(s) or {}) for s in SECTIONS}


def load(name: str) -> dict[str, dict[str, Any]]:
    """Every section of preset ``name`` (a fresh copy)."""
    return {s: {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
            for s, values in _read(name).items()}


def section(name: str, *sections: str) -> list[dict[str, Any]]:
    """The named sections of preset ``name``, as layers for :func:`trainers.settings.merge`."""
    data = load(name)
    return [data[s] for s in sections]

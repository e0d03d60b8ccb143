"""The study's experiments, each one object registered once: its stages, its report section, the study's claims.

:data:`EXPERIMENTS` is the registry ``ffreason reproduce`` and ``ffreason
report`` read; an experiment's stages are built from a preset by
:class:`~baselines.stages.Builder`, and its report section
(:mod:`baselines.report`) reads what those stages logged. After-SFT numbers are
the RL runs' step-0 evaluation (``eval_every`` is always on): the same greedy
validation sets, with no extra stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ffreason_env import ProblemConfig
from ffreason_env.atomic import atomic_write

from . import report as sections
from .report import Logs, Report, Section
from .stages import Builder, Stage, read_manifest
from .study import AMPLIFICATION_SHARES, ARM_ORDER, COMPOSITION_PARTS, TABLE1

__all__ = ["Experiment", "EXPERIMENTS", "plan", "write_report"]


def _selection(b: Builder, p: int = 11) -> list[Stage]:
    """SFT arms F, B, FB on 2-5 steps; RL on 2-5 and on 6-9 steps from each; validation on 2-5 and 6-9."""
    sft = [b.sft(arm, p=p) for arm in ARM_ORDER]
    rl = [b.rl(s, f"{lo}-{hi}", {"p": p, "min_steps": lo, "max_steps": hi}) for lo, hi in ((2, 5), (6, 9)) for s in sft]
    return [*sft, *rl]


def _improvement(b: Builder) -> list[Stage]:
    """RL on 2-5, 6-9 and 6-15 steps from the same SFT arms; accuracy per step count 2..15 before and after."""
    sft = [b.sft(arm) for arm in ARM_ORDER]
    stages: list[Stage] = [*sft]
    for lo, hi in ((2, 5), (6, 9), (6, 15)):
        for s in sft:
            stages.append(b.rl(s, f"{lo}-{hi}", {"min_steps": lo, "max_steps": hi},
                               eval_ranges=((2, 5), (6, 9), (10, 15)),
                               min_completion_length=136 if hi == 15 else 0))  # a direct 15-step trace: 122 tokens
    return stages


def _amplification(b: Builder) -> list[Stage]:
    """RL from the FB model on 2-5-step data with 50/50, 75/25, 90/10 evaluation/inversion."""
    sft = b.sft("FB")
    return [sft, *(b.rl(sft, f"eval{share}", {"min_steps": 2, "max_steps": 5, "problem_types": ["evaluation", "inversion"],
                                              "type_weights": [share, 100 - share]})
                   for share in AMPLIFICATION_SHARES)]


def _composition(b: Builder) -> list[Stage]:
    """FB SFT with and without 2-part compositions; RL on 3-5-part compositions; accuracy per number of parts."""
    with_parts = b.sft("FB", "with-2part", problem_types=["evaluation", "inversion", "composition"],
                       min_parts=2, max_parts=2)
    without = b.sft("FB", "without-2part")
    rl = [b.rl(sft, "parts-3-5", {"problem_types": ["composition"], "min_steps": 2, "max_steps": 5, "min_parts": 3,
                                  "max_parts": 5},
               env="ffreason/Composition-v0", eval_ranges=((2, 5),),
               min_completion_length=240)  # an aligned 5-part, 5-step composition: 232 tokens
          for sft in (with_parts, without)]
    sets = {f"parts-{k}": ProblemConfig(min_steps=2, max_steps=5, problem_types=["composition"], min_parts=k,
                                        max_parts=k) for k in COMPOSITION_PARTS}
    return [with_parts, without, *rl, *(b.evaluation(s, sets) for s in (with_parts, rl[0], without, rl[1]))]


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    """One line: what it runs and shows."""
    stages: Callable[[Builder], list[Stage]]
    """Its stages at a preset, in run order."""
    section: Callable[[Logs, "Experiment"], Section]
    """Its part of the report: the headline table, the markdown, its own plots."""
    claims: tuple[str, ...]
    """What the study reports for it, in words."""
    published: dict | None = None
    """The study's numbers printed beside ours (Table 1), where there are any."""


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "selection", "SFT arms F, B, FB on 2-5 steps; RL on 2-5 and on 6-9; the study's Table 1", _selection,
        sections.selection, (
            "All three arms start near 80% on 2-5-step validation after SFT.",
            "FB after RL on hard (6-9) data: ~95%; single-strategy arms ~50-60%, at chance on the kind their "
            "strategy does not fit.",
            "RL on same-difficulty data mostly selects (FB evaluation 64 -> 92); RL on harder data improves "
            "(B inversion 39 -> 96).",
        ), published=TABLE1),
    Experiment(
        "improvement", "RL on 2-5 vs 6-9 vs 6-15 from the same SFT arms; accuracy per step count 2..15",
        _improvement, sections.improvement, (
            "RL on harder data (6-9, 6-15 steps) makes a strategy work on longer chains than it was supervised on "
            "(B inversion 39 -> 96 on 6-9 steps); RL on 2-5 does not.",
        )),
    Experiment(
        "amplification", "RL data 50/50, 75/25, 90/10 evaluation/inversion; forward fraction vs share",
        _amplification, sections.amplification, (
            "With RL data skewed 50/50, 75/25, 90/10 (evaluation/inversion), the fraction of forward responses "
            "tracks the evaluation share.",
        )),
    Experiment(
        "composition", "SFT with / without 2-part compositions; RL on 3-5 parts; accuracy per part count",
        _composition, sections.composition, (
            "With 2-part compositions in SFT, RL on 3-5-part compositions extends to longer chains; without them "
            "in SFT, RL does not learn composition.",
        )),
    Experiment(
        "gf13", "selection at p = 13", lambda b: _selection(b, p=13), sections.selection, (
            "GF(13): all arms 70-80% after SFT on 2-5 steps; after RL on 6-9 only FB is near perfect.",
        )),
)}


def plan(experiment: str, preset: str, run_dir: str, algo: str = "grpo") -> list[Stage]:
    """The stages of ``experiment`` at ``preset``, in run order, every config validated (nothing is loaded)."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment: {experiment!r} is not one of {', '.join(EXPERIMENTS)}")
    stages = EXPERIMENTS[experiment].stages(Builder(run_dir, preset, algo))
    for stage in stages:
        stage.validate()
    return stages


def write_report(run_dir: str) -> Report:
    """Write ``RUN_DIR/report.md`` and its plots from the logged metrics of the experiment the directory holds."""
    manifest = read_manifest(run_dir)
    experiment = EXPERIMENTS[manifest["experiment"]]
    logs = Logs(run_dir, plan(experiment.name, manifest["preset"], run_dir, manifest["algo"]))
    section = experiment.section(logs, experiment)
    text = sections.document(logs, experiment.name, experiment.summary, manifest, section, experiment.claims)
    path = os.path.join(run_dir, "report.md")
    with atomic_write(path) as f:
        f.write(text)
    return Report(path, section.headline)

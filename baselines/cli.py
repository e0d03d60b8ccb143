"""``ffreason``: the trainers' commands (sft, rl, eval) plus ``reproduce`` and ``report`` for the study's experiments.

The console script points here rather than at ``trainers.cli`` because the
layering is one way (baselines -> trainers): trainers cannot know the
experiments, so this module adds two commands to the trainers' ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal, Sequence

import tyro

from trainers import cli as trainers_cli
from trainers.presets import DEFAULT_PRESET
from trainers.rl_config import ALGORITHMS

from .experiments import EXPERIMENTS, STUDY

__all__ = ["ReproduceConfig", "ReportConfig", "COMMANDS", "main"]

ExperimentName = Literal[(*EXPERIMENTS, STUDY)]  # type: ignore[valid-type]
AlgoName = Literal[tuple(ALGORITHMS)]  # type: ignore[valid-type]


@dataclass(frozen=True)
class ReproduceConfig:
    """``ffreason reproduce``: one of the study's experiments, end to end, with its report."""

    experiment: tyro.conf.Positional[ExperimentName]
    """The experiment (listed above), or ``study`` for all of them."""
    out: str = ""
    """Run directory of the whole experiment (required); each stage writes to a sub-directory of it."""
    preset: str = DEFAULT_PRESET
    """The preset every stage starts from (trainers/presets/NAME.yaml, or the path of an edited copy): micro
    (seconds, for tests), tiny (the from-scratch model on a CPU), qwen1.5b (the study's Qwen2.5-1.5B-Instruct +
    LoRA, GRPO with vLLM, on a GPU)."""
    algo: AlgoName = "grpo"
    """RL algorithm of every RL stage: TRL's GRPO (the study's) or the project's PPO."""
    force: bool = False
    """Redo every stage, even those already done."""
    seeds: tuple[int, ...] = (1,)
    """Replicas of the whole experiment: one number N runs replicas 0..N-1, several numbers run those replicas.
    Replica k moves every seed that draws randomness (SFT's model initialisation and data order, RL's sampling) by
    k and keeps the problems and validation sets; replica 0 is the preset's own run, in --out itself, replica k in
    --out/seed-k. A rerun with more seeds adds replicas to a finished run; the report gives mean ± sd over them and
    counts the seeds in which each claim holds."""
    eval_n: int = 0
    """Problems per validation set of every stage (0: the preset's, 100 at tiny scale, a 95% interval of about
    +-10 points at 50%; 400 gives about +-5)."""
    jobs: int = 1
    """Run up to N stages at once whose inputs are ready (the arms are independent), each in its own process with
    CPU cores / N torch threads, its output in RUN_DIR/STAGE/stage.log and a progress bar in the terminal; on 2
    cores, 2 one-thread stages do 1.3x the work of one two-thread stage (make demo uses it); keep 1 on a single
    GPU."""


@dataclass(frozen=True)
class ReportConfig:
    """``ffreason report``: rebuild a reproduction's report from what its stages logged."""

    run_dir: tyro.conf.Positional[str]
    """A ``ffreason reproduce`` run directory (a partial one too)."""


def _reproduce(argv: list[str], prog: str) -> int:
    from trainers.settings import parse_flags

    from .runner import reproduce

    experiments = "\n".join([*(f"  {name:<14} {e.summary}" for name, e in EXPERIMENTS.items()),
                             f"  {STUDY:<14} every experiment above, each in RUN_DIR/EXPERIMENT, sharing the stages "
                             f"they have in common; RUN_DIR/report.md gives every claim's verdicts"])
    cfg = parse_flags(ReproduceConfig, argv, None, prog,
                      "Run an experiment of the study as stages (SFT arms, RL runs, evaluations), each in its own "
                      "sub-directory of --out (sft/FB, rl-6-9/FB, ...), built from the preset exactly as ffreason "
                      "sft/rl --preset build them. A stage whose summary file exists is skipped, so rerunning the same "
                      "command resumes an interrupted reproduction (an RL run continues from its last checkpoint); "
                      "--force redoes every stage. Then writes RUN_DIR/report.md with tables, the study's claims with a "
                      "verdict each (holds / does not hold / inconclusive, per seed), PNG plots (RUN_DIR/plots/) and "
                      "every number in RUN_DIR/report.json, and prints the main table."
                      f"\n\nexperiments:\n{experiments}")
    if not cfg.out:
        raise ValueError("out: a run directory is required (--out RUN_DIR)")
    report = reproduce(cfg.experiment, cfg.preset, cfg.out, algo=cfg.algo, force=cfg.force, jobs=cfg.jobs,
                       seeds=cfg.seeds, eval_n=cfg.eval_n or None)
    print(report.headline)
    print(f"report: {report.path}")
    return 0


def _report(argv: list[str], prog: str) -> int:
    from trainers.settings import parse_flags

    from .experiments import write_report

    cfg = parse_flags(ReportConfig, argv, None, prog,
                      "Rebuild RUN_DIR/report.md and RUN_DIR/plots/*.png of a 'ffreason reproduce' run directory from "
                      "the metrics its stages logged (no model is loaded); works on a partial run too.")
    report = write_report(cfg.run_dir)
    print(report.headline)
    print(f"report: {report.path}")
    return 0


def _analyze(argv: list[str], prog: str) -> int:
    from trainers.settings import parse_flags

    from .analyze import AnalyzeConfig, main as analyze

    cfg = parse_flags(AnalyzeConfig, argv, None, prog,
                      "The strategy probes of finished RL runs, from the checkpoints they saved: at step 0, every kept "
                      "checkpoint and the final model, the teacher-forced preference for each strategy's reference "
                      "trace and --samples responses to each of --probe-n problems (per-problem transitions, the "
                      "accuracy change split into selection and improvement); at the first and last, pass@k up to "
                      "--pass-samples. Writes RUN_DIR/analysis.json; given a 'ffreason reproduce' run directory, "
                      "analyses each of its RL stages and rewrites its report, which then shows them.")
    for path in analyze(cfg):
        print(f"report: {path}")
    return 0


COMMANDS = {
    **trainers_cli.COMMANDS,
    "analyze": trainers_cli.Command("strategy probes of finished RL runs from their checkpoints (after the fact)",
                                    _analyze),
    "reproduce": trainers_cli.Command("run one of the study's experiments end to end and write its report",
                                      _reproduce),
    "report": trainers_cli.Command("rewrite RUN_DIR/report.md and its plots from the logged metrics", _report),
}


def main(argv: Sequence[str] | None = None) -> int:
    return trainers_cli.main(argv, COMMANDS, description=(
        "Train and evaluate language models on the ffreason finite-field environments, and reproduce the "
        "study's experiments (reproduce, report)."))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

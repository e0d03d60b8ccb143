"""``ffreason``: the trainers' commands (sft, rl, eval) plus ``reproduce`` and ``report`` for the study's experiments.

The console script points here rather than at ``trainers.cli`` because the
layering is one way (baselines -> trainers): trainers cannot know the
experiments, so this module takes the trainers' parser and adds two commands.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Sequence

from trainers import cli as trainers_cli

from .experiments import EXPERIMENTS, SCALES

__all__ = ["main", "build_parser"]

_PRESETS_HELP = (
    "micro: seconds, for tests (a few examples and RL steps); "
    "tiny: the from-scratch model on a CPU (the trainers' tiny SFT and RL presets); "
    "qwen1.5b: the study's setup on a GPU (Qwen2.5-1.5B-Instruct + LoRA r64/alpha128, SFT 20 epochs on 2048 "
    "examples, GRPO batch 32 group 8 beta 0.05 T 0.7 lr 1e-5 for 500 steps, vLLM colocate)"
)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .runner import reproduce

    report = reproduce(args.experiment, args.preset, args.out, algo=args.algo, force=args.force, jobs=args.jobs)
    print(report.headline)
    print(f"report: {report.path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    report = write_report(args.run_dir)
    print(report.headline)
    print(f"report: {report.path}")
    return 0


def _add_commands(sub) -> None:
    experiments = "\n".join(f"  {name:<14} {e.summary}" for name, e in EXPERIMENTS.items())
    r = sub.add_parser(
        "reproduce", help="run one of the study's experiments end to end and write its report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Run an experiment of the study as stages (SFT arms, RL runs, evaluations), each in its own "
            "sub-directory of --out (sft/FB, rl-6-9/FB, ...). A stage whose summary file exists is skipped, so "
            "rerunning the same command resumes an interrupted reproduction (an RL run continues from its last "
            "checkpoint); --force redoes every stage. Then writes RUN_DIR/report.md with tables and PNG plots "
            "(RUN_DIR/plots/) and prints the main table.", 100) + "\n\nexperiments:\n" + experiments,
    )
    r.add_argument("experiment", choices=list(EXPERIMENTS), metavar="EXPERIMENT",
                   help=f"one of: {', '.join(EXPERIMENTS)}")
    r.add_argument("--preset", choices=list(SCALES), default="tiny", help=_PRESETS_HELP + " (default %(default)s)")
    r.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory of the whole experiment")
    r.add_argument("--algo", choices=["grpo", "ppo"], default="grpo",
                   help="RL algorithm: TRL's GRPO (the study's) or the project's PPO (default %(default)s)")
    r.add_argument("--force", action="store_true", help="redo every stage, even those already done")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run up to N stages at once whose inputs are ready (the arms are independent), each in its own "
                        "process with CPU cores / N torch threads, its output in RUN_DIR/STAGE/stage.log and a "
                        "progress bar in the terminal; on 2 cores, 2 one-thread stages do 1.3x the work of one "
                        "two-thread stage (make demo uses it); keep 1 on a single GPU (default %(default)s)")
    r.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "report", help="rewrite RUN_DIR/report.md and its plots from the logged metrics",
        description="Rebuild RUN_DIR/report.md and RUN_DIR/plots/*.png of a 'ffreason reproduce' run directory from "
                    "the metrics its stages logged (no model is loaded); works on a partial run too.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=_cmd_report)


def build_parser() -> argparse.ArgumentParser:
    return trainers_cli.build_parser(_add_commands, description=(
        "Train and evaluate language models on the ffreason finite-field environments, and reproduce the "
        "study's experiments (reproduce, report)."))


def main(argv: Sequence[str] | None = None) -> int:
    return trainers_cli.main(argv, build_parser())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

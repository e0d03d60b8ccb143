"""``ffreason``: the one entry point for training and evaluation runs.

Each command's options are generated from its config dataclass
(:mod:`trainers.settings`): ``sft`` from
:class:`~trainers.sft.SFTRunConfig`, ``rl`` from the algorithm's config in
:mod:`trainers.rl_config`, ``eval`` from
:class:`~trainers.evaluation.EvalRunConfig`. Values come from the preset, then
the ``--config`` YAML file, then the flags (later wins).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Command", "COMMANDS", "main", "sft_config", "rl_config", "run_problem_config"]

_LAYERS = ("Values come from the preset (--preset NAME, one of {presets}, default {default}: "
           "trainers/presets/NAME.yaml; or the path of an edited copy), then --config FILE.yaml (this command's "
           "fields; a run's config.yaml works), then the flags given here; later wins.")


@dataclass(frozen=True)
class Command:
    help: str
    """One line for ``ffreason --help``."""
    run: Callable[[list[str], str], int]
    """``run(argv, prog)``: parse the command's own arguments and do it; returns the exit status."""


def _layers_help() -> str:
    from .presets import DEFAULT_PRESET, names

    return _LAYERS.format(presets=" | ".join(names()), default=DEFAULT_PRESET)


def _file_and_preset(config: str | None, preset: str | None) -> tuple[dict, str]:
    """The ``--config`` file's values (without the keys that describe the run rather than set it) and the
    preset: the flag's, else the file's, else the default."""
    from .presets import DEFAULT_PRESET
    from .settings import load_yaml

    from_file = load_yaml(config)
    from_file.pop("command", None)
    file_preset = from_file.pop("preset", None)
    return from_file, preset or file_preset or DEFAULT_PRESET


def sft_config(argv: Sequence[str], prog: str = "ffreason sft"):
    """The :class:`~trainers.sft.SFTRunConfig` that ``ffreason sft ARGV`` runs (``--help`` prints and exits)."""
    from . import presets
    from .settings import merge, parse_flags, split_flags
    from .sft import SFTRunConfig

    given, rest = split_flags(argv, consumed=("config",), kept=("preset",))
    from_file, preset = _file_and_preset(given["config"], given["preset"])
    default = merge(SFTRunConfig, *presets.section(preset, "sft"), from_file, {"preset": preset})
    return parse_flags(SFTRunConfig, rest, default, prog,
                       "Supervised fine-tuning on one of the study's arms (TRL SFTTrainer); writes RUN_DIR/model, "
                       "metrics.jsonl, tb/ and config.yaml. " + _layers_help())


def rl_config(argv: Sequence[str], prog: str = "ffreason rl"):
    """The RL config (:mod:`trainers.rl_config`) that ``ffreason rl ARGV`` runs (``--help`` prints and exits)."""
    from . import presets
    from .rl_config import ALGORITHMS, check_knobs, config_class, from_layers, own_knobs
    from .settings import flag_names, parse_flags, split_flags

    given, rest = split_flags(argv, consumed=("config", "algo"), kept=("preset",))
    from_file, preset = _file_and_preset(given["config"], given["preset"])
    algo = given["algo"] or from_file.get("algo") or "grpo"
    from_file.pop("algo", None)
    cls = config_class(algo)
    check_knobs(algo, flag_names(rest))
    default = from_layers(algo, *presets.section(preset, "rl", algo), from_file, {"preset": preset})
    knobs = "; ".join(f"{a}: {', '.join(own_knobs(a))}" for a in ALGORITHMS)
    return parse_flags(cls, rest, default, prog,
                       f"RL from a trained model on an ffreason environment with --algo {' | '.join(ALGORITHMS)} "
                       f"(default grpo; this help is --algo {algo}'s). Prompts come from the env's seeded stream, "
                       "every member of a group gets the same problem, rewards come from the env's score (what its "
                       "step returns). Writes RUN_DIR/metrics.jsonl (strategy fractions and accuracy per kind), "
                       "completions.jsonl (one line per sampled response), tb/, checkpoints/, model/ and "
                       f"config.yaml. Each algorithm's own knobs ({knobs}) are refused for the other. "
                       + _layers_help())


def _sft(argv: list[str], prog: str) -> int:
    import json

    from .sft import run_sft

    cfg = sft_config(argv, prog)
    summary = run_sft(cfg)
    print(json.dumps(summary, indent=2))
    print(f"run directory: {cfg.out}")
    return 0


def _rl(argv: list[str], prog: str) -> int:
    import json

    from .rl import make_trainer

    cfg = rl_config(argv, prog)
    run = make_trainer(cfg)
    summary = run.train()
    if run.is_main:  # under accelerate launch every process gets here
        print(json.dumps(summary, indent=2))
        print(f"run directory: {cfg.out}")
    # Leave the process group before exiting: a process that exits with gloo's worker threads alive can abort
    # (SIGABRT, "terminate called without an active exception"), which failed a 2-process CI run.
    run.state.destroy_process_group()
    return 0


def run_problem_config(run_dir: str):
    """The training problems of a run directory (its config.yaml's ``problem``), labelled from 1: the task itself.
    The default problem config where the directory has none."""
    from ffreason_env import ProblemConfig

    from .runlog import CONFIG_FILE
    from .settings import load_yaml

    path = os.path.join(run_dir, CONFIG_FILE)
    problem = load_yaml(path).get("problem") if os.path.exists(path) else None
    return ProblemConfig.from_dict(problem or {}).without_offsets()


def _eval(argv: list[str], prog: str) -> int:
    import dataclasses

    import torch

    from .evaluation import EvalRunConfig, evaluate, format_report, validation_set
    from .models import load_model, resolve_model_dir
    from .runlog import write_json
    from .settings import parse_flags

    description = ("Evaluate RUN_DIR/model on a fixed validation set: greedy accuracy overall / per kind / per step "
                   "count, strategy fractions per kind, accuracy per (kind, strategy); with --samples k also pass@k "
                   "and sampled strategy fractions. Writes JSON and prints a table. The problem flags default to the "
                   "run's training problems.")
    first = parse_flags(EvalRunConfig, argv, None, prog, description)  # the run directory, whose problems are the default
    default = dataclasses.replace(first, problem=run_problem_config(first.run_dir))
    cfg = parse_flags(EvalRunConfig, argv, default, prog, description)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model_dir = resolve_model_dir(cfg.run_dir)
    settings, config = cfg.settings, cfg.problem
    device = "cuda" if torch.cuda.is_available() else None
    model, tokenizer = load_model(model_dir, device=device)
    report = evaluate(model, tokenizer, validation_set(config, settings.n, settings.seed), settings)
    steps = f"{config.min_steps}-{config.max_steps}"
    report.update(model=model_dir, problem_config=config.to_dict())
    out = cfg.out or os.path.join(cfg.run_dir, f"eval_{steps}.json")
    write_json(out, report)
    print(format_report(report, title=f"{model_dir}: {settings.n} problems, steps {steps}"))
    print(f"report: {out}")
    return 0


COMMANDS: dict[str, Command] = {
    "sft": Command("supervised fine-tuning on an arm's traces (TRL SFTTrainer)", _sft),
    "rl": Command("reinforcement learning (GRPO through TRL, or PPO) on an environment, logging strategies", _rl),
    "eval": Command("accuracy, pass@k and strategy use of a trained model", _eval),
}
"""The trainers' commands; ``baselines.cli`` adds the study's."""


def _usage(commands: dict[str, Command], description: str) -> str:
    lines = ["usage: ffreason COMMAND [options]   (ffreason COMMAND --help for its options)", "", description, "",
             "commands:"]
    lines += [f"  {name:<10} {c.help}" for name, c in commands.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, commands: dict[str, Command] | None = None,
         description: str = "Train and evaluate language models on the ffreason finite-field environments.") -> int:
    """Run ``ffreason COMMAND ...``; a bad value exits with status 2 and a message naming the option."""
    commands = commands or COMMANDS
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(commands, description))
        if not argv:
            raise SystemExit(2)
        raise SystemExit(0)
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(_usage(commands, description), file=sys.stderr)
        print(f"\nffreason: error: unknown command {name!r} (choose from {', '.join(commands)})", file=sys.stderr)
        raise SystemExit(2)
    try:
        return commands[name].run(rest, f"ffreason {name}")
    except (ValueError, FileNotFoundError) as e:
        print(f"ffreason {name}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

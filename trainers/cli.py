"""``ffreason``: the one entry point for training and evaluation runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Sequence

from ffreason_env.cli import steps_range_arg

__all__ = ["main", "build_parser"]


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _flags(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options the user actually gave (argparse defaults are None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


SFT_FLAGS = ("arm", "model", "model_size", "lora", "steps_range", "p", "problem", "examples", "data_seed", "curriculum",
             "epochs", "lr", "lr_scheduler", "stop_loss", "position_stretch", "position_coupling", "batch_size",
             "grad_accum", "max_length", "seed", "bf16", "logging_steps", "save_steps", "eval_n", "threads")


def _preset_and_file(args: argparse.Namespace, presets: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The preset (flag > YAML's ``preset:`` > tiny) and the YAML file's other values."""
    from .settings import load_yaml

    from_file = load_yaml(args.config)
    from_file.pop("command", None)
    file_preset = from_file.pop("preset", None)
    preset = args.preset or file_preset or "tiny"
    if preset not in presets:
        raise ValueError(f"preset: {preset!r} is not one of {sorted(presets)}")
    return preset, from_file


def _cmd_sft(args: argparse.Namespace) -> int:
    from .settings import merge
    from .sft import SFT_PRESETS, SFTRunConfig, run_sft

    preset, from_file = _preset_and_file(args, SFT_PRESETS)
    flags = _flags(args, SFT_FLAGS)
    cfg = merge(SFTRunConfig, SFT_PRESETS[preset], from_file, flags, {"preset": preset, "out": args.out})
    summary = run_sft(cfg)
    print(json.dumps(summary, indent=2))
    print(f"run directory: {cfg.out}")
    return 0


RL_FLAGS = ("algo", "init", "lora", "env", "env_kwargs", "prompts", "prompt_seed", "max_steps", "num_generations",
            "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "beta", "temperature",
            "max_completion_length", "loss_type", "scale_rewards", "epsilon", "num_iterations", "use_vllm", "vllm_mode",
            "vllm_server_base_url", "report_to", "logging_steps", "save_steps", "seed", "bf16", "eval_every", "eval_ranges", "eval_n", "resume",
            "threads", "format_penalty", "process_weight")


def _cmd_rl(args: argparse.Namespace) -> int:
    from .rl import RL_PRESETS, RLRunConfig, make_trainer
    from .settings import merge

    preset, from_file = _preset_and_file(args, RL_PRESETS)
    flags = _flags(args, RL_FLAGS)
    env_kwargs = {**from_file.pop("env_kwargs", {}), **flags.pop("env_kwargs", {})}
    for reward_option in ("format_penalty", "process_weight"):  # reward options are env kwargs
        if reward_option in flags:
            env_kwargs[reward_option] = flags.pop(reward_option)
    cfg = merge(RLRunConfig, RL_PRESETS[preset], from_file, flags,
                {"preset": preset, "out": args.out, "env_kwargs": env_kwargs})
    run = make_trainer(cfg.algo, cfg)
    summary = run.train()
    if run.is_main:  # under accelerate launch every process gets here
        print(json.dumps(summary, indent=2))
        print(f"run directory: {cfg.out}")
    # Leave the process group before exiting: a process that exits with gloo's worker threads alive can abort
    # (SIGABRT, "terminate called without an active exception"), which failed a 2-process CI run.
    run.state.destroy_process_group()
    return 0


def _run_problem_settings(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return {}
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    problem = {"p": data.get("p", 11), **(data.get("problem") or {})}
    problem.pop("max_label_offset", None)  # a training augmentation: evaluate on the task itself
    return problem


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from ffreason_env import ProblemConfig

    from .evaluation import EvalSettings, evaluate, format_report, validation_set
    from .models import load_model, resolve_model_dir
    from .runlog import write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = resolve_model_dir(args.run_dir)
    problem = _run_problem_settings(args.run_dir)
    if args.p is not None:
        problem["p"] = args.p
    problem.update(args.problem or {})
    lo, hi = args.steps_range
    config = ProblemConfig(**{**problem, "min_steps": lo, "max_steps": hi})
    settings = EvalSettings(n=args.n, samples=args.samples, temperature=args.temperature,
                            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    if settings.n < 1 or settings.samples < 0 or settings.temperature <= 0:
        raise ValueError("n: expected n >= 1, samples >= 0 and temperature > 0")
    device = "cuda" if torch.cuda.is_available() else None
    model, tokenizer = load_model(model_dir, device=device)
    report = evaluate(model, tokenizer, validation_set(config, settings.n, settings.seed), settings)
    report.update(model=model_dir, steps_range=[lo, hi], problem_config=config.to_dict())
    out = args.out or os.path.join(args.run_dir, f"eval_{lo}-{hi}.json")
    write_json(out, report)
    print(format_report(report, title=f"{model_dir}: {settings.n} problems, steps {lo}-{hi}"))
    print(f"report: {out}")
    return 0


def build_parser(more_commands: Callable[[Any], None] | None = None,
                 description: str = "Train and evaluate language models on the ffreason finite-field environments.",
                 ) -> argparse.ArgumentParser:
    """The ``ffreason`` parser; ``more_commands(subparsers)`` adds commands of a layer above (baselines)."""
    parser = argparse.ArgumentParser(prog="ffreason", description=description)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "sft", help="supervised fine-tuning on an arm's traces (TRL SFTTrainer)",
        description="Supervised fine-tuning on the study's arms. Values come from the preset, then the YAML "
                    "--config file, then the flags given here (later wins).",
    )
    s.add_argument("--out", required=True, help="run directory (model/, metrics.jsonl, tb/, config.yaml)")
    s.add_argument("--config", help="YAML file of SFTRunConfig fields (e.g. lr: 1e-3)")
    s.add_argument("--preset", help="micro | tiny | small (from-scratch model on CPU) | qwen1.5b (the study's); default tiny")
    s.add_argument("--arm", choices=["F", "B", "FB"], help="F: forward traces, B: backward, FB: a coin per example")
    s.add_argument("--model", help="checkpoint directory or hub id (e.g. Qwen/Qwen2.5-1.5B-Instruct)")
    s.add_argument("--model-size", help="size of the from-scratch model when --model is not given (micro|tiny|small)")
    s.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None,
                   help="train a LoRA adapter (r=64, alpha=128, dropout 0.05) and merge it")
    s.add_argument("--steps-range", type=steps_range_arg, metavar="N|MIN-MAX", help="ops per problem, e.g. 2-5")
    s.add_argument("--p", type=int, help="prime of the field")
    s.add_argument("--problem", type=_json_dict, help='extra ProblemConfig fields as JSON, e.g. \'{"problem_types": ["composition"]}\'')
    s.add_argument("--examples", type=int, help="number of distinct training examples")
    s.add_argument("--data-seed", type=int, help="problem stream of the training data")
    s.add_argument("--curriculum", action=argparse.BooleanOptionalAction, default=None,
                   help="present examples shortest first in each epoch instead of shuffled")
    s.add_argument("--epochs", type=float, help="passes over the examples")
    s.add_argument("--lr", type=float, help="peak learning rate (AdamW)")
    s.add_argument("--lr-scheduler", help="transformers scheduler name (cosine, constant_with_warmup, ...)")
    s.add_argument("--stop-loss", type=float, help="stop once a logged training loss is below this (0: never)")
    s.add_argument("--position-stretch", type=float,
                   help="stretch each example's position ids by a random factor in [1, this] (1: plain positions)")
    s.add_argument("--position-coupling", action=argparse.BooleanOptionalAction, default=None,
                   help="build the from-scratch model with position ids coupled to the step labels, so that "
                        "look-ups carry over to longer chains (trainers/positions.py)")
    s.add_argument("--batch-size", type=int, help="sequences per optimizer step (per device)")
    s.add_argument("--grad-accum", type=int, help="gradient accumulation steps")
    s.add_argument("--max-length", type=int, help="truncate sequences to this many tokens")
    s.add_argument("--seed", type=int, help="seed of initialisation and data order")
    s.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bfloat16 training (GPU)")
    s.add_argument("--logging-steps", type=int, help="log metrics every N steps")
    s.add_argument("--save-steps", type=int, help="resumable checkpoint every N steps (0: end only)")
    s.add_argument("--eval-n", type=int, help="held-out problems evaluated greedily after training (0: skip)")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    s.set_defaults(func=_cmd_sft)

    r = sub.add_parser(
        "rl", help="reinforcement learning (GRPO through TRL, or PPO) on an environment, logging strategies",
        description="RL from a trained model on an ffreason environment. Prompts come from the env's seeded stream "
                    "(every member of a group gets the same problem), rewards from env.step. Values come from the "
                    "preset, then the YAML --config file, then the flags (later wins); TRL's names where TRL has "
                    "the knob. Writes RUN_DIR/metrics.jsonl (strategy fractions and accuracy per kind), "
                    "completions.jsonl (one line per sampled response), tb/, checkpoints/ and model/.",
    )
    r.add_argument("--out", required=True, help="run directory")
    r.add_argument("--config", help="YAML file of RLRunConfig fields")
    r.add_argument("--preset", help="micro | tiny (from-scratch model on CPU) | qwen1.5b (the study's GRPO); default tiny")
    r.add_argument("--algo", choices=["grpo", "ppo"], help="algorithm (default grpo)")
    r.add_argument("--init", help="SFT run directory, model directory or hub id to start from")
    r.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None, help="train a LoRA adapter and merge it")
    r.add_argument("--env", help="environment id (default ffreason/Mixed-v0)")
    r.add_argument("--env-kwargs", type=_json_dict, help='gymnasium.make kwargs as JSON, e.g. \'{"min_steps": 6, "max_steps": 9}\'')
    r.add_argument("--format-penalty", type=float, help="reward: subtract this for a response outside the grammar")
    r.add_argument("--process-weight", type=float, help="reward: add this times the fraction of correct steps")
    r.add_argument("--prompts", type=int, help="distinct training problems (default 1024)")
    r.add_argument("--prompt-seed", type=int, help="env problem stream of the training prompts")
    r.add_argument("--max-steps", type=int, help="optimizer steps")
    r.add_argument("--num-generations", type=int, help="completions per prompt (group size)")
    r.add_argument("--per-device-train-batch-size", type=int, help="completions per optimizer step and device")
    r.add_argument("--gradient-accumulation-steps", type=int)
    r.add_argument("--learning-rate", type=float)
    r.add_argument("--beta", type=float, help="KL coefficient to the initial policy (0: no reference model)")
    r.add_argument("--temperature", type=float, help="sampling temperature of the rollouts")
    r.add_argument("--max-completion-length", type=int, help="generation budget in tokens")
    r.add_argument("--loss-type", help="TRL loss: grpo | dr_grpo | dapo | bnpo | ...")
    r.add_argument("--scale-rewards", help="group | batch | none")
    r.add_argument("--epsilon", type=float, help="clip range of the policy ratio")
    r.add_argument("--num-iterations", type=int, help="updates per generated batch")
    r.add_argument("--use-vllm", action=argparse.BooleanOptionalAction, default=None, help="generate with vLLM (GPU)")
    r.add_argument("--vllm-mode", choices=["colocate", "server"],
                   help="colocate: vLLM on each training GPU; server: a separate `trl vllm-serve`")
    r.add_argument("--vllm-server-base-url", help="server mode: the vllm-serve address (default localhost:8000)")
    r.add_argument("--report-to", nargs="+", help="extra loggers (wandb, ...); metrics.jsonl and TensorBoard always")
    r.add_argument("--logging-steps", type=int)
    r.add_argument("--save-steps", type=int, help="checkpoint every N steps")
    r.add_argument("--seed", type=int)
    r.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    r.add_argument("--eval-every", type=int, help="evaluate every N steps (0: never)")
    r.add_argument("--eval-ranges", type=steps_range_arg, nargs="+", metavar="MIN-MAX",
                   help="validation sets by step count (default 2-5 6-9)")
    r.add_argument("--eval-n", type=int, help="problems per validation set")
    r.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                   help="continue from the last checkpoint in RUN_DIR/checkpoints")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.set_defaults(func=_cmd_rl)

    e = sub.add_parser(
        "eval", help="accuracy, pass@k and strategy use of a trained model",
        description="Evaluate RUN_DIR/model on a fixed validation set: greedy accuracy overall / per kind / per step "
                    "count, strategy fractions per kind, accuracy per (kind, strategy); with --samples k also "
                    "pass@k and sampled strategy fractions. Writes JSON and prints a table.",
    )
    e.add_argument("run_dir", help="a run directory (with model/) or a model directory")
    e.add_argument("--steps-range", type=steps_range_arg, default=(6, 9), metavar="N|MIN-MAX",
                   help="ops per problem of the validation set (default 6-9)")
    e.add_argument("-n", type=int, default=500, help="validation problems (default %(default)s)")
    e.add_argument("--samples", type=int, default=0, help="sampled completions per problem for pass@k (default 0)")
    e.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default %(default)s)")
    e.add_argument("--max-new-tokens", type=int, default=None, help="generation budget (default: fits the longest reference trace)")
    e.add_argument("--batch-size", type=int, default=64, help="sequences per generate call (default %(default)s)")
    e.add_argument("--p", type=int, default=None, help="prime (default: the run's)")
    e.add_argument("--problem", type=_json_dict, default=None, help="extra ProblemConfig fields as JSON")
    e.add_argument("--out", default=None, help="report path (default RUN_DIR/eval_MIN-MAX.json)")
    e.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    e.set_defaults(func=_cmd_eval)
    if more_commands is not None:
        more_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

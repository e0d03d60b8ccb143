"""What every RL algorithm shares: run config and presets, the environment bridge, strategy logging, evaluation.

An algorithm is one module with a class built from an :class:`RLRunConfig`
that subclasses :class:`RLRun` and implements ``_train``; it is registered in
:data:`ALGORITHMS` and built by :func:`make_trainer`. Prompts, rewards,
strategy labels, periodic evaluation, metrics files and the final checkpoint
live here once, so GRPO and PPO cannot drift apart.

Rewards come from the environment itself: each completion is scored by
``env.reset(options={"problem": p})`` + ``env.step(text)``, the same call a
user's own loop makes, and ``env.verdict`` carries the strategy label.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ffreason_env import ENV_IDS, Problem, ProblemConfig
from ffreason_env.config import check_int

from .settings import load_yaml, to_dict

__all__ = [
    "RLRunConfig",
    "RL_PRESETS",
    "ALGORITHMS",
    "make_trainer",
    "EnvScorer",
    "RLRun",
    "prompt_rows",
    "flatten",
]


@dataclass
class RLRunConfig:
    """Every knob of an RL run. TRL's names where TRL has the knob; PPO's own below them."""

    out: str = ""
    """Run directory (required)."""
    algo: str = "grpo"
    preset: str = "tiny"
    init: str = ""
    """SFT run directory, model directory or hub id to start from (required)."""
    lora: bool = False
    """Train a LoRA adapter (r=64, alpha=128, dropout 0.05) on top of ``init`` and merge it at the end."""
    env: str = "ffreason/Mixed-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of ``gymnasium.make(env)``: ProblemConfig fields, ``format_penalty``, ``process_weight``."""
    prompts: int = 1024
    """Distinct training problems (items 0..prompts-1 of the env's stream); the study used 1024."""
    prompt_seed: int = 1
    """The env's ``problem_seed`` for training prompts (SFT data uses 0, validation ``VALIDATION_SEED``)."""
    # --- TRL GRPOConfig names
    max_steps: int = 200
    num_generations: int = 8
    per_device_train_batch_size: int = 32
    """Completions per optimizer step and device (prompts per step = this / num_generations)."""
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    beta: float = 0.05
    """KL coefficient to the initial policy (0 skips the reference model)."""
    temperature: float = 0.7
    top_p: float = 1.0
    max_completion_length: int = 512
    """Generation budget in tokens: also the study's lever for selection (a long search does not fit)."""
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    num_iterations: int = 1
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    """``colocate``: vLLM shares each training process's GPU; ``server``: a separate ``trl vllm-serve`` generates."""
    vllm_gpu_memory_utilization: float = 0.3
    vllm_server_base_url: str = ""
    """Server mode: the ``trl vllm-serve`` address (e.g. ``http://10.0.0.5:8000``); empty means localhost:8000."""
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """Extra TRL/transformers loggers (``wandb``, ...); metrics.jsonl and TensorBoard are always written."""
    logging_steps: int = 1
    save_steps: int = 25
    seed: int = 0
    bf16: bool = False
    # --- PPO's own (trainers/ppo.py)
    gamma: float = 1.0
    lam: float = 0.95
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    ppo_epochs: int = 2
    num_mini_batches: int = 2
    whiten_advantages: bool = True
    # --- evaluation and run control
    eval_every: int = 25
    """Evaluate on every ``eval_ranges`` set each N optimizer steps (and before the first, and at the end); 0: never."""
    eval_ranges: list[list[int]] = field(default_factory=lambda: [[2, 5], [6, 9]])
    eval_n: int = 200
    eval_batch_size: int = 64
    eval_max_new_tokens: int = 0
    """Generation budget of the evaluations; 0: ``max_completion_length``, the budget the policy trains under
    (a search that does not fit it fails in evaluation as in training; ``ffreason eval`` has no such cap)."""
    resume: bool = False
    """Continue from the last checkpoint in ``RUN_DIR/checkpoints``."""
    threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        self.eval_ranges = [list(r) for r in self.eval_ranges]

    def validate(self, num_processes: int = 1) -> None:
        """Raise ``ValueError`` naming the first bad field; called before any model is loaded.

        ``num_processes``: data-parallel processes; the batch that ``num_generations`` must divide is all of theirs.
        """
        if not self.out:
            raise ValueError("out: a run directory is required")
        if not self.init:
            raise ValueError("init: the model to start from is required (an SFT run directory or a hub id)")
        if self.algo not in ALGORITHMS:
            raise ValueError(f"algo: {self.algo!r} is not one of {sorted(ALGORITHMS)}")
        if self.env not in ENV_IDS:
            raise ValueError(f"env: unknown environment id {self.env!r}; known: {', '.join(ENV_IDS)}")
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs: expected a mapping, got {self.env_kwargs!r}")
        for name in ("prompts", "max_steps", "num_generations", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "max_completion_length", "num_iterations", "logging_steps",
                     "save_steps", "eval_n", "eval_batch_size", "ppo_epochs", "num_mini_batches"):
            check_int(name, getattr(self, name), 1, 2**31 - 1)
        check_int("eval_max_new_tokens", self.eval_max_new_tokens, 0, 2**31 - 1)
        if self.num_generations < 2:
            raise ValueError(f"num_generations: a group needs at least 2 completions, got {self.num_generations}")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * num_processes
        if batch % self.num_generations:
            raise ValueError(
                f"num_generations: {self.num_generations} does not divide the batch of {batch} completions "
                f"(per_device_train_batch_size x gradient_accumulation_steps x {num_processes} process(es))"
            )
        if self.per_device_train_batch_size % self.num_mini_batches:
            raise ValueError(f"num_mini_batches: {self.num_mini_batches} does not divide "
                             f"per_device_train_batch_size {self.per_device_train_batch_size}")
        for name in ("learning_rate", "temperature", "top_p", "epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        for name in ("beta", "weight_decay", "vf_coef", "cliprange_value", "eval_every", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma/lam: expected in [0, 1], got gamma={self.gamma} lam={self.lam}")
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"vllm_mode: {self.vllm_mode!r} is not 'colocate' or 'server'")
        for r in self.eval_ranges:
            if len(r) != 2 or not 1 <= r[0] <= r[1]:
                raise ValueError(f"eval_ranges: each range is [min_steps, max_steps] with 1 <= min <= max, got {r}")
        make_env(self)  # bad env kwargs fail here, with the env's own message

    def env_kwargs_full(self) -> dict[str, Any]:
        return {"problem_seed": self.prompt_seed, **self.env_kwargs}


RL_PRESETS: dict[str, dict[str, Any]] = {
    "micro": dict(
        max_steps=4, num_generations=4, per_device_train_batch_size=8, learning_rate=1e-4, beta=0.0, temperature=1.0,
        max_completion_length=48, save_steps=2, eval_every=0, eval_n=16, prompts=64,
    ),
    "tiny": dict(
        max_steps=200, num_generations=8, per_device_train_batch_size=64, learning_rate=1e-4, beta=0.0,
        temperature=1.0, max_completion_length=96, loss_type="grpo", scale_rewards="group", save_steps=50,
        eval_every=25, eval_n=200, prompts=1024,
    ),
    "qwen1.5b": dict(
        lora=True, max_steps=500, num_generations=8, per_device_train_batch_size=32, learning_rate=1e-5, beta=0.05,
        temperature=0.7, max_completion_length=1024, loss_type="grpo", scale_rewards="group", save_steps=25,
        eval_every=25, eval_n=500, prompts=1024, bf16=True, use_vllm=True, vllm_mode="colocate",
    ),
}
"""``qwen1.5b`` is the study's GRPO (LoRA, batch 32, group 8, beta 0.05, temperature 0.7, lr 1e-5,
checkpoints every 25 steps, vLLM colocate); ``tiny`` is what the from-scratch CPU model needs (lr 1e-4,
no KL, temperature 1, a 96-token budget); ``micro`` is for smoke tests."""

ALGORITHMS: dict[str, str] = {"grpo": "trainers.grpo:GRPORun", "ppo": "trainers.ppo:PPORun"}
"""Algorithm name -> ``module:class``; a new algorithm is one module and one line here."""


def make_trainer(algo: str, config: RLRunConfig) -> "RLRun":
    """The run object of ``algo`` (``train()``, ``evaluate()``), built and checked before any training."""
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: {algo!r} is not one of {sorted(ALGORITHMS)}")
    config.algo = algo
    module, name = ALGORITHMS[algo].split(":")
    return getattr(importlib.import_module(module), name)(config)


def make_env(cfg: RLRunConfig):
    import gymnasium as gym

    import ffreason_env  # noqa: F401  (registers the ids)

    try:
        return gym.make(cfg.env, **cfg.env_kwargs_full())
    except (TypeError, ValueError) as e:
        raise ValueError(f"env_kwargs: {e}") from None


def prompt_rows(env, n: int) -> list[dict[str, Any]]:
    """Items 0..n-1 of the env's problem stream as rows: chat prompt, serialized problem, index, kind."""
    rows = []
    for i in range(n):
        prompt, info = env.reset(options={"index": i})
        rows.append({
            "prompt": [{"role": "user", "content": prompt}],
            "problem": json.dumps(info["problem"]),
            "index": i,
            "kind": info["problem_kind"],
        })
    return rows


class EnvScorer:
    """Scores completions through the environment's own ``step`` and keeps their verdicts."""

    def __init__(self, env) -> None:
        self.env = env

    def score(self, problems: Sequence[Problem], texts: Sequence[str]):
        """``(rewards, verdicts)``, one of each per ``(problem, text)`` pair."""
        rewards, verdicts = [], []
        for problem, text in zip(problems, texts, strict=True):
            self.env.reset(options={"problem": problem})
            _, reward, _, _, _ = self.env.step(text)
            rewards.append(float(reward))
            verdicts.append(self.env.unwrapped.verdict)
        return rewards, verdicts


def flatten(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    """Plain metric names from :func:`trainers.evaluation.summarize`: ``{prefix}/{kind}/strategy/forward`` etc."""
    out = {f"{prefix}/{k}": summary[k] for k in ("accuracy", "aligned", "mean_tokens") if k in summary}
    for kind, b in summary.get("per_kind", {}).items():
        out[f"{prefix}/{kind}/accuracy"] = b["accuracy"]
        out[f"{prefix}/{kind}/aligned"] = b["aligned"]
        for s, frac in b["strategy"].items():
            out[f"{prefix}/{kind}/strategy/{s}"] = frac
        for s, block in b["accuracy_by_strategy"].items():
            out[f"{prefix}/{kind}/accuracy_by_strategy/{s}"] = block["accuracy"]
    for steps, b in summary.get("per_steps", {}).items():
        out[f"{prefix}/steps/{steps}/accuracy"] = b["accuracy"]
    return out


class RLRun:
    """Loads the policy, the env, the prompts and the validation sets; evaluates; saves. Subclasses train.

    Under ``accelerate launch`` every process builds one; only the main process (rank 0) writes files:
    config, metrics, TensorBoard, evaluations, the final model and summary, and the completions of every
    process, which :meth:`score` gathers to it.
    """

    multi_process = False
    """Whether the algorithm runs data-parallel under ``accelerate launch`` (GRPO through TRL does)."""

    def __init__(self, cfg: RLRunConfig) -> None:
        import torch
        import yaml
        from accelerate import PartialState
        from torch.utils.tensorboard import SummaryWriter
        from transformers import set_seed

        from .evaluation import validation_set
        from .models import STUDY_LORA, is_local_path, load_model, position_coupling, resolve_model_dir
        from .runlog import MetricsLog
        from .tokenizer import missing_words

        state = PartialState(cpu=not torch.cuda.is_available())  # the trainer's own state, built the same way
        self.state = state
        self.rank, self.num_processes, self.is_main = state.process_index, state.num_processes, state.is_main_process
        cfg.validate(self.num_processes)
        self.cfg = cfg
        if self.num_processes > 1 and not self.multi_process:
            raise ValueError(f"algo: {cfg.algo} runs in one process; start it without accelerate launch, "
                             f"or use --algo grpo for data-parallel runs")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        set_seed(cfg.seed)
        self.env = make_env(cfg)
        self.problem_config: ProblemConfig = self.env.unwrapped.config
        try:
            self.init_dir = resolve_model_dir(cfg.init)
        except FileNotFoundError as e:  # name the option the user gave
            raise FileNotFoundError(f"init: {str(e).removeprefix('model: ')}") from None
        self.device = str(state.device) if torch.cuda.is_available() else None
        try:
            self.model, self.tokenizer = load_model(
                self.init_dir, lora=STUDY_LORA if cfg.lora else None, dtype="bfloat16" if cfg.bf16 else "auto",
                device=self.device if not cfg.use_vllm else None,
            )
        except OSError as e:
            if is_local_path(cfg.init):
                raise
            raise FileNotFoundError(f"init: {cfg.init!r} is not a local directory and could not be loaded from the "
                                    f"hub: {str(e).splitlines()[0]}") from None
        missing = missing_words(self.tokenizer, self.problem_config)
        if missing:
            raise ValueError(f"init: the tokenizer of {cfg.init!r} cannot encode task words {missing[:10]}")
        if cfg.use_vllm and position_coupling(self.model) is not None:
            raise ValueError(f"use_vllm: {cfg.init!r} has coupled position ids, which vLLM does not compute; "
                             "generate with transformers (use_vllm: false)")
        if not cfg.resume and os.path.exists(os.path.join(cfg.out, "metrics.jsonl")):
            raise ValueError(f"out: {cfg.out!r} already holds a run; continue it with --resume or choose a new directory")
        self.checkpoint_dir = os.path.join(cfg.out, "checkpoints")
        if cfg.resume:
            _check_resume_settings(cfg)
        self.resume_step = self._resume_step() if cfg.resume else 0
        self.metrics = MetricsLog(cfg.out)
        self.completions = MetricsLog(cfg.out, "completions.jsonl")
        self.logged_eval_steps: set[int] = set()
        """Evaluations the killed run already logged at or before the resume step (not redone)."""
        self.tb = None
        if self.is_main:
            with open(os.path.join(cfg.out, "config.yaml"), "w") as f:
                yaml.safe_dump({"command": "rl", **to_dict(cfg)}, f, sort_keys=False)
            if self.resume_step:  # lines past the checkpoint were written by the killed run and are redone
                kept = self.metrics.truncate_after(self.resume_step)
                self.logged_eval_steps = {r["step"] for r in kept if r["phase"] == "eval"}
                self.completions.truncate_after(self.resume_step)
            self.tb = SummaryWriter(os.path.join(cfg.out, "tb"))
        self.eval_at_start = bool(cfg.eval_every) and self.resume_step % cfg.eval_every == 0 \
            and self.resume_step not in self.logged_eval_steps
        """Evaluate before the first step: always in a fresh run, in a resumed one if that evaluation is due and missing."""
        self.scorer = EnvScorer(self.env)
        self.rows = prompt_rows(self.env, cfg.prompts)
        eval_base = self.problem_config.replace(max_label_offset=0)
        self.eval_sets = {
            f"eval_{lo}-{hi}": validation_set(eval_base.replace(min_steps=lo, max_steps=hi), cfg.eval_n)
            for lo, hi in cfg.eval_ranges
        }

    # --- shared by the algorithms

    def score(self, step: int, problems: Sequence[Problem], indices: Sequence[int], texts: Sequence[str],
              num_tokens: Sequence[int]) -> tuple[list[float], list, dict[str, float]]:
        """Rewards and verdicts of this process's completions, and the strategy metrics of the whole batch
        (``train/{kind}/strategy/{s}``, accuracy per kind and per (kind, strategy)).

        Every process calls it at the same point of a step; the completions of all processes are gathered, so the
        main process writes one ``completions.jsonl`` line for each (``slot``: position in the step's batch, in
        process order; ``rank``: the process that sampled it) and every process returns the same metrics.
        """
        from .evaluation import summarize

        rewards, verdicts = self.scorer.score(problems, texts)
        batch = [(self.rank, int(i), p, t, v, r, int(n))
                 for i, p, t, v, r, n in zip(indices, problems, texts, verdicts, rewards, num_tokens, strict=True)]
        if self.num_processes > 1:
            from accelerate.utils import gather_object

            batch = gather_object(batch)
        if self.is_main:
            for slot, (rank, index, problem, text, verdict, reward, n) in enumerate(batch):
                self.completions.write(step, "train", {
                    "slot": slot, "rank": rank, "index": index, "kind": problem.kind, "num_steps": problem.num_steps,
                    "strategy": verdict.strategy, "correct": verdict.correct, "reward": reward, "num_tokens": n,
                    "completion": text,
                })
        summary = summarize((problem, verdict, n) for _, _, problem, _, verdict, _, n in batch)
        return rewards, verdicts, flatten(summary, "train")

    def log(self, step: int, phase: str, metrics: dict[str, float]) -> None:
        if not self.is_main:
            return
        self.metrics.write(step, phase, metrics)
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, step)
        self.tb.flush()

    def evaluate(self, step: int | None = None, model=None) -> dict[str, Any]:
        """Greedy evaluation on every validation set; logged under ``eval_{lo}-{hi}/...`` at ``step``."""
        from .evaluation import EvalSettings, evaluate

        model = model if model is not None else self.model
        was_training = model.training
        model.eval()
        reports, flat = {}, {}
        for name, problems in self.eval_sets.items():
            settings = EvalSettings(n=len(problems), batch_size=self.cfg.eval_batch_size,
                                    max_new_tokens=self.cfg.eval_max_new_tokens or self.cfg.max_completion_length)
            reports[name] = evaluate(model, self.tokenizer, problems, settings, progress=False)
            flat.update(flatten(reports[name]["greedy"], name))
        if was_training:
            model.train()
        if step is not None:
            self.log(step, "eval", flat)
        return reports

    def _resume_step(self) -> int:
        last = last_checkpoint(self.checkpoint_dir)
        if last is None:
            raise FileNotFoundError(f"resume: no checkpoint in {self.checkpoint_dir!r}")
        return int(last.rsplit("-", 1)[1])

    def finish(self, model, wall: float, steps: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Main process: save ``RUN_DIR/model`` (LoRA merged), evaluate it, write ``rl_summary.json``."""
        from .runlog import write_json

        summary: dict[str, Any] = {"algo": self.cfg.algo, "steps": steps, "train_seconds": wall,
                                   "seconds_per_step": wall / max(1, steps - self.resume_step), **(extra or {})}
        if not self.is_main:
            return summary
        if self.cfg.lora:
            model = model.merge_and_unload()
        model_dir = os.path.join(self.cfg.out, "model")
        model.save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
        if self.cfg.eval_every:  # a run killed after logging this evaluation evaluates again without logging it
            reports = self.evaluate(None if steps in self.logged_eval_steps else steps, model)
            summary["eval"] = {name: r["greedy"]["accuracy"] for name, r in reports.items()}
        write_json(os.path.join(self.cfg.out, "rl_summary.json"), summary)
        self.tb.close()
        return summary

    def train(self) -> dict[str, Any]:
        start = time.perf_counter()
        model, steps, extra = self._train()
        summary = self.finish(model, time.perf_counter() - start, steps, extra)
        self.state.wait_for_everyone()  # under accelerate launch the others wait for the main process's save
        return summary

    def _train(self):  # pragma: no cover - every algorithm overrides it
        raise NotImplementedError


RESUME_MAY_CHANGE = frozenset({"out", "resume", "threads", "max_steps", "save_steps", "logging_steps", "report_to",
                               "eval_batch_size", "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization",
                               "vllm_server_base_url"})
"""Settings a resumed run may change: where it lives (a copied or moved run directory), how long it runs, how it
saves, logs and generates; every other one shapes what is learnt or measured, and a resumed run that changed it
would mix two experiments in one directory."""


def _check_resume_settings(cfg: RLRunConfig) -> None:
    import yaml

    path = os.path.join(cfg.out, "config.yaml")
    if not os.path.exists(path):
        return
    before = load_yaml(path)
    now = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))  # the same types as the file's
    changed = sorted(k for k in now if k not in RESUME_MAY_CHANGE and k in before and before[k] != now[k])
    if changed:
        k = changed[0]
        raise ValueError(f"resume: {cfg.out!r} was run with {k}={before[k]!r}, not {now[k]!r}"
                         + (f" (also changed: {', '.join(changed[1:])})" if changed[1:] else "")
                         + "; resume with the run's settings (only how long it runs, saves, logs and generates may "
                           "change) or start a new run directory")


def last_checkpoint(directory: str) -> str | None:
    """The complete ``checkpoint-N`` sub-directory with the largest N, or None.

    Complete means it holds ``trainer_state.json``, which transformers' Trainer and our PPO write last: a run
    killed while saving leaves a partial directory that resuming must skip.
    """
    if not os.path.isdir(directory):
        return None
    steps = [int(d.rsplit("-", 1)[1]) for d in os.listdir(directory)
             if d.startswith("checkpoint-") and d.rsplit("-", 1)[1].isdigit()
             and os.path.isfile(os.path.join(directory, d, "trainer_state.json"))]
    return os.path.join(directory, f"checkpoint-{max(steps)}") if steps else None

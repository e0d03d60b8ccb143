"""What every RL algorithm shares: loading the policy, scoring and logging completions, evaluating, saving.

An algorithm is a config class in :mod:`trainers.rl_config` and a module with
a subclass of :class:`RLRun` that implements ``_train``; :func:`make_trainer`
builds the run its config names. Prompts, rewards, strategy labels, periodic
evaluation, metrics files and the final checkpoint live here once, so GRPO and
PPO cannot drift apart. Problems come from the environment
(:mod:`trainers.envbridge`) and are looked up by index, never re-parsed.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any, Sequence

from ffreason_env import ProblemConfig, render_prompt

from .budget import ratio_budget
from .envbridge import TrainingProblems, make_env, score
from .probes import PROBES_FILE, probe_metrics, profiles
from .rl_config import RESUME_MAY_CHANGE, RLRunConfig
from .runlog import CHECKPOINTS, COMPLETIONS_FILE, CONFIG_FILE, METRICS_FILE, check_resume_settings, last_checkpoint
from .settings import save_config, to_dict

__all__ = ["make_trainer", "RLRun"]


def make_trainer(config: RLRunConfig) -> "RLRun":
    """The run object of ``config``'s algorithm (``train()``, ``evaluate()``), built and checked before any
    training."""
    module, name = type(config).run_class.split(":")
    return getattr(importlib.import_module(module), name)(config)


class RLRun:
    """Loads the policy, the env, the prompts and the validation sets; evaluates; saves. Subclasses train.

    Under ``accelerate launch`` every process builds one; only the main process (rank 0) writes files:
    config, metrics, TensorBoard, evaluations, the final model and summary, and the completions of every
    process, which :meth:`score` gathers to it.
    """

    multi_process = False
    """Whether the algorithm runs data-parallel under ``accelerate launch`` (GRPO through TRL does)."""

    @staticmethod
    def process_group_kwargs(cfg: RLRunConfig) -> dict[str, Any]:
        """Arguments of ``torch.distributed.init_process_group`` (a data-parallel algorithm's timeout)."""
        return {}

    def __init__(self, cfg: RLRunConfig) -> None:
        import torch
        from accelerate import PartialState
        from torch.utils.tensorboard import SummaryWriter
        from transformers import set_seed

        from .evaluation import eval_set_name, validation_set
        from .models import STUDY_LORA, is_local_path, load_model, position_coupling, resolve_model_dir
        from .runlog import MetricsLog
        from .tokenizer import missing_words

        # the trainer's own state, built the same way, before any trainer: the process group is created here, with the
        # timeout the algorithm sets (torch's default, 10 minutes on GPUs, would kill a rank that waits on a save)
        state = PartialState(cpu=not torch.cuda.is_available(), **self.process_group_kwargs(cfg))
        self.state = state
        self.rank, self.num_processes, self.is_main = state.process_index, state.num_processes, state.is_main_process
        cfg.validate(self.num_processes)
        self.cfg = cfg
        if self.is_main:  # per_device_train_batch_size is per process: say what a step is, for every launch
            batch = cfg.batch(self.num_processes)
            print(f"{type(cfg).algo}: {batch} completions per optimizer step, {batch // cfg.num_generations} "
                  f"problems x {cfg.num_generations} samples ({cfg.batch_description(self.num_processes)})")
        if self.num_processes > 1 and not self.multi_process:
            raise ValueError(f"algo: {type(cfg).algo} runs in one process; start it without accelerate launch, "
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
        use_vllm = getattr(cfg, "use_vllm", False)
        try:
            self.model, self.tokenizer = load_model(
                self.init_dir, lora=STUDY_LORA if cfg.lora else None, dtype="bfloat16" if cfg.bf16 else "auto",
                device=self.device if not use_vllm else None,
            )
        except OSError as e:
            if is_local_path(cfg.init):
                raise
            raise FileNotFoundError(f"init: {cfg.init!r} is not a local directory and could not be loaded from the "
                                    f"hub: {str(e).splitlines()[0]}") from None
        # the budget in the model's tokens, before config.yaml is written and a resume compared with it
        if cfg.budget_ratio:
            cfg.max_completion_length = ratio_budget(self.tokenizer, self.problem_config, cfg.budget_ratio)
        if cfg.min_budget_ratio:
            cfg.max_completion_length = max(cfg.max_completion_length, ratio_budget(
                self.tokenizer, self.problem_config, cfg.min_budget_ratio))
        missing = missing_words(self.tokenizer, self.problem_config)
        if missing:
            raise ValueError(f"init: the tokenizer of {cfg.init!r} cannot encode task words {missing[:10]}")
        if use_vllm and position_coupling(self.model) is not None:
            raise ValueError(f"use_vllm: {cfg.init!r} has coupled position ids, which vLLM does not compute; "
                             "generate with transformers (use_vllm: false)")
        if not cfg.resume and os.path.exists(os.path.join(cfg.out, METRICS_FILE)):
            raise ValueError(f"out: {cfg.out!r} already holds a run; continue it with --resume or choose a new directory")
        self.checkpoint_dir = os.path.join(cfg.out, CHECKPOINTS)
        if cfg.resume:
            check_resume_settings(cfg.out, to_dict(cfg), RESUME_MAY_CHANGE)
        self.resume_step = self._resume_step() if cfg.resume else 0
        self.metrics = MetricsLog(cfg.out)
        self.completions = MetricsLog(cfg.out, COMPLETIONS_FILE)
        self.logged_eval_steps: set[int] = set()
        """Evaluations the killed run already logged at or before the resume step (not redone)."""
        self.tb = None
        if self.is_main:
            save_config(os.path.join(cfg.out, CONFIG_FILE), "rl", cfg)
            if self.resume_step:  # lines past the checkpoint were written by the killed run and are redone
                kept = self.metrics.truncate_after(self.resume_step)
                self.logged_eval_steps = {r["step"] for r in kept if r["phase"] == "eval"}
                self.completions.truncate_after(self.resume_step)
            self.tb = SummaryWriter(os.path.join(cfg.out, "tb"))
        self.eval_at_start = bool(cfg.eval_every) and self.resume_step % cfg.eval_every == 0 \
            and self.resume_step not in self.logged_eval_steps
        """Evaluate before the first step: always in a fresh run, in a resumed one if that evaluation is due and missing."""
        self.curriculum = None
        """The accuracy-driven curriculum (trainers/curriculum.py) when ``cfg.curriculum`` names levels."""
        if cfg.curriculum:
            from .curriculum import Curriculum

            levels = [TrainingProblems.from_env(make_env(cfg, self.problem_config.replace(min_steps=lo, max_steps=hi)),
                                                cfg.prompts) for lo, hi in cfg.curriculum]
            self.train_problems = sum(levels[1:], levels[0])
            self.curriculum = Curriculum(cfg.curriculum, cfg.curriculum_threshold, cfg.curriculum_window, cfg.prompts)
            if self.resume_step:  # the state the killed run had at its checkpoint, from what it logged
                self.curriculum.replay(r for _, r in self.metrics.read(self.resume_step))
        else:
            self.train_problems = TrainingProblems.from_env(self.env, cfg.prompts)
        eval_base = self.problem_config.without_offsets()
        self.eval_sets = {
            eval_set_name(lo, hi): validation_set(eval_base.replace(min_steps=lo, max_steps=hi), cfg.eval_n)
            for lo, hi in cfg.eval_ranges
        }
        self.probe_set = validation_set(eval_base, cfg.probe_n) if cfg.eval_every and cfg.probe_n else []
        """The per-problem probe set (trainers/probes.py), sampled at every evaluation."""
        self.probes = MetricsLog(cfg.out, PROBES_FILE)
        kept_probes = self.probes.truncate_after(self.resume_step) if self.is_main and self.resume_step else []
        self.first_profiles = kept_probes[0]["profiles"] if kept_probes else None
        """The probe set at the run's first evaluation, the origin of every transition."""

    # --- shared by the algorithms

    def score(self, step: int, indices: Sequence[int], texts: Sequence[str],
              num_tokens: Sequence[int]) -> tuple[list[float], list, dict[str, float]]:
        """Rewards and verdicts of this process's completions (of training problems ``indices``), and the strategy
        metrics of the whole batch (``train/{kind}/strategy/{s}``, accuracy per kind and per (kind, strategy)).

        Every process calls it at the same point of a step; the completions of all processes are gathered once, so
        the main process writes one ``completions.jsonl`` line for each (``slot``: position in the step's batch, in
        process order; ``rank``: the process that sampled it) and every process returns the same metrics.
        """
        from .evaluation import flatten, summarize

        problems = [self.train_problems.problems[i] for i in indices]
        rewards, verdicts = score(self.env, problems, texts)
        batch = [(self.rank, int(i), t, v, r, int(n))
                 for i, t, v, r, n in zip(indices, texts, verdicts, rewards, num_tokens, strict=True)]
        batch = self._gather(batch)
        records, lines = [], []
        for slot, (rank, index, text, verdict, reward, n) in enumerate(batch):
            problem = self.train_problems.problems[index]
            records.append((problem, verdict, n))
            if self.is_main:
                lines.append({
                    "slot": slot, "rank": rank, "index": index, "kind": problem.kind, "num_steps": problem.num_steps,
                    "strategy": verdict.strategy, "correct": verdict.correct, "reward": reward, "num_tokens": n,
                    "completion": text,
                })
        if self.is_main:
            self.completions.write_many(step, "train", lines)
        metrics = flatten(summarize(records), "train")
        metrics.update(self.reward_signal([b[1] for b in batch], [p.kind for p, _, _ in records],
                                          [v.strategy for _, v, _ in records], [b[4] for b in batch]))
        if self.curriculum:  # every process sees the same gathered batch, so all move at the same step
            metrics.update(self.curriculum.observe(step, [b[1] for b in batch], metrics["train/accuracy"]))
        return rewards, verdicts, metrics

    def reward_signal(self, indices: list[int], kinds: list[str], strategies: list[str],
                      rewards: list[float]) -> dict[str, float]:
        """Where the batch's gradient goes (:func:`trainers.probes.group_signal`), for an algorithm whose advantages
        follow from the rewards alone; PPO's follow from its values and are measured where it computes them."""
        return {}

    def log(self, step: int, phase: str, metrics: dict[str, float]) -> None:
        if not self.is_main:
            return
        self.metrics.write(step, phase, metrics)
        for k, v in metrics.items():
            self.tb.add_scalar(k, v, step)
        self.tb.flush()

    def evaluate(self, step: int | None = None, model=None) -> dict[str, Any]:
        """Greedy evaluation on every validation set; logged under ``eval_{lo}-{hi}/...`` at ``step``.

        Every process calls it at the same point: each decodes its share of every set (a LoRA policy with its
        adapter merged into a copy, or through the trainer's vLLM engine, :meth:`eval_engine`) and the main process
        summarizes them all."""
        from .evaluation import flatten, greedy_records, summarize

        engine, share = self.eval_engine()
        policy = model if model is not None else self.model
        was_training = policy.training
        model = policy
        if engine is None and hasattr(policy, "merge_and_unload"):  # a PEFT model: unmerged LoRA decodes ~2x slower
            import copy

            model = copy.deepcopy(policy).merge_and_unload()
        model.eval()
        reports, flat = {}, {}
        for name, problems in self.eval_sets.items():
            max_new = self.cfg.eval_max_new_tokens or self.cfg.max_completion_length
            records = greedy_records(model, self.tokenizer, share(problems), max_new, self.cfg.eval_batch_size,
                                     engine=engine, style=self.cfg.style(), answer_mode=self.cfg.answer_mode)
            records = self._gather(records)
            reports[name] = {"max_new_tokens": max_new, "greedy": summarize(records)}
            flat.update(flatten(reports[name]["greedy"], name))
        if self.probe_set and step is not None:
            flat.update(self._probe(step, model, share, engine))
        if was_training:
            policy.train()
        if step is not None:
            self.log(step, "eval", flat)
        return reports

    def _gather(self, items: list) -> list:
        """Every process's ``items``, in process order (this process's alone when there is one)."""
        if self.num_processes == 1:
            return items
        from accelerate.utils import gather_object

        return gather_object(items)

    def _probe(self, step: int, model, share, engine=None) -> dict[str, float]:
        """Sample the probe set as training samples are (temperature, top-p, budget), through the evaluation's
        ``engine`` (the trainer's vLLM where it generates with it) or ``model``, under a random state of its
        own, so a run's training samples are those of the same run without probes; log the profiles to
        ``probes.jsonl`` and return their metrics against the first evaluation's, with the probe set's
        teacher-forced preference (``probe/teacher_forced/...``)."""
        import torch

        from .generation import generate
        from .probes import preference, trace_logprobs

        mine = share(self.probe_set)
        out: dict[str, float] = {}
        if self.cfg.eval_teacher_forced:
            found = self._gather(list(zip(mine, trace_logprobs(model, self.tokenizer, mine, self.cfg.eval_batch_size,
                                                               self.cfg.style()))))
            out = preference([p for p, _ in found], [lp for _, lp in found], "probe/teacher_forced")
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed + step)
            texts = [[c.text for c in cs] for cs in generate(
                model, self.tokenizer, [render_prompt(p, self.cfg.style()) for p in mine],
                num_samples=self.cfg.probe_samples,
                temperature=self.cfg.temperature, top_p=self.cfg.top_p, max_new_tokens=self.cfg.max_completion_length,
                batch_size=self.cfg.eval_batch_size, engine=engine)]
        found = self._gather(profiles(mine, texts, self.cfg.answer_mode))
        if self.first_profiles is None:
            self.first_profiles = found
        if self.is_main:
            self.probes.write(step, "probe", {"profiles": found})
        return {**out, **probe_metrics(self.first_profiles, found)}

    def eval_engine(self):
        """``(engine, share)``: the decoder of evaluations and probes (None: the model's own) and the part of a
        validation set this process decodes (its slice of every ``num_processes``-th problem)."""
        rank, n = self.rank, self.num_processes
        return None, lambda problems: list(problems)[rank::n]

    def _resume_step(self) -> int:
        last = last_checkpoint(self.checkpoint_dir)
        if last is None:
            raise FileNotFoundError(f"resume: no checkpoint in {self.checkpoint_dir!r}")
        return int(last.rsplit("-", 1)[1])

    def finish(self, model, wall: float, steps: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Evaluate the final policy (every process, its share), then, in the main process, save ``RUN_DIR/model``
        (LoRA merged) and write ``rl_summary.json``."""
        from .runlog import write_json

        summary: dict[str, Any] = {"algo": type(self.cfg).algo, "steps": steps, "train_seconds": wall,
                                   "seconds_per_step": wall / max(1, steps - self.resume_step), **(extra or {})}
        if self.curriculum:
            summary["curriculum"] = self.curriculum.summary()
        if self.cfg.eval_every:  # a run killed after logging this evaluation evaluates again without logging it
            reports = self.evaluate(None if steps in self.logged_eval_steps else steps, model)
            summary["eval"] = {name: r["greedy"]["accuracy"] for name, r in reports.items()}
        if not self.is_main:
            return summary
        if self.cfg.lora:
            model = model.merge_and_unload()
        model_dir = os.path.join(self.cfg.out, "model")
        model.save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
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



"""The study's experiments as data: each is a list of stages (SFT arms, RL runs, evaluations) at a named scale.

A stage is one call into the trainers' library (``trainers.sft.run_sft``,
``trainers.rl.make_trainer(algo, cfg).train()``, ``trainers.evaluation.evaluate``)
writing to its own sub-directory ``RUN_DIR/<stage name>``; the summary file that
call writes last marks the stage done, so :mod:`baselines.runner` can skip it on
a rerun. Scales name the trainers' presets (``SFT_PRESETS[...]``,
``RL_PRESETS[...]``) and change only what an experiment needs, so tuning a
trainers preset changes every experiment that uses it.

After-SFT numbers are the RL runs' step-0 evaluation (``eval_every`` is always
on): the same greedy validation sets, with no extra stage.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ffreason_env import ProblemConfig
from ffreason_env.config import check_int
from trainers.rl import RL_PRESETS, RLRunConfig, last_checkpoint, make_trainer
from trainers.settings import merge
from trainers.sft import SFT_PRESETS, SFTRunConfig, run_sft

__all__ = [
    "ARM_ORDER",
    "Scale",
    "SCALES",
    "SFTStage",
    "RLStage",
    "EvalStage",
    "Experiment",
    "EXPERIMENTS",
    "plan",
    "MANIFEST",
    "read_manifest",
]

ARM_ORDER = ("B", "F", "FB")
"""SFT arms in the order of the study's Table 1."""
SFT_STEPS = (2, 5)
"""Every SFT arm is trained on 2-5-step problems, as in the study."""
VALIDATION = [[2, 5], [6, 9]]
"""The study's validation sets (step ranges), evaluated by every RL run."""


@dataclass(frozen=True)
class Scale:
    """Which trainers presets a reproduction starts from, and what every stage changes in them."""

    sft_preset: str
    rl_preset: str
    sft: dict[str, Any] = field(default_factory=dict)
    rl: dict[str, Any] = field(default_factory=dict)
    eval_max_new_tokens: int | None = None
    """Generation budget of evaluation stages (None: the reference traces'); the micro scale's untrained model
    never stops, and a 6-part composition's reference search runs to thousands of tokens."""

    @property
    def eval_n(self) -> int:
        """Problems per evaluation-stage set: the RL runs' ``eval_n``, so every table rests on equal sets."""
        return {**RL_PRESETS[self.rl_preset], **self.rl}.get("eval_n", RLRunConfig.eval_n)


SCALES: dict[str, Scale] = {
    "micro": Scale("micro", "micro", sft=dict(examples=16, threads=1, position_coupling=True),
                   rl=dict(max_steps=1, eval_every=1, eval_n=2, prompts=8, save_steps=1, threads=1),
                   eval_max_new_tokens=32),
    "tiny": Scale("tiny", "tiny",
                  # labels up to 9 in 2-5-step SFT data, so that 6-9-step problems hold no unseen label; position ids
                  # coupled to the step labels, so that every look-up of a longer chain is at a distance seen in
                  # training (FB after RL on 6-9: 0.42 -> 0.96, docs/reproduction.md); 600 steps: FB's loss drops
                  # at steps 250-400 or 300-500+ by the data order, and FB after 500 steps failed on inversion; no
                  # SFT evaluation: the RL runs' step 0 evaluates the same models on the validation sets of the table
                  sft=dict(problem={"max_label_offset": 4}, data_seed=2, examples=19200, position_coupling=True,
                           eval_n=0),
                  # 100 steps: FB's 6-9 greedy was 0.78 at step 50, 0.89 at 75, 0.99 at 100; batches of 8 problems
                  # x 8 samples: with 4 problems most steps had no reward signal and B's RL on 6-9 collapsed
                  # (docs/reproduction.md)
                  rl=dict(max_steps=100, eval_every=50, eval_n=100, save_steps=50)),
    "qwen1.5b": Scale("qwen1.5b", "qwen1.5b"),
}
"""``micro``: seconds, for tests (the micro model, a handful of examples, one RL step). ``tiny``: the
from-scratch model on a CPU. ``qwen1.5b``: the study's Qwen2.5-1.5B-Instruct + LoRA, GRPO with vLLM colocate."""


def _tokens_at_least(cfg: RLRunConfig, floor: int) -> None:
    """Raise the generation budget to ``floor`` (measured in the word-level tokenizer) when the preset's is lower,
    so that every aligned trace of longer RL data still fits: the budget must cut searches, not direct answers."""
    cfg.max_completion_length = max(cfg.max_completion_length, floor)


class _Stage:
    """What the runner needs of every stage: its directory, whether it is done, and how to start it again."""

    name: str
    summary_file: ClassVar[str]

    @property
    def out(self) -> str:
        """The stage's directory: its run config's ``out`` (an evaluation stage names its own)."""
        return self.config.out

    def done(self) -> bool:
        return os.path.exists(os.path.join(self.out, self.summary_file))

    def needs(self) -> list[str]:
        """Names of the stages whose output this one reads (they run first)."""
        return []

    def total_steps(self) -> int | None:
        """Optimizer steps the stage logs to its ``metrics.jsonl`` when it runs to the end (None: it logs none)."""
        return None

    def prepare(self, force: bool) -> str:
        """Make the directory ready for :meth:`run`; return ``"new"``, ``"restarted"`` or ``"resumed"``."""
        if not os.path.exists(self.out):
            return "new"
        shutil.rmtree(self.out)  # a partial run: its metrics would be appended to
        return "restarted"


@dataclass
class SFTStage(_Stage):
    name: str
    config: SFTRunConfig
    arm: str
    """The arm label shown in tables (an SFT arm, or a data variant such as ``with-2part``)."""
    summary_file: ClassVar[str] = "sft_summary.json"

    def describe(self) -> str:
        c = self.config
        extra = f", problem {c.problem}" if c.problem else ""
        return f"SFT arm {c.arm}, GF({c.p}), {c.steps_range[0]}-{c.steps_range[1]} steps, {c.examples} examples{extra}"

    def validate(self) -> None:
        self.config.validate()

    def total_steps(self) -> int:
        return self.config.optimizer_steps

    def run(self) -> None:
        run_sft(self.config)


@dataclass
class RLStage(_Stage):
    name: str
    config: RLRunConfig
    init: str
    """Name of the SFT stage it starts from."""
    arm: str
    data: str
    """Label of the RL data (``2-5``, ``eval75``, ...), the row of the report it feeds."""
    summary_file: ClassVar[str] = "rl_summary.json"

    def describe(self) -> str:
        c = self.config
        return f"{c.algo.upper()} from {self.init} on {c.env} {c.env_kwargs}, {c.max_steps} RL steps"

    def needs(self) -> list[str]:
        return [self.init]

    def total_steps(self) -> int:
        return self.config.max_steps

    def validate(self) -> None:
        self.config.validate()
        if not self.config.eval_every:
            raise ValueError(f"{self.name}: eval_every must be >= 1 (the report reads the RL runs' evaluations)")

    def prepare(self, force: bool) -> str:
        """An interrupted run continues from its last checkpoint (``--resume``), unless forced to start over."""
        self.config.resume = False
        if not force and last_checkpoint(os.path.join(self.out, "checkpoints")) is not None:
            self.config.resume = True
            return "resumed"
        return super().prepare(force)

    def run(self) -> None:
        make_trainer(self.config.algo, self.config).train()


@dataclass
class EvalStage(_Stage):
    """Greedy evaluation of one stage's model on named validation sets (for what the RL runs do not log)."""

    name: str
    model: SFTStage | RLStage
    sets: dict[str, ProblemConfig]
    n: int
    run_dir: str
    max_new_tokens: int | None = None
    """Generation budget; None: the longest reference trace of either strategy plus 25%."""
    summary_file: ClassVar[str] = "eval_summary.json"

    @property
    def out(self) -> str:
        return os.path.join(self.run_dir, self.name)

    def needs(self) -> list[str]:
        return [self.model.name]

    def describe(self) -> str:
        budget = f", at most {self.max_new_tokens} tokens" if self.max_new_tokens else ""
        return f"greedy evaluation of {self.model.name} on {', '.join(self.sets)} ({self.n} problems each{budget})"

    def validate(self) -> None:
        check_int("n", self.n, 1, 2**31 - 1)
        if self.max_new_tokens is not None:
            check_int("max_new_tokens", self.max_new_tokens, 1, 2**31 - 1)
        if not self.sets:
            raise ValueError(f"{self.name}: sets: at least one validation set is required")

    def run(self) -> None:
        import torch

        from trainers.evaluation import EvalSettings, evaluate, validation_set
        from trainers.models import load_model, resolve_model_dir
        from trainers.runlog import write_json

        device = "cuda" if torch.cuda.is_available() else None
        model, tokenizer = load_model(resolve_model_dir(self.model.out), device=device)
        reports = {}
        for set_name, config in self.sets.items():
            report = evaluate(model, tokenizer, validation_set(config, self.n),
                              EvalSettings(n=self.n, max_new_tokens=self.max_new_tokens))
            reports[set_name] = {"problem_config": config.to_dict(), **report}
        write_json(os.path.join(self.out, self.summary_file), {"model": self.model.name, "sets": reports})


Stage = SFTStage | RLStage | EvalStage


@dataclass
class _Builder:
    """Makes the stages of one reproduction: its directory, scale and RL algorithm."""

    run_dir: str
    scale: Scale
    algo: str

    def sft(self, arm: str, name: str | None = None, p: int = 11, problem: dict | None = None) -> SFTStage:
        name = name or arm
        problem = {**self.scale.sft.get("problem", {}), **(problem or {})}

        cfg = merge(SFTRunConfig, SFT_PRESETS[self.scale.sft_preset], self.scale.sft, {
            "preset": self.scale.sft_preset, "out": os.path.join(self.run_dir, "sft", name), "arm": arm,
            "p": p, "problem": problem, "steps_range": SFT_STEPS,
        })
        return SFTStage(f"sft/{name}", cfg, name)

    def rl(self, sft: SFTStage, data: str, env_kwargs: dict[str, Any], env: str = "ffreason/Mixed-v0",
           eval_ranges: list[list[int]] = VALIDATION) -> RLStage:
        cfg = merge(RLRunConfig, RL_PRESETS[self.scale.rl_preset], self.scale.rl, {
            "preset": self.scale.rl_preset, "algo": self.algo, "out": os.path.join(self.run_dir, f"rl-{data}", sft.arm),
            "init": sft.out, "env": env, "env_kwargs": env_kwargs, "eval_ranges": eval_ranges,
        })
        if self.algo == "ppo":
            cfg.use_vllm = False  # PPO samples with transformers only; it would refuse the qwen1.5b preset's vLLM
        return RLStage(f"rl-{data}/{sft.arm}", cfg, sft.name, sft.arm, data)

    def evaluation(self, stage: SFTStage | RLStage, sets: dict[str, ProblemConfig]) -> EvalStage:
        return EvalStage(f"eval/{stage.name}", stage, sets, self.scale.eval_n, self.run_dir,
                         self.scale.eval_max_new_tokens)


def _selection(b: _Builder, p: int = 11) -> list[Stage]:
    """SFT arms F, B, FB on 2-5 steps; RL on 2-5 and on 6-9 steps from each; validation on 2-5 and 6-9."""
    sft = [b.sft(arm, p=p) for arm in ARM_ORDER]
    rl = [b.rl(s, f"{lo}-{hi}", {"p": p, "min_steps": lo, "max_steps": hi}) for lo, hi in ((2, 5), (6, 9)) for s in sft]
    return [*sft, *rl]


def _improvement(b: _Builder) -> list[Stage]:
    """RL on 2-5, 6-9 and 6-15 steps from the same SFT arms; accuracy per step count 2..15 before and after."""
    sft = [b.sft(arm) for arm in ARM_ORDER]
    stages: list[Stage] = [*sft]
    for lo, hi in ((2, 5), (6, 9), (6, 15)):
        for s in sft:
            stage = b.rl(s, f"{lo}-{hi}", {"min_steps": lo, "max_steps": hi}, eval_ranges=[[2, 5], [6, 9], [10, 15]])
            if hi == 15:
                _tokens_at_least(stage.config, 136)  # a direct 15-step trace: 122 tokens
            stages.append(stage)
    return stages


AMPLIFICATION_SHARES = (50, 75, 90)
"""Evaluation share (%) of the RL data in the amplification experiment; the rest is inversion."""


def _amplification(b: _Builder) -> list[Stage]:
    """RL from the FB model on 2-5-step data with 50/50, 75/25, 90/10 evaluation/inversion."""
    sft = b.sft("FB")
    return [sft, *(b.rl(sft, f"eval{share}", {"min_steps": 2, "max_steps": 5, "problem_types": ["evaluation", "inversion"],
                                              "type_weights": [share, 100 - share]})
                   for share in AMPLIFICATION_SHARES)]


COMPOSITION_PARTS = (2, 3, 4, 5, 6)
"""Numbers of parts of the composition validation sets (RL trains on 3-5; 6 is beyond it; the tiny tokenizer
covers up to 6)."""


def _composition(b: _Builder) -> list[Stage]:
    """FB SFT with and without 2-part compositions; RL on 3-5-part compositions; accuracy per number of parts."""
    with_parts = b.sft("FB", "with-2part", problem={"problem_types": ["evaluation", "inversion", "composition"],
                                                    "min_parts": 2, "max_parts": 2})
    without = b.sft("FB", "without-2part")
    rl = []
    for sft in (with_parts, without):
        stage = b.rl(sft, "parts-3-5", {"min_steps": 2, "max_steps": 5, "min_parts": 3, "max_parts": 5},
                     env="ffreason/Composition-v0", eval_ranges=[[2, 5]])
        _tokens_at_least(stage.config, 240)  # an aligned 5-part, 5-step composition: 232 tokens
        rl.append(stage)
    sets = {f"parts-{k}": ProblemConfig(min_steps=2, max_steps=5, problem_types=["composition"], min_parts=k,
                                        max_parts=k) for k in COMPOSITION_PARTS}
    return [with_parts, without, *rl, *(b.evaluation(s, sets) for s in (with_parts, rl[0], without, rl[1]))]


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    build: Callable[[_Builder], list[Stage]]


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("selection", "SFT arms F, B, FB on 2-5 steps; RL on 2-5 and on 6-9; the study's Table 1", _selection),
    Experiment("improvement", "RL on 2-5 vs 6-9 vs 6-15 from the same SFT arms; accuracy per step count 2..15",
               _improvement),
    Experiment("amplification", "RL data 50/50, 75/25, 90/10 evaluation/inversion; forward fraction vs share",
               _amplification),
    Experiment("composition", "SFT with / without 2-part compositions; RL on 3-5 parts; accuracy per part count",
               _composition),
    Experiment("gf13", "selection at p = 13", lambda b: _selection(b, p=13)),
)}


def plan(experiment: str, preset: str, run_dir: str, algo: str = "grpo") -> list[Stage]:
    """The stages of ``experiment`` at ``preset``, in run order, every config validated (nothing is loaded)."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment: {experiment!r} is not one of {', '.join(EXPERIMENTS)}")
    if preset not in SCALES:
        raise ValueError(f"preset: {preset!r} is not one of {', '.join(SCALES)}")
    stages = EXPERIMENTS[experiment].build(_Builder(run_dir, SCALES[preset], algo))
    for stage in stages:
        stage.validate()
    return stages


MANIFEST = "experiment.json"
"""``RUN_DIR/experiment.json``: the experiment, preset and algorithm a run directory holds."""


def read_manifest(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"run_dir: {run_dir!r} holds no {MANIFEST} (not made by 'ffreason reproduce')")
    with open(path, encoding="utf-8") as f:
        return json.load(f)

"""The stages of a reproduction (SFT arms, RL runs, evaluations) and the builder that makes them from a preset.

A stage is one call into the trainers' library (``trainers.sft.run_sft``,
``trainers.rl.make_trainer(cfg).train()``, ``trainers.evaluation.evaluate``)
writing to its own sub-directory ``RUN_DIR/<stage name>``; the summary file that
call writes last marks the stage done, so :mod:`baselines.runner` can skip it on
a rerun. Stage configs are built from the same preset sections as ``ffreason
sft --preset NAME`` and ``ffreason rl --preset NAME``, changed only where the
experiment needs it (the arm, the RL data, the validation sets), so a stage is
exactly the run those commands make.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ffreason_env import ProblemConfig
from ffreason_env.config import check_int
from trainers import presets
from trainers.rl import make_trainer
from trainers.rl_config import RLRunConfig, from_layers
from trainers.runlog import CHECKPOINTS, CONFIG_FILE, last_checkpoint, write_json
from trainers.settings import load_yaml, merge, to_dict
from trainers.sft import SFTRunConfig, run_sft

__all__ = ["SFTStage", "RLStage", "EvalStage", "Stage", "Builder", "MANIFEST", "STAGE_LOG", "read_manifest",
           "write_manifest"]

MANIFEST = "experiment.json"
"""``RUN_DIR/experiment.json``: the experiment, preset and algorithm a run directory holds."""
STAGE_LOG = "stages.jsonl"
"""``RUN_DIR/stages.jsonl``: one line per stage and run (``ran`` or ``skipped``), written by the runner."""


def read_manifest(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"run_dir: {run_dir!r} holds no {MANIFEST} (not made by 'ffreason reproduce')")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_manifest(run_dir: str, manifest: dict[str, Any]) -> None:
    write_json(os.path.join(run_dir, MANIFEST), manifest)


class _Stage:
    """What the runner needs of every stage: its directory, whether it is done, and how to start it again."""

    name: str
    replica: int
    """The replica (seed) it belongs to: 0 is the preset's own seeds."""
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
    replica: int = 0
    summary_file: ClassVar[str] = "sft_summary.json"

    def describe(self) -> str:
        c, p = self.config, self.config.problem
        kinds = ", ".join(p.problem_types)
        return f"SFT arm {c.arm}, GF({p.p}), {p.min_steps}-{p.max_steps} steps ({kinds}), {c.examples} examples"

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
    replica: int = 0
    summary_file: ClassVar[str] = "rl_summary.json"

    def describe(self) -> str:
        c, p = self.config, self.config.problem
        return (f"{c.algo.upper()} from {self.init} on {c.env}, GF({p.p}), {p.min_steps}-{p.max_steps} steps, "
                f"{c.max_steps} RL steps")

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
        if not force and last_checkpoint(os.path.join(self.out, CHECKPOINTS)) is not None:
            self.config.resume = True
            return "resumed"
        return super().prepare(force)

    def run(self) -> None:
        make_trainer(self.config).train()


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
    replica: int = 0
    budget_of: RLStage | None = None
    """Decode under this RL run's budget (its resolved ``max_completion_length``), in place of ``max_new_tokens``:
    sets of longer chains than the model trained on, measured as the run that trains on them measures them."""
    summary_file: ClassVar[str] = "eval_summary.json"

    @property
    def out(self) -> str:
        return os.path.join(self.run_dir, self.name)

    def needs(self) -> list[str]:
        return [self.model.name, *([self.budget_of.name] if self.budget_of else [])]

    def describe(self) -> str:
        budget = f", at most {self.max_new_tokens} tokens" if self.max_new_tokens else ""
        if self.budget_of:
            budget = f", under the budget of {self.budget_of.name}"
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

        device = "cuda" if torch.cuda.is_available() else None
        model, tokenizer = load_model(resolve_model_dir(self.model.out), device=device)
        budget = self.max_new_tokens
        if self.budget_of:
            budget = load_yaml(os.path.join(self.budget_of.out, CONFIG_FILE))["max_completion_length"]  # as resolved
        reports = {}
        for set_name, config in self.sets.items():
            report = evaluate(model, tokenizer, validation_set(config, self.n),
                              EvalSettings(n=self.n, max_new_tokens=budget))
            reports[set_name] = {"problem_config": config.to_dict(), **report}
        write_json(os.path.join(self.out, self.summary_file), {"model": self.model.name, "sets": reports})


Stage = SFTStage | RLStage | EvalStage


@dataclass
class Builder:
    """Makes the stages of one replica of a reproduction: its directory, preset, RL algorithm and replica.

    Replica k is the preset's recipe with every seed that draws randomness moved by k: SFT's ``seed`` (the
    model's initialisation and the data order) and RL's ``seed`` (sampling). The problems (``data_seed``,
    ``prompt_seed``) and the validation sets stay the same, so replicas differ only by chance."""

    run_dir: str
    preset: str
    algo: str
    replica: int = 0
    eval_n: int | None = None
    """Problems per validation set of every stage (None: the preset's ``reproduce`` ``eval_n``, else its RL
    ``eval_n``)."""
    experiment_dir: str = ""
    """Sub-directory of the stages in the run directory (a study keeps each experiment in its own)."""
    shared: dict | None = None
    """Stages already built, by their config: an SFT or RL stage whose config (but for its directory) is one of
    them is that stage, so experiments of one study share it (selection's arms serve improvement, amplification
    and robustness). None: no sharing."""
    sections: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        check_int("replica", self.replica, 0, 2**31 - 1)
        self.sections = presets.load(self.preset)
        if self.eval_n is None:
            self.eval_n = self.sections["reproduce"].get("eval_n", self.sections["rl"].get("eval_n", RLRunConfig.eval_n))
        check_int("eval_n", self.eval_n, 1, 2**31 - 1)
        self.sections["rl"] = {**self.sections["rl"], "eval_n": self.eval_n}  # the RL runs' and evaluations' alike

    def _name(self, name: str) -> str:
        """A stage's name and directory in the run directory: replica 0 (the preset's own seeds) in it directly, so
        that adding seeds to a finished run reuses it, replica k in ``seed-k``."""
        replica = f"seed-{self.replica}" if self.replica else ""
        return "/".join(part for part in (replica, self.experiment_dir, name) if part)

    def _share(self, stage):
        """``stage``, or the stage already built with its config (but for its directory): the same run, under
        this experiment's labels (a study's composition calls selection's FB arm ``without-2part``)."""
        if self.shared is None:
            return stage
        key = (type(stage).__name__, json.dumps({k: v for k, v in to_dict(stage.config).items() if k != "out"},
                                                 sort_keys=True, default=str))
        first = self.shared.setdefault(key, stage)
        labels = {"arm": stage.arm} if isinstance(stage, SFTStage) else {"arm": stage.arm, "data": stage.data}
        return dataclasses.replace(first, **labels)

    def sft(self, arm: str, name: str | None = None, **problem: Any) -> SFTStage:
        """The preset's SFT of ``arm``, on its problems with ``problem``'s changes."""
        name = name or arm
        section = self.sections["sft"]
        cfg = merge(SFTRunConfig, section, {
            "preset": self.preset, "out": os.path.join(self.run_dir, self._name(f"sft/{name}")), "arm": arm,
            "problem": problem,  # merged field by field over the section's
            "seed": section.get("seed", SFTRunConfig.seed) + self.replica,
        })
        return self._share(SFTStage(self._name(f"sft/{name}"), cfg, name, self.replica))

    def rl(self, sft: SFTStage, data: str, problem: dict[str, Any], env: str = "ffreason/Mixed-v0",
           eval_ranges: tuple[tuple[int, int], ...] = ((2, 5), (6, 9)), **knobs: Any) -> RLStage:
        """The preset's RL run from ``sft`` on ``problem`` (the RL data, labelled ``data`` in the report), with the
        RL ``knobs`` given changed (``min_budget_ratio`` where longer RL data than the preset's budget was chosen
        for must still fit every aligned trace: the budget must cut searches, not direct answers)."""
        name = self._name(f"rl-{data}/{sft.arm}")
        seed = {**self.sections["rl"], **self.sections[self.algo]}.get("seed", RLRunConfig.seed) + self.replica
        cfg = from_layers(self.algo, self.sections["rl"], self.sections[self.algo], {
            "preset": self.preset, "out": os.path.join(self.run_dir, name), "init": sft.out,
            "env": env, "problem": problem, "eval_ranges": eval_ranges, "seed": seed, **knobs,
        })
        return self._share(RLStage(name, cfg, sft.name, sft.arm, data, self.replica))

    def evaluation(self, stage: SFTStage | RLStage, sets: dict[str, ProblemConfig],
                   budget_of: RLStage | None = None) -> EvalStage:
        bare = f"sft/{stage.arm}" if isinstance(stage, SFTStage) else f"rl-{stage.data}/{stage.arm}"
        return EvalStage(self._name(f"eval/{bare}"), stage, sets, self.eval_n, self.run_dir,
                         self.sections["reproduce"].get("eval_max_new_tokens"), self.replica, budget_of)

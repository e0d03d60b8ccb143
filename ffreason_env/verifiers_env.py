"""verifiers (Prime Intellect): ffreason's problems as a verifiers taskset, for its ``vf-eval`` and ``vf-validate``.

``load_environment(min_steps=6, max_steps=9, size=200, seed=1)`` (``pip install 'ffreason[verifiers]'``) returns
a verifiers ``Env`` whose taskset holds ``size`` single-turn tasks: task ``i`` is ``generate(config, seed, i)``,
the problem ffreason's envs and exports draw for the same config, seed and index, its question rendered in
``prompt_style``. Each task's reward (``ffreason``, weight 1) is :func:`~ffreason_env.verify`'s verdict on the
whole reply turned into a number by :class:`~ffreason_env.RewardSpec` (the study's outcome reward by default),
in the task config's ``answer_mode``; the verdict's other fields are unweighted metrics (``correct``,
``well_formed``, ``aligned``, ``process``, ``strategy_{forward,backward,mixed,unknown}``), and the verdict
itself (answer as a symbol) lands in ``trace.info["ffreason"]``. The taskset ships a tool-less chat harness,
so an agent gets the question and nothing else (verifiers' default harness is a bash-using coding agent).

Which verifiers: 0.4, through ``verifiers.v1`` (Taskset / Task / TaskData / ``@vf.reward`` / ``@vf.metric``),
the only API 0.4.0 has, and what its commands and trainers load. 0.3.x's classic stack
(``vf.SingleTurnEnv(dataset=..., rubric=vf.Rubric(funcs=..., weights=...))`` returned by a module-level
``load_environment`` that its ``vf-eval`` imports) is gone from 0.4.0, and would take a second adapter over
Hugging Face ``datasets``; it is not served. 0.3.1 also ships an early ``verifiers.v1``: this module loads and
scores there too, but that release's taskset views and command lines differ, so the extra asks for
``verifiers>=0.4,<0.5``, the release tested.

verifiers finds a taskset by importing its id as a top-level module (or one under ``verifiers.v1.tasksets``)
and taking the ``Taskset`` subclass its ``__all__`` exports. This module is not top-level, so
:func:`register` makes it importable as :data:`TASKSET_ID` (``ffreason``) in this process;
:func:`load_environment` calls it, and ``python -m ffreason_env.verifiers_env eval ...`` runs ``vf-eval`` (or
``validate``: ``vf-validate``) with it registered and the taskset id filled in; any other process that loads
tasksets by id must call it first. The verifiers classes are built on first access (module ``__getattr__``), so
importing this module, like ``import ffreason_env``, imports no verifiers.

>>> env = load_environment(min_steps=2, max_steps=3, size=4, seed=1)   # doctest: +SKIP
>>> task = next(iter(env.taskset))                                      # doctest: +SKIP
"""

import functools
import importlib
import sys
from collections.abc import Mapping
from typing import Any

from ffreason_env.config import PROBLEM_DEFAULTS, ProblemConfig
from ffreason_env.export import rl_records
from ffreason_env.lenient import MODES
from ffreason_env.problem import Problem
from ffreason_env.prompts import PromptStyle
from ffreason_env.rewards import RewardSpec, process_score
from ffreason_env.traces import STRATEGIES, write_trace
from ffreason_env.verifier import LABELS, Verdict, verify

# no `from __future__ import annotations`: verifiers reads the hooks' annotations (a stop's `Trace` parameter)
# with typing.get_type_hints, which could not resolve names imported inside _classes()

_LAZY = ("FFReasonData", "FFReasonTaskConfig", "FFReasonTask", "FFReasonTasksetConfig", "FFReasonTaskset",
         "FFReasonHarness")
"""The verifiers classes, built on first access (:func:`__getattr__`); verifiers' loaders find the taskset and
its harness among the names ``__all__`` exports."""
__all__ = ["METRIC_KEYS", "TASKSET_ID", "TASK_KNOBS", "load_environment", "main", "register"] + list(_LAZY)

TASKSET_ID = "ffreason"
"""The taskset id verifiers loads this module by, once :func:`register` has run."""
TASK_KNOBS: tuple[str, ...] = ("answer_mode", "format_penalty", "process_weight")
"""The :func:`load_environment` keywords that configure scoring (``--env.taskset.task.*`` on verifiers' command
line); the others configure the problems (``--env.taskset.*``)."""
METRIC_KEYS: tuple[str, ...] = ("correct", "well_formed", "aligned", "process", *(f"strategy_{s}" for s in LABELS))
"""The metrics every scored trace carries (unweighted: they do not add to the reward)."""
INSTALL_HINT = "ffreason_env.verifiers_env needs verifiers: pip install 'ffreason[verifiers]'"


def _vf():
    try:
        import verifiers.v1 as vf
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return vf


def register() -> None:
    """Make this module importable as :data:`TASKSET_ID`, the id verifiers' loaders import a taskset by
    (idempotent; raises if another module already has that name)."""
    module = importlib.import_module("ffreason_env.verifiers_env")  # this module, also when run as __main__
    found = sys.modules.setdefault(TASKSET_ID, module)
    if found is not module:
        raise RuntimeError(f"a module named {TASKSET_ID!r} ({found!r}) is already imported; the taskset id "
                           f"{TASKSET_ID!r} needs that name")


def load_environment(**kwargs: Any):
    """A verifiers ``Env`` (its single-agent env) over ffreason's taskset. Keywords: the problems
    (``min_steps``, ``max_steps``, ``problem_types``, ``p``, ``min_parts``, ``max_parts``), how they are put
    (``prompt_style``: ``instructed`` by default, or ``bare`` / ``few_shot`` with ``shots`` and
    ``shot_strategy``), which of them (``seed``, ``size``: tasks ``0 .. size-1`` of problem stream ``seed``), and
    how a reply is scored (:data:`TASK_KNOBS`: ``answer_mode`` strict or lenient, ``format_penalty``,
    ``process_weight``). A bad value raises ``ValueError`` (pydantic's ``ValidationError``) naming it."""
    vf = _vf()
    register()
    task = {**kwargs.pop("task", {}), **{k: kwargs.pop(k) for k in TASK_KNOBS if k in kwargs}}
    config = vf.resolve_env_config({"taskset": {"id": TASKSET_ID, **kwargs, "task": task}})
    return vf.load_environment(config)


def _verdict(task, trace) -> tuple[Problem, Verdict]:
    """The task's problem and ``verify``'s verdict on the trace's reply, in the task config's answer mode."""
    problem = Problem.from_json(task.data.problem)
    return problem, verify(problem, trace.last_reply, task.config.answer_mode)


@functools.cache
def _classes() -> dict[str, type]:
    """The verifiers classes, built once, on first access to one of them."""
    vf = _vf()
    from pydantic import Field, model_validator
    from verifiers.v1.harnesses.null import NullHarness

    class FFReasonData(vf.TaskData):
        """One ffreason problem: its rendered question (``prompt``) and what scoring needs."""

        problem: str
        """The serialized :class:`~ffreason_env.Problem` (``Problem.from_json``)."""
        answer: str
        """The answer's symbol."""
        kind: str
        steps: int
        seed: int
        index: int
        """The problem is ``generate(config, seed, index)``."""

    class FFReasonTaskConfig(vf.TaskConfig):
        """How a reply is scored (``--env.taskset.task.*``)."""

        answer_mode: str = "strict"
        """strict (the study's) or lenient (:mod:`ffreason_env.lenient`: think blocks, fences, ``Answer:``)."""
        format_penalty: float = 0.0
        process_weight: float = 0.0

        @model_validator(mode="after")
        def _check(self):
            if self.answer_mode not in MODES:
                raise ValueError(f"answer_mode: expected one of {MODES}, got {self.answer_mode!r}")
            RewardSpec(self.format_penalty, self.process_weight)
            return self

    class FFReasonTask(vf.Task[FFReasonData, vf.State, FFReasonTaskConfig]):
        """A single-turn ffreason task: one reply, scored whole by ``verify``."""

        @vf.stop
        async def single_turn(self, trace: vf.Trace) -> bool:
            return trace.num_turns >= 1

        @vf.reward(weight=1.0)
        async def ffreason(self, trace) -> float:
            config = self.config
            return RewardSpec(config.format_penalty, config.process_weight)(_verdict(self, trace)[1])

        @vf.metric
        async def verdict(self, trace) -> Mapping[str, float]:
            problem, v = _verdict(self, trace)
            trace.info["ffreason"] = {**v.to_dict(), "answer": None if v.answer is None else problem.symbol(v.answer)}
            return {"correct": float(v.correct), "well_formed": float(v.well_formed), "aligned": float(v.aligned),
                    "process": process_score(v), **{f"strategy_{s}": float(v.strategy == s) for s in LABELS}}

        async def validate(self, runtime=None) -> bool:
            """``vf-validate``'s gold check: the reference traces of both strategies score correct."""
            problem = Problem.from_json(self.data.problem)
            return problem.symbol(problem.answer) == self.data.answer and all(
                verify(problem, write_trace(problem, s)).correct for s in STRATEGIES)

    class FFReasonTasksetConfig(vf.TasksetConfig):
        """Which problems, and how they are put (``--env.taskset.*``)."""

        min_steps: int = PROBLEM_DEFAULTS.min_steps
        max_steps: int = PROBLEM_DEFAULTS.max_steps
        problem_types: list[str] = Field(default_factory=lambda: list(PROBLEM_DEFAULTS.problem_types))
        p: int = PROBLEM_DEFAULTS.p
        min_parts: int = PROBLEM_DEFAULTS.min_parts
        max_parts: int = PROBLEM_DEFAULTS.max_parts
        prompt_style: str = "instructed"
        """bare (the study's prompt, for models fine-tuned on the grammar), instructed or few_shot: a verifiers
        user brings a model that never saw the grammar, hence the default."""
        shots: int = 2
        shot_strategy: str = "aligned"
        seed: int = 0
        size: int = Field(500, ge=1)
        """Tasks ``0 .. size-1`` of problem stream ``seed``."""
        task: FFReasonTaskConfig = FFReasonTaskConfig()

        def problem_config(self) -> ProblemConfig:
            return ProblemConfig(p=self.p, min_steps=self.min_steps, max_steps=self.max_steps,
                                 problem_types=self.problem_types, min_parts=self.min_parts, max_parts=self.max_parts)

        def style(self) -> PromptStyle:
            return PromptStyle(self.prompt_style, self.shots, self.shot_strategy)

        @model_validator(mode="after")
        def _check(self):
            self.problem_config()
            self.style()
            return self

    class FFReasonTaskset(vf.Taskset[FFReasonTask, FFReasonTasksetConfig]):
        """``size`` tasks of problem stream ``seed``: task ``i`` is ``generate(config, seed, i)``."""

        def load(self):
            config = self.config
            for r in rl_records(config.problem_config(), config.seed, config.size, chat=False, style=config.style()):
                data = FFReasonData(idx=r["index"], prompt=r["prompt"], problem=r["problem"], answer=r["answer"],
                                    kind=r["kind"], steps=r["steps"], seed=r["seed"], index=r["index"])
                yield FFReasonTask(data, config.task)

    class FFReasonHarness(NullHarness):
        """verifiers' tool-less chat loop: the question in, one reply out (this taskset's default harness)."""

    found = {c.__name__: c for c in (FFReasonData, FFReasonTaskConfig, FFReasonTask, FFReasonTasksetConfig,
                                     FFReasonTaskset, FFReasonHarness)}
    for name, c in found.items():
        c.__qualname__ = name  # importable by name (pickle), as if defined at module level
    return found


def __getattr__(name: str):
    if name in _LAZY:
        value = _classes()[name]
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_COMMANDS = {"eval": "verifiers.v1.cli.eval.main", "validate": "verifiers.v1.cli.validate"}


def main(argv: list[str] | None = None) -> None:
    """``python -m ffreason_env.verifiers_env {eval,validate} [verifiers' options]``: ``vf-eval`` / ``vf-validate``
    on this taskset (``--env.taskset.min-steps 6``, ``-n 20``, ``-m MODEL``, ...)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in _COMMANDS:
        raise SystemExit(f"usage: python -m ffreason_env.verifiers_env {{{','.join(_COMMANDS)}}} [verifiers' options]")
    _vf()
    register()
    importlib.import_module(_COMMANDS[argv[0]]).main([TASKSET_ID, *argv[1:]])


if __name__ == "__main__":
    main()

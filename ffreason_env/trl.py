"""ffreason's verifier as a TRL reward function: ``GRPOTrainer(reward_funcs=[ffreason_reward], ...)``.

No torch or TRL import here: the function has the signature TRL calls reward
functions with (``prompts, completions, completion_ids`` and the dataset's
other columns as keyword lists, plus ``trainer_state``, ``log_extra`` and
``log_metric``) and needs only the ``problem`` column, which
``python -m ffreason_env export rl`` writes (each row's problem as JSON) beside a
chat-message ``prompt``, so TRL applies the model's chat template.

>>> from ffreason_env import ProblemConfig, rl_records, write_trace, Problem
>>> row = next(rl_records(ProblemConfig(), seed=0, size=1))
>>> right = write_trace(Problem.from_json(row["problem"]), "forward")
>>> ffreason_reward([row["prompt"]] * 2, [[{"role": "assistant", "content": right}], "answer e0"],
...                 problem=[row["problem"]] * 2)
[1.0, 0.0]
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

from .lenient import MODES
from .problem import Problem
from .rewards import RewardSpec
from .verifier import verify

__all__ = ["make_reward_function", "ffreason_reward", "completion_text"]


def completion_text(completion: Any) -> str:
    """The response text of a TRL completion: a string, or chat messages whose last one is the response."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)) and completion and isinstance(completion[-1], dict):
        return completion[-1].get("content") or ""
    raise TypeError(f"completion: expected a string or a list of chat messages, got {type(completion).__name__}")


def make_reward_function(format_penalty: float = 0.0, process_weight: float = 0.0,
                         answer_mode: str = "strict") -> Callable[..., list[float]]:
    """A TRL reward function scoring with :class:`~ffreason_env.RewardSpec` (the defaults: the study's outcome
    reward) in ``answer_mode`` (``strict``, the study's, or ``lenient`` for models never trained on the grammar).
    Through ``log_extra`` each completion's strategy and correctness join TRL's completion table; through
    ``log_metric`` the batch's accuracy, aligned fraction and strategy fractions per kind join its metrics."""
    spec = RewardSpec(format_penalty=format_penalty, process_weight=process_weight)
    if answer_mode not in MODES:
        raise ValueError(f"answer_mode: expected one of {MODES}, got {answer_mode!r}")

    def ffreason_reward(prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] = (), *,
                        problem: Sequence[str], trainer_state=None, log_extra=None, log_metric=None,
                        **_: Any) -> list[float]:
        if len(problem) != len(completions):
            raise ValueError(f"problem: {len(problem)} problems for {len(completions)} completions (the dataset "
                             f"needs a 'problem' column, as 'python -m ffreason_env export rl' writes)")
        problems = [Problem.from_json(p) for p in problem]
        verdicts = [verify(p, completion_text(c), answer_mode) for p, c in zip(problems, completions)]
        if log_extra is not None:
            log_extra("strategy", [v.strategy for v in verdicts])
            log_extra("correct", [v.correct for v in verdicts])
        if log_metric is not None and verdicts:
            log_metric("ffreason/accuracy", sum(v.correct for v in verdicts) / len(verdicts))
            log_metric("ffreason/aligned", sum(v.aligned for v in verdicts) / len(verdicts))
            for kind in sorted({p.kind for p in problems}):
                used = Counter(v.strategy for p, v in zip(problems, verdicts) if p.kind == kind)
                total = sum(used.values())
                for strategy, n in sorted(used.items()):
                    log_metric(f"ffreason/{kind}/strategy/{strategy}", n / total)
        return [spec(v) for v in verdicts]

    return ffreason_reward


ffreason_reward = make_reward_function()
"""The study's outcome reward (1 for a right final answer, else 0)."""

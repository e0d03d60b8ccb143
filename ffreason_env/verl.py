"""verl (Ray clusters): rows in verl's RL parquet layout, and the ``compute_score`` verl calls.

verl reads prompts from parquet with ``data_source``, ``prompt`` (chat
messages), ``reward_model.ground_truth`` and ``extra_info``, and scores every
response with ``compute_score(data_source, solution_str, ground_truth,
extra_info)``. Each row carries its serialized :class:`Problem`, so the score
is exactly :func:`verify`'s verdict turned into a reward by
:class:`RewardSpec` — the same number ``env.step`` returns — with the
verdict's strategy and checks beside it, which verl logs. No torch here.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

# absolute imports: verl loads a reward function's file by its path, as a module outside any package
from ffreason_env.atomic import atomic_path
from ffreason_env.config import ProblemConfig
from ffreason_env.export import rl_records
from ffreason_env.problem import Problem
from ffreason_env.prompts import PromptStyle
from ffreason_env.rewards import RewardSpec, process_score
from ffreason_env.verifier import LABELS, verify

__all__ = ["DATA_SOURCE_PREFIX", "SCORE_KEYS", "verl_records", "write_parquet", "compute_score"]

DATA_SOURCE_PREFIX = "ffreason/"


def verl_records(config: ProblemConfig, seed: int = 0, size: int = 1024, split: str = "train",
                 style: PromptStyle | str = "bare") -> Iterator[dict[str, Any]]:
    """``size`` rows of problem stream ``seed`` in verl's layout (item i is problem (seed, i)), the question in
    ``style``."""
    for r in rl_records(config, seed, size, chat=False, style=style):
        yield {
            "data_source": DATA_SOURCE_PREFIX + r["kind"],
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "ability": "finite-field-reasoning",
            "reward_model": {"style": "rule", "ground_truth": r["answer"]},
            "extra_info": {"split": split, "seed": seed, "index": r["index"], "steps": r["steps"],
                           "problem": r["problem"]},
        }


def write_parquet(records: Iterable[dict[str, Any]], path: str | os.PathLike) -> int:
    """Write rows to a parquet file (atomically); needs ``pyarrow`` (installed with the ``train`` extra)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("write_parquet needs pyarrow: pip install pyarrow (or 'ffreason[train]')") from e
    rows = list(records)
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
    return len(rows)


SCORE_KEYS: tuple[str, ...] = ("score", "acc", "pred", "well_formed", "aligned", "process",
                                *(f"strategy_{s}" for s in LABELS), "ffreason")
"""The keys of every :func:`compute_score` dict, foreign rows' included: verl's reward managers keep one list per
key over the batch, so every row must give the same keys."""


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None,
                  format_penalty: float = 0.0, process_weight: float = 0.0, **kwargs: Any) -> dict[str, Any]:
    """verl's score of ``solution_str``: a dict whose ``score`` is the reward ``env.step`` would return and whose
    other keys verl records per response, dumps with the rollouts and averages per data source: ``acc`` (1.0 if
    right), ``pred`` (the parsed answer, "" if none), ``well_formed``, ``aligned``, ``process`` (the share of
    checked items that are right), ``strategy_{forward,backward,mixed,unknown}`` (one-hot) and ``ffreason``
    (1.0: scored by ffreason).

    ``format_penalty`` / ``process_weight`` are the env's reward options (verl passes them through
    ``reward.custom_reward_function.reward_kwargs``). A row of another data source (a mixed dataset) is handed
    on to verl's own ``default_compute_score`` and returned under the same keys with ``ffreason`` 0.0 (its
    ``acc`` and ``pred`` where verl gives them; a bare score is also its ``acc``), so one ffreason reward function
    serves a mixed run.
    """
    if not str(data_source).startswith(DATA_SOURCE_PREFIX):
        return _foreign(data_source, solution_str, ground_truth, extra_info, **kwargs)
    if not extra_info or "problem" not in extra_info:
        raise ValueError("extra_info: the row's serialized problem is missing (export rows with verl_records)")
    problem = Problem.from_json(extra_info["problem"])
    if problem.symbol(problem.answer) != ground_truth:
        raise ValueError(f"ground_truth: {ground_truth!r} is not the answer of the row's problem")
    v = verify(problem, solution_str)
    return {"score": RewardSpec(format_penalty=format_penalty, process_weight=process_weight)(v),
            "acc": float(v.correct), "pred": "" if v.answer is None else problem.symbol(v.answer),
            "well_formed": float(v.well_formed), "aligned": float(v.aligned), "process": process_score(v),
            **{f"strategy_{s}": float(v.strategy == s) for s in LABELS}, "ffreason": 1.0}


def _foreign(data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None,
             **kwargs: Any) -> dict[str, Any]:
    try:
        from verl.utils.reward_score import default_compute_score
    except ImportError:
        raise ValueError(f"data_source: {data_source!r} is not an ffreason row (expected {DATA_SOURCE_PREFIX}...); "
                         "other rows are scored by verl's default_compute_score, and verl is not installed here "
                         "(pip install verl)") from None
    found = default_compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
    out: dict[str, Any] = {k: 0.0 for k in SCORE_KEYS}
    out["pred"] = ""
    if isinstance(found, dict):
        out.update({k: found[k] for k in ("score", "acc", "pred") if k in found})
    else:  # verl's rule-based scorers give 1.0 / 0.0: the score is the accuracy
        out["score"] = out["acc"] = float(found)
    return out

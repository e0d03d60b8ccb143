"""verl (Ray clusters): rows in verl's RL parquet layout, and the ``compute_score`` verl calls.

verl reads prompts from parquet with ``data_source``, ``prompt`` (chat
messages), ``reward_model.ground_truth`` and ``extra_info``, and scores every
response with ``compute_score(data_source, solution_str, ground_truth,
extra_info)``. Each row carries its serialized :class:`Problem`, so the score
is exactly :func:`verify`'s verdict turned into a reward by
:class:`RewardSpec` — the same number ``env.step`` returns. No torch here.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

from .atomic import atomic_path
from .config import ProblemConfig
from .export import rl_records
from .problem import Problem
from .rewards import RewardSpec
from .verifier import verify

__all__ = ["DATA_SOURCE_PREFIX", "verl_records", "write_parquet", "compute_score"]

DATA_SOURCE_PREFIX = "ffreason/"


def verl_records(config: ProblemConfig, seed: int = 0, size: int = 1024, split: str = "train") -> Iterator[dict[str, Any]]:
    """``size`` rows of problem stream ``seed`` in verl's layout (item i is problem (seed, i))."""
    for r in rl_records(config, seed, size, chat=False):
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


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None,
                  format_penalty: float = 0.0, process_weight: float = 0.0) -> float:
    """The reward of ``solution_str`` for the row's problem: what ``env.step`` would return.

    ``format_penalty`` / ``process_weight`` are the env's reward options
    (verl passes them through ``custom_reward_function.reward_kwargs``).
    """
    if not str(data_source).startswith(DATA_SOURCE_PREFIX):
        raise ValueError(f"data_source: {data_source!r} is not an ffreason row (expected {DATA_SOURCE_PREFIX}...)")
    if not extra_info or "problem" not in extra_info:
        raise ValueError("extra_info: the row's serialized problem is missing (export rows with verl_records)")
    problem = Problem.from_json(extra_info["problem"])
    if problem.symbol(problem.answer) != ground_truth:
        raise ValueError(f"ground_truth: {ground_truth!r} is not the answer of the row's problem")
    return RewardSpec(format_penalty=format_penalty, process_weight=process_weight)(verify(problem, solution_str))

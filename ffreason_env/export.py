"""Datasets for trainers: SFT pairs for the study's arms and RL prompt sets (JSONL / datasets.Dataset)."""

from __future__ import annotations

import json
import os
import random
from typing import Any, Iterable, Iterator

from .atomic import atomic_write
from .config import ProblemConfig
from .problem import generate
from .prompts import PromptStyle, render_prompt
from .traces import STRATEGIES, write_trace

__all__ = ["ARMS", "sft_records", "rl_records", "write_jsonl", "read_jsonl", "to_dataset", "arm_strategies"]

ARMS: dict[str, tuple[str, ...]] = {"F": ("forward",), "B": ("backward",), "FB": STRATEGIES}
"""SFT arms of the study: which strategies their responses use (FB: a fair coin per example)."""


def arm_strategies(arm: str, seed: int, index: int, num_parts: int) -> list[str]:
    """The strategy of each part of example ``index`` in ``arm`` (seeded, independent of the problem draw)."""
    if arm not in ARMS:
        raise ValueError(f"arm: {arm!r} is not one of {sorted(ARMS)}")
    choices = ARMS[arm]
    if len(choices) == 1:
        return [choices[0]] * num_parts
    coin = random.Random(f"ffreason-arm:{seed}:{index}")
    return [coin.choice(choices) for _ in range(num_parts)]


def _overall(strategies: list[str]) -> str:
    return strategies[0] if len(set(strategies)) == 1 else "mixed"


def _base(config: ProblemConfig, seed: int, index: int, style: PromptStyle | str = "bare") -> tuple[Any, dict[str, Any]]:
    problem = generate(config, seed, index)
    return problem, {
        "prompt": render_prompt(problem, style),
        "answer": problem.symbol(problem.answer),
        "kind": problem.kind,
        "steps": problem.num_steps,
        "seed": seed,
        "index": index,
        "problem": problem.to_json(),
    }


def sft_records(config: ProblemConfig, arm: str, seed: int = 0, size: int = 2048,
                style: PromptStyle | str = "bare") -> Iterator[dict[str, Any]]:
    """``size`` prompt/completion pairs; item i is problem (seed, i) answered with the arm's strategy, its prompt
    in ``style`` (:class:`~ffreason_env.PromptStyle`)."""
    if arm not in ARMS:
        raise ValueError(f"arm: {arm!r} is not one of {sorted(ARMS)}")
    for index in range(size):
        problem, record = _base(config, seed, index, style)
        strategies = arm_strategies(arm, seed, index, max(1, len(problem.parts)))
        record["completion"] = write_trace(problem, strategies)
        record["strategy"] = _overall(strategies)
        record["part_strategies"] = strategies if problem.parts else []
        yield record


def rl_records(config: ProblemConfig, seed: int = 0, size: int = 1024, chat: bool = True,
               style: PromptStyle | str = "bare") -> Iterator[dict[str, Any]]:
    """``size`` prompts with their answers and serialized problems (``problem``, what
    :func:`ffreason_env.trl.ffreason_reward` reads). ``chat``: the prompt as one user message, TRL's
    conversational format, so a trainer applies the model's chat template (as ``ffreason rl`` does); else the bare
    text. ``style``: how the question is put (:class:`~ffreason_env.PromptStyle`; the study's is ``bare``)."""
    for index in range(size):
        record = _base(config, seed, index, style)[1]
        if chat:
            record["prompt"] = [{"role": "user", "content": record["prompt"]}]
        yield record


def write_jsonl(records: Iterable[dict[str, Any]], path: str | os.PathLike) -> int:
    """Write one JSON object per line (atomically); return the count."""
    n = 0
    with atomic_write(path) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def to_dataset(records: Iterable[dict[str, Any]]):
    """A ``datasets.Dataset`` of the records (needs the ``train`` extra)."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("to_dataset needs the 'datasets' package: pip install 'ffreason[train]'") from e
    return datasets.Dataset.from_list(list(records))

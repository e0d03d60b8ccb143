"""The RL generation budget in the task's own terms: how many tokens an aligned trace and a search take.

The budget is the lever that makes a misaligned strategy fail: a search
(trying candidates one by one) is several times longer than the aligned
trace. A count of tokens means different things in different tokenizers (a
byte-level BPE spells a trace in about 1.5 times the tiny model's word-level
tokens), so ``budget_ratio`` states the budget as a multiple of the longest
aligned trace of the RL problems, counted in the model's own tokenizer, and
:func:`budget_shares` says what a budget lets through.
"""

from __future__ import annotations

import math
from typing import Sequence

from ffreason_env import ALIGNED, Problem, ProblemConfig, write_trace

from .evaluation import validation_set

__all__ = ["BUDGET_SAMPLE", "aligned_strategy", "search_strategy", "trace_tokens", "longest_aligned",
           "ratio_budget", "budget_shares"]

BUDGET_SAMPLE = 400
"""Problems of the RL data's longest chains (from the validation stream) whose aligned traces set a ratio budget."""


def aligned_strategy(problem: Problem) -> str | list[str]:
    """The strategy each part's kind fits (the direct trace)."""
    if problem.parts:
        return [ALIGNED[part.kind] for part in problem.parts]
    return ALIGNED[problem.kind]


def search_strategy(problem: Problem) -> str | list[str]:
    """The other strategy on every part: the search."""
    other = {"forward": "backward", "backward": "forward"}
    aligned = aligned_strategy(problem)
    return [other[s] for s in aligned] if isinstance(aligned, list) else other[aligned]


def trace_tokens(tokenizer, problem: Problem, strategy: str | list[str]) -> int:
    """Tokens of a correct response with ``strategy``, its end-of-turn token included."""
    return len(tokenizer(write_trace(problem, strategy), add_special_tokens=False)["input_ids"]) + 1


def longest_aligned(tokenizer, config: ProblemConfig, n: int = BUDGET_SAMPLE) -> int:
    """The longest aligned trace among ``n`` problems of ``config``'s longest chains (``max_steps`` steps)."""
    sample = validation_set(config.replace(min_steps=config.max_steps), n)
    return max(trace_tokens(tokenizer, p, aligned_strategy(p)) for p in sample)


def ratio_budget(tokenizer, config: ProblemConfig, ratio: float) -> int:
    """``ratio`` times :func:`longest_aligned`, rounded up: the same budget in task terms in any tokenizer."""
    return math.ceil(ratio * longest_aligned(tokenizer, config))


def budget_shares(tokenizer, problems: Sequence[Problem], budget: int) -> dict[str, float]:
    """Of ``problems``, the share whose aligned trace fits ``budget`` tokens and the share whose search is cut."""
    aligned = [trace_tokens(tokenizer, p, aligned_strategy(p)) for p in problems]
    search = [trace_tokens(tokenizer, p, search_strategy(p)) for p in problems]
    return {"aligned_fit": sum(t <= budget for t in aligned) / len(problems),
            "search_cut": sum(t > budget for t in search) / len(problems),
            "longest_aligned": max(aligned), "median_search": sorted(search)[len(search) // 2]}

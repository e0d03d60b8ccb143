"""Rewards as functions of a Verdict: outcome (the study's), format penalty, process score."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .verifier import Verdict

__all__ = ["outcome_reward", "format_penalty", "process_score", "RewardSpec"]


def outcome_reward(verdict: Verdict) -> float:
    """1.0 if the final answer is right, else 0.0 (the paper's reward)."""
    return 1.0 if verdict.correct else 0.0


def format_penalty(verdict: Verdict, penalty: float = 0.1) -> float:
    """``-penalty`` for a response outside the grammar, else 0.0."""
    return 0.0 if verdict.well_formed else -penalty


def process_score(verdict: Verdict) -> float:
    """Fraction of checked items that are right, over at least the items a correct trace needs.

    A bare guess ("answer e4") scores 0; a correct trace, direct or search, scores 1.
    """
    return verdict.steps_correct / max(verdict.steps_checked, verdict.steps_expected, 1)


@dataclass(frozen=True)
class RewardSpec:
    """``outcome + process_weight * process_score + format_penalty(penalty=format_penalty)``.

    The defaults give the plain outcome reward. With ``process_weight > 0`` a
    wrong answer can earn a partial reward: that is the point of shaping.
    """

    format_penalty: float = 0.0
    process_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("format_penalty", "process_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")

    def __call__(self, verdict: Verdict) -> float:
        r = outcome_reward(verdict)
        if self.process_weight:
            r += self.process_weight * process_score(verdict)
        if self.format_penalty:
            r += format_penalty(verdict, self.format_penalty)
        return r

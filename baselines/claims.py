"""The study's claims as rules over what the stages logged: each one holds, does not hold, or is inconclusive.

A rule is a list of comparisons of measured fractions with thresholds (``FB on
6-9 after RL on 6-9 >= 90%``) or of two fractions' difference with a margin.
Each comparison is decided by the 95% interval of what it compares, not by the
point estimate alone: **holds** when the whole interval is on the claim's side
of the threshold, **does not hold** when it is all on the other side, and
**inconclusive** when the interval straddles it (or a number is missing: a
stage not run). A fraction's interval is Wilson's for its count of problems; a
difference's half-width is the root sum of squares of the two half-widths
(independent sets). A rule holds when all its comparisons hold, does not hold
when any does not, and is inconclusive otherwise. Rules are evaluated once per
replica (seed); the report counts the replicas in which each claim holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["HOLDS", "FAILS", "INCONCLUSIVE", "VERDICTS", "Share", "Check", "Claim", "wilson", "at_least", "at_most",
           "above", "at_most_above", "missing", "combine"]

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)

Z95 = 1.959964
"""The normal quantile of a two-sided 95% interval."""


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a fraction ``p`` of ``n`` trials."""
    if n < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Share:
    """A measured fraction and the number of problems (or samples) it rests on; ``value`` None: not measured (a
    stage not run); ``n`` None: unknown (a log older than the counts), so no interval."""

    name: str
    value: float | None
    n: int | None = None

    @property
    def measured(self) -> bool:
        return self.value is not None

    def interval(self) -> tuple[float, float]:
        return wilson(self.value, self.n) if self.n else (self.value, self.value)

    def text(self) -> str:
        lo, hi = self.interval()
        return f"{self.name} {100 * self.value:.1f}" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if self.n else "")


@dataclass(frozen=True)
class Check:
    """One comparison's verdict and its numbers in words."""

    verdict: str
    text: str


def _decide(lo: float, hi: float, threshold: float, greater: bool) -> str:
    if greater:
        return HOLDS if lo >= threshold else FAILS if hi < threshold else INCONCLUSIVE
    return HOLDS if hi <= threshold else FAILS if lo > threshold else INCONCLUSIVE


def at_least(x: Share, threshold: float) -> Check:
    """``x >= threshold`` (fractions, 0-1)."""
    if not x.measured:
        return missing(x.name)
    lo, hi = x.interval()
    return Check(_decide(lo, hi, threshold, True), f"{x.text()} >= {100 * threshold:.0f}")


def at_most(x: Share, threshold: float) -> Check:
    """``x <= threshold``."""
    if not x.measured:
        return missing(x.name)
    lo, hi = x.interval()
    return Check(_decide(lo, hi, threshold, False), f"{x.text()} <= {100 * threshold:.0f}")


def above(a: Share, b: Share, margin: float) -> Check:
    """``a - b >= margin``: ``a`` at least ``margin`` above ``b``."""
    return _difference(a, b, margin, True)


def at_most_above(a: Share, b: Share, margin: float) -> Check:
    """``a - b <= margin``: ``a`` at most ``margin`` above ``b``."""
    return _difference(a, b, margin, False)


def _difference(a: Share, b: Share, margin: float, greater: bool) -> Check:
    if not (a.measured and b.measured):
        return missing(" and ".join(x.name for x in (a, b) if not x.measured))
    d = a.value - b.value
    (alo, ahi), (blo, bhi) = a.interval(), b.interval()
    half = math.hypot((ahi - alo) / 2, (bhi - blo) / 2)
    lo, hi = max(-1.0, d - half), min(1.0, d + half)  # a difference of fractions lies in [-1, 1]
    text = f"{a.name} - {b.name} = {100 * d:.1f}" + (f" [{100 * lo:.1f}, {100 * hi:.1f}]" if half else "")
    return Check(_decide(lo, hi, margin, greater), f"{text} {'>=' if greater else '<='} {100 * margin:.0f}")


def missing(what: str) -> Check:
    return Check(INCONCLUSIVE, f"{what}: not measured")


def combine(checks: Sequence[Check]) -> str:
    """A rule's verdict from its comparisons'."""
    verdicts = {c.verdict for c in checks}
    return FAILS if FAILS in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts or not checks else HOLDS


@dataclass(frozen=True)
class Claim:
    """What the study reports, and the rule that tests it on one replica's logs."""

    text: str
    """The study's words."""
    rule: str
    """The rule, in words, as the report prints it."""
    check: Callable[..., list[Check]]
    """One replica's :class:`~baselines.report.Logs` -> its comparisons."""

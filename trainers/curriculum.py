"""An accuracy-driven RL curriculum: the training problems' step range rises when the policy masters the current one.

Where most problems of a hard range cannot be solved, most groups carry no reward signal and RL drifts to guessing
(docs/results.md); a curriculum starts on a range the policy can partly solve and moves on once its batch accuracy,
averaged over the last ``window`` batches drawn from that level, reaches ``threshold``. Levels are ``(min_steps,
max_steps)`` ranges of the RL problems, each with its own ``prompts`` problems from the env's stream; level ``k``'s
problems hold the training indices ``k * prompts .. (k + 1) * prompts - 1``, so a batch's level follows from its
indices alone, and a resumed run rebuilds the state from the levels and accuracies ``metrics.jsonl`` logged
(:meth:`Curriculum.replay`). Every process of a data-parallel run sees the same gathered batch metrics, so all of
them move at the same step without a collective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch
from torch.utils.data import Sampler

__all__ = ["Curriculum", "CurriculumSampler", "LEVEL", "ACCURACY"]

LEVEL = "train/curriculum/level"
"""Metric: the level the batch's problems came from (the mean when a level change falls inside a batch)."""
ACCURACY = "train/accuracy"
"""The batch accuracy the curriculum reads (``RLRun.score``'s metric)."""


@dataclass
class Curriculum:
    levels: tuple[tuple[int, int], ...]
    threshold: float
    window: int
    prompts: int
    """Training problems per level."""
    level: int = 0
    """The level new batches are drawn from."""
    started: dict[int, int] = field(default_factory=lambda: {0: 0})
    """Level -> the step of its first observed batch."""
    _recent: list[float] = field(default_factory=list)

    def level_of(self, index: int) -> int:
        return index // self.prompts

    def offset(self, level: int | None = None) -> int:
        """The first training index of ``level`` (the current one by default)."""
        return (self.level if level is None else level) * self.prompts

    def observe(self, step: int, indices: Sequence[int], accuracy: float) -> dict[str, float]:
        """Record a scored batch; move to the next level when the last ``window`` batches drawn wholly from the
        current level average at least ``threshold``. Returns the batch's curriculum metrics."""
        levels = [self.level_of(i) for i in indices]
        batch_level = sum(levels) / len(levels)
        if all(lv == self.level for lv in levels):  # a batch drawn before the last move does not count
            self._recent = (self._recent + [accuracy])[-self.window:]
            if self.level + 1 < len(self.levels) and len(self._recent) == self.window and \
                    sum(self._recent) / self.window >= self.threshold:
                self.level += 1
                self._recent = []
                self.started[self.level] = step + 1
        lo, hi = self.levels[int(round(batch_level))]
        return {LEVEL: batch_level, "train/curriculum/min_steps": lo, "train/curriculum/max_steps": hi}

    def replay(self, rows: Iterable[dict]) -> None:
        """Rebuild the state from logged train rows (``metrics.jsonl``, in step order): the level each batch came
        from and its accuracy, as :meth:`observe` saw them."""
        for row in rows:
            if row.get("phase") == "train" and LEVEL in row and float(row[LEVEL]).is_integer():
                self.observe(row["step"], [self.offset(int(row[LEVEL]))], row[ACCURACY])  # a batch of that level

    def summary(self) -> dict[str, object]:
        """For ``rl_summary.json``: the level reached and the step at which each level began."""
        return {"levels": [list(r) for r in self.levels], "final_level": self.level,
                "level_started_at_step": {str(k): v for k, v in sorted(self.started.items())}}


class CurriculumSampler(Sampler[int]):
    """TRL's ``RepeatSampler`` order (chunks of ``batch_size`` distinct prompts, each repeated ``mini_repeat_count``
    times, every chunk ``repeat_count`` times) over the current level's problems, the level read as each chunk is
    drawn. Each (epoch, level) has its own seeded order, so processes that share the seed draw the same prompts."""

    def __init__(self, curriculum: Curriculum, mini_repeat_count: int, batch_size: int, repeat_count: int,
                 seed: int) -> None:
        self.curriculum, self.mini_repeat_count, self.batch_size = curriculum, mini_repeat_count, batch_size
        self.repeat_count, self.seed, self.epoch = repeat_count, seed, 0

    def __len__(self) -> int:
        return (self.curriculum.prompts // self.batch_size) * self.batch_size * self.mini_repeat_count * \
            self.repeat_count

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self, level: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 1_009 + level)
        return torch.randperm(self.curriculum.prompts, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        orders: dict[int, list[int]] = {}
        for c in range(self.curriculum.prompts // self.batch_size):
            level = self.curriculum.level
            if level not in orders:
                orders[level] = self._order(level)
            chunk = [self.curriculum.offset(level) + i for i in orders[level][c * self.batch_size:
                                                                               (c + 1) * self.batch_size]]
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count
        self.epoch += 1

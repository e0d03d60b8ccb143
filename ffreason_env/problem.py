"""Problem (plain data) and its seeded generation: item ``index`` depends only on (config, seed, index)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, overload

from .config import ProblemConfig, check_int
from .field import INVERSE, apply, is_prime
from .symbols import SymbolTable

__all__ = ["Problem", "generate", "ProblemSet", "run_chain", "undo_chain"]

_MAX_INDEX = 2**64


def run_chain(ops: Sequence[tuple[str, int]], x: int, p: int) -> int:
    """Apply the ops in order (the forward direction)."""
    for op, c in ops:
        x = apply(op, c, x, p)
    return x


def undo_chain(ops: Sequence[tuple[str, int]], x: int, p: int) -> int:
    """Undo the ops in reverse order (the backward direction)."""
    for op, c in reversed(ops):
        x = apply(INVERSE[op], c, x, p)
    return x


@dataclass(frozen=True)
class Problem:
    """One problem.

    ``evaluation``: ``given`` is x0, ``answer`` is xk = ops applied to x0.
    ``inversion``: ``given`` is xk, ``answer`` is the x0 the ops map to it.
    ``composition``: ``parts`` are evaluation/inversion problems, part i+1's
    ``given`` is part i's ``answer``; ``given``/``answer`` are the first part's
    given and the last part's answer, and ``ops`` is empty.
    """

    kind: str
    p: int
    ops: tuple[tuple[str, int], ...]
    given: int
    answer: int
    symbols: SymbolTable
    parts: tuple["Problem", ...] = ()
    label_offset: int = 0
    """Op i is labelled ``i + label_offset`` in prompts and traces (see ProblemConfig.max_label_offset); in a
    composition, part i is numbered ``i + label_offset`` (ProblemConfig.max_part_offset)."""

    @property
    def part_numbers(self) -> range:
        """The numbers of a composition's parts in prompt and trace: from ``1 + label_offset``."""
        return range(1 + self.label_offset, 1 + self.label_offset + len(self.parts))

    @property
    def num_steps(self) -> int:
        """Operations in the problem (summed over parts)."""
        if self.parts:
            return sum(len(part.ops) for part in self.parts)
        return len(self.ops)

    def symbol(self, value: int) -> str:
        return self.symbols.by_value[value]

    def value(self, symbol: str) -> int | None:
        return self.symbols.value(symbol)

    def to_dict(self) -> dict[str, Any]:
        d = self._to_dict_without_symbols()
        d["symbols"] = self.symbols.to_dict()
        return d

    def _to_dict_without_symbols(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "p": self.p,
            "ops": [[op, c] for op, c in self.ops],
            "given": self.given,
            "answer": self.answer,
            "parts": [part._to_dict_without_symbols() for part in self.parts],
            "label_offset": self.label_offset,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Problem":
        """Rebuild a problem, checking it is consistent (answers follow from the ops)."""
        try:
            problem = cls._from_dict(d, SymbolTable.from_dict(d["symbols"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"problem: malformed dict ({type(e).__name__}: {e})") from None
        problem._check()
        return problem

    def _check(self) -> None:
        if not is_prime(self.p) or len(self.symbols.names) != self.p:
            raise ValueError(f"p: {self.p} is not prime or does not match {len(self.symbols.names)} symbols")
        if not 0 <= self.label_offset <= 10**6:
            raise ValueError(f"label_offset: expected an integer in [0, 10**6], got {self.label_offset}")
        if self.kind == "composition":
            if len(self.parts) < 2 or self.ops:
                raise ValueError("parts: a composition needs 2+ parts and no ops of its own")
            x = self.given
            for part in self.parts:
                if part.parts or part.given != x:
                    raise ValueError("parts: each part's given value must be the previous part's answer")
                part._check()
                x = part.answer
            if self.answer != x:
                raise ValueError(f"answer: {self.answer} is not the last part's answer {x}")
            return
        if self.kind not in ("evaluation", "inversion") or self.parts:
            raise ValueError(f"kind: unknown problem kind {self.kind!r}")
        if not self.ops or any(op not in INVERSE or not 0 < c < self.p for op, c in self.ops):
            raise ValueError(f"ops: need 1+ ops (name, constant in 1..p-1), got {self.ops}")
        if not 0 <= self.given < self.p:
            raise ValueError(f"given: {self.given} is not an element of GF({self.p})")
        chain = run_chain if self.kind == "evaluation" else undo_chain
        if chain(self.ops, self.given, self.p) != self.answer:
            raise ValueError(f"answer: {self.answer} does not follow from the ops and given value")

    @classmethod
    def _from_dict(cls, d: dict[str, Any], symbols: SymbolTable) -> "Problem":
        return cls(
            kind=str(d["kind"]),
            p=int(d["p"]),
            ops=tuple((str(op), int(c)) for op, c in d["ops"]),
            given=int(d["given"]),
            answer=int(d["answer"]),
            symbols=symbols,
            parts=tuple(cls._from_dict(part, symbols) for part in d.get("parts", ())),
            label_offset=int(d.get("label_offset", 0)),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Problem":
        return cls.from_dict(json.loads(text))


def _draw_ops(rng: random.Random, config: ProblemConfig) -> tuple[tuple[str, int], ...]:
    k = rng.randint(config.min_steps, config.max_steps)
    return tuple((rng.choice(config.ops), rng.randrange(1, config.p)) for _ in range(k))


def _simple(kind: str, ops, given: int, config: ProblemConfig, symbols: SymbolTable, offset: int) -> Problem:
    if kind == "evaluation":
        answer = run_chain(ops, given, config.p)
    else:
        answer = undo_chain(ops, given, config.p)
    return Problem(kind, config.p, ops, given, answer, symbols, label_offset=offset)


def _offset(rng: random.Random, most: int) -> int:
    # drawn only when the knob is on, so that configs without it keep their streams
    return rng.randint(0, most) if most else 0


def generate(config: ProblemConfig, seed: int, index: int) -> Problem:
    """Problem number ``index`` of the stream ``seed``: regenerable alone, in any process."""
    for name, v in (("seed", seed), ("index", index)):
        if isinstance(v, bool) or not hasattr(v, "__index__") or not 0 <= int(v) < _MAX_INDEX:
            raise ValueError(f"{name}: expected an integer in [0, 2**64), got {v!r}")
    rng = random.Random((int(seed) << 64) | int(index))
    symbols = config.symbols
    kind = rng.choices(config.problem_types, weights=config.type_weights)[0]
    given = rng.randrange(config.p)
    if kind != "composition":
        ops = _draw_ops(rng, config)
        return _simple(kind, ops, given, config, symbols, _offset(rng, config.max_label_offset))
    parts = []
    x = given
    for _ in range(rng.randint(config.min_parts, config.max_parts)):
        part_kind, ops = rng.choice(config.part_types), _draw_ops(rng, config)
        part = _simple(part_kind, ops, x, config, symbols, _offset(rng, config.max_label_offset))
        parts.append(part)
        x = part.answer
    return Problem("composition", config.p, (), given, x, symbols, tuple(parts), _offset(rng, config.max_part_offset))


class ProblemSet(Sequence[Problem]):
    """The first ``size`` problems of stream ``seed``, generated on access."""

    def __init__(self, config: ProblemConfig, seed: int = 0, size: int = 1000) -> None:
        check_int("size", size, 0, 2**63 - 1)
        generate(config, seed, 0)  # validates seed early
        self.config, self.seed, self.size = config, seed, size

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, i: int) -> Problem: ...
    @overload
    def __getitem__(self, i: slice) -> list[Problem]: ...
    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.size))]
        i = int(i)
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(f"index {i} out of range for a ProblemSet of size {self.size}")
        return generate(self.config, self.seed, i)

    def __iter__(self) -> Iterator[Problem]:
        return (generate(self.config, self.seed, i) for i in range(self.size))

    def __repr__(self) -> str:
        return f"ProblemSet(seed={self.seed}, size={self.size}, config={self.config})"


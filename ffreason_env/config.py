"""ProblemConfig: every difficulty knob of the task, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Sequence

from .field import OPS, is_prime
from .grammar import is_reserved, vocabulary
from .symbols import SymbolTable, make_symbol_table

__all__ = ["ProblemConfig", "PROBLEM_DEFAULTS", "KINDS", "PART_KINDS", "MAX_P", "MAX_STEPS", "MAX_PARTS", "check_int"]

KINDS: tuple[str, ...] = ("evaluation", "inversion", "composition")
PART_KINDS: tuple[str, ...] = ("evaluation", "inversion")
MAX_P = 65521
MAX_STEPS = 1000
MAX_PARTS = 100


def _as_tuple(name: str, value: Any) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{name}: expected a list of values, got {value!r}")
    return tuple(value)


def check_int(name: str, value: Any, lo: int, hi: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name}: must be in [{lo}, {hi}], got {value}")


def _check_choices(name: str, values: tuple, allowed: tuple[str, ...]) -> None:
    if not values:
        raise ValueError(f"{name}: must not be empty")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name}: unknown value {v!r}; expected a subset of {allowed}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: duplicate entries in {values}")


@dataclass(frozen=True)
class ProblemConfig:
    """What problems look like. Every field is a knob; invalid values raise ``ValueError``.

    Lists may be given for tuple fields (as YAML and JSON give them).
    """

    p: int = 11
    """The field's prime order."""
    min_steps: int = 2
    """Fewest operations in a chain (per part, for compositions)."""
    max_steps: int = 5
    """Most operations in a chain (per part, for compositions)."""
    ops: tuple[str, ...] = ("add", "mul")
    """Operations to draw from (subset of add, sub, mul, div); constants are non-zero."""
    problem_types: tuple[str, ...] = ("evaluation", "inversion")
    """Kinds to draw from (subset of evaluation, inversion, composition)."""
    type_weights: tuple[float, ...] | None = None
    """Mix weights, one per entry of ``problem_types``; None draws them uniformly."""
    min_parts: int = 2
    """Fewest sub-problems in a composition."""
    max_parts: int = 3
    """Most sub-problems in a composition."""
    part_types: tuple[str, ...] = ("evaluation", "inversion")
    """Kinds a composition's parts are drawn from (uniformly)."""
    symbol_prefix: str = "e"
    """Symbols are ``{prefix}0 .. {prefix}{p-1}`` unless ``symbol_names`` is given."""
    symbol_names: tuple[str, ...] | None = None
    """Explicit symbol names, in symbol order (length p)."""
    symbol_seed: int = 0
    """Seed of the element -> symbol permutation (the same for every problem)."""
    shuffle_symbols: bool = True
    """False writes element v as the v-th name (for debugging only: it leaks the numbers)."""
    max_label_offset: int = 0
    """Ops are labelled from ``1 + o`` (variables from ``x{o}``), ``o`` drawn from [0, max_label_offset]:
    lets a model trained on short chains meet every label a long chain uses. 0 labels from 1."""
    max_part_offset: int = 0
    """A composition's parts are numbered from ``1 + o``, ``o`` drawn from [0, max_part_offset]: lets a model
    trained on 2-part compositions write the part numbers (and read the ``result of part N``) of longer ones. 0
    numbers from 1."""

    def __post_init__(self) -> None:
        for name in ("ops", "problem_types", "part_types"):
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name)))
        for name in ("type_weights", "symbol_names"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _as_tuple(name, getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and its value."""
        check_int("p", self.p, 2, MAX_P)
        if not is_prime(self.p):
            raise ValueError(f"p: must be prime, got {self.p}")
        check_int("min_steps", self.min_steps, 1, MAX_STEPS)
        check_int("max_steps", self.max_steps, 1, MAX_STEPS)
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps: {self.min_steps} is greater than max_steps {self.max_steps}")
        _check_choices("ops", self.ops, OPS)
        _check_choices("problem_types", self.problem_types, KINDS)
        if self.type_weights is not None:
            if len(self.type_weights) != len(self.problem_types):
                raise ValueError(
                    f"type_weights: {len(self.type_weights)} weights for {len(self.problem_types)} problem_types"
                )
            for w in self.type_weights:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                    raise ValueError(f"type_weights: weights must be finite and >= 0, got {self.type_weights}")
            if sum(self.type_weights) <= 0:
                raise ValueError(f"type_weights: must not all be zero, got {self.type_weights}")
        check_int("min_parts", self.min_parts, 2, MAX_PARTS)
        check_int("max_parts", self.max_parts, 2, MAX_PARTS)
        if self.min_parts > self.max_parts:
            raise ValueError(f"min_parts: {self.min_parts} is greater than max_parts {self.max_parts}")
        _check_choices("part_types", self.part_types, PART_KINDS)
        check_int("symbol_seed", self.symbol_seed, 0, 2**63 - 1)
        check_int("max_label_offset", self.max_label_offset, 0, MAX_STEPS)
        check_int("max_part_offset", self.max_part_offset, 0, MAX_PARTS)
        if not isinstance(self.shuffle_symbols, bool):
            raise ValueError(f"shuffle_symbols: expected a bool, got {self.shuffle_symbols!r}")
        if self.symbol_names is None:
            if not isinstance(self.symbol_prefix, str) or not self.symbol_prefix:
                raise ValueError(f"symbol_prefix: must be a non-empty string, got {self.symbol_prefix!r}")
            _check_symbol("symbol_prefix", self.symbol_prefix + "0")
        else:
            if len(self.symbol_names) != self.p:
                raise ValueError(f"symbol_names: need exactly p={self.p} names, got {len(self.symbol_names)}")
            for name in self.symbol_names:
                _check_symbol("symbol_names", name)
            if len(set(self.symbol_names)) != self.p:
                raise ValueError(f"symbol_names: names must be distinct, got {self.symbol_names}")

    @cached_property
    def symbols(self) -> SymbolTable:
        return make_symbol_table(
            self.p, self.symbol_prefix, self.symbol_names, self.symbol_seed, self.shuffle_symbols
        )

    def vocabulary(self) -> list[str]:
        """Every word this config's prompts and traces can contain."""
        parts = self.max_parts + self.max_part_offset if "composition" in self.problem_types else 1
        return vocabulary(self.symbols.names, self.p, self.max_steps + self.max_label_offset, parts)

    def without_offsets(self) -> "ProblemConfig":
        """The task itself: steps and parts numbered from 1 (validation sets; the offsets are for training data)."""
        return self.replace(max_label_offset=0, max_part_offset=0)

    def replace(self, **changes: Any) -> "ProblemConfig":
        """A copy with some fields changed (validated)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: not a ProblemConfig field")
        return type(self)(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProblemConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: not a ProblemConfig field (known: {sorted(known)})")
        return cls(**d)



def _check_symbol(field: str, name: Any) -> None:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or not name.isprintable():
        raise ValueError(f"{field}: symbol {name!r} must be a non-empty printable string without whitespace")
    if is_reserved(name):
        raise ValueError(f"{field}: symbol {name!r} collides with a word of the prompt/trace grammar")


PROBLEM_DEFAULTS = ProblemConfig()
"""The settings a config that names none has (the adapters' defaults come from here)."""

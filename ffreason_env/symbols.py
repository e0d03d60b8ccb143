"""How field elements are written: a seeded relabelling of 0..p-1 as opaque symbols.

The study relabels numerals so that a pretrained model cannot lean on what it
knows about ordinary numbers: with the default table, symbol ``e3`` is *not*
the element 3. "Symbol order" (the order a search tries candidates in) is the
order of :attr:`SymbolTable.names`, i.e. ``e0, e1, e2, ...``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property, lru_cache

__all__ = ["SymbolTable", "make_symbol_table"]


@dataclass(frozen=True)
class SymbolTable:
    """``names`` in symbol order; element ``v`` is written ``names[perm[v]]``."""

    names: tuple[str, ...]
    perm: tuple[int, ...]

    def symbol(self, value: int) -> str:
        return self.names[self.perm[value]]

    def value(self, symbol: str) -> int | None:
        """The element a symbol stands for, or None if it is not a symbol of this table."""
        return self.value_of.get(symbol)

    @cached_property
    def value_of(self) -> dict[str, int]:
        return {self.names[j]: v for v, j in enumerate(self.perm)}

    @cached_property
    def by_value(self) -> tuple[str, ...]:
        """``by_value[v]`` is the symbol of element ``v``."""
        return tuple(self.names[j] for j in self.perm)

    @cached_property
    def search_order(self) -> tuple[int, ...]:
        """Elements in the order a search tries them: by symbol order."""
        order = [0] * len(self.perm)
        for v, j in enumerate(self.perm):
            order[j] = v
        return tuple(order)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "perm": list(self.perm)}

    @classmethod
    def from_dict(cls, d: dict) -> "SymbolTable":
        names = tuple(str(n) for n in d["names"])
        perm = tuple(int(j) for j in d["perm"])
        if sorted(perm) != list(range(len(names))):
            raise ValueError(f"perm: not a permutation of 0..{len(names) - 1}: {perm}")
        return cls(names, perm)


@lru_cache(maxsize=256)
def make_symbol_table(
    p: int, prefix: str = "e", names: tuple[str, ...] | None = None, seed: int = 0, shuffle: bool = True
) -> SymbolTable:
    """The table for a config; one shared object per distinct argument set."""
    if names is None:
        names = tuple(f"{prefix}{i}" for i in range(p))
    perm = list(range(p))
    if shuffle:
        random.Random(seed).shuffle(perm)
    return SymbolTable(tuple(names), tuple(perm))

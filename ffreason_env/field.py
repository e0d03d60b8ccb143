"""Arithmetic in GF(p): the four operations, how each is undone, primality."""

from __future__ import annotations

__all__ = ["OPS", "INVERSE", "apply", "affine", "is_prime"]

OPS: tuple[str, ...] = ("add", "sub", "mul", "div")
INVERSE: dict[str, str] = {"add": "sub", "sub": "add", "mul": "div", "div": "mul"}
"""The operation that undoes each one with the same constant (mul c is undone by div c = mul c^-1)."""


def apply(op: str, c: int, x: int, p: int) -> int:
    """Return ``x op c`` in GF(p). ``c`` must be non-zero for ``div``."""
    if op == "add":
        return (x + c) % p
    if op == "sub":
        return (x - c) % p
    if op == "mul":
        return (x * c) % p
    if op == "div":
        return (x * pow(c, -1, p)) % p
    raise ValueError(f"op: unknown operation {op!r}; expected one of {OPS}")


def affine(op: str, c: int, p: int) -> tuple[int, int]:
    """``(m, d)`` with ``apply(op, c, x, p) == (x * m + d) % p`` for every x: one op as two numbers, for the
    loops that run it once per candidate of a search."""
    if op == "add":
        return 1, c
    if op == "sub":
        return 1, -c
    if op == "mul":
        return c, 0
    if op == "div":
        return pow(c, -1, p), 0
    raise ValueError(f"op: unknown operation {op!r}; expected one of {OPS}")


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True

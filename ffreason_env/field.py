"""Arithmetic in GF(p): the four operations, how each is undone, primality."""

from __future__ import annotations

__all__ = ["OPS", "INVERSE", "apply", "is_prime"]

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

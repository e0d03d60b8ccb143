"""Reference reasoning traces: the forward and backward strategies, direct or by search.

Grammar (one item per line, words separated by single spaces)::

    step I OP C : A -> B                         a direct step: op number I, written OP C, takes A to B
    try X : I OP C : A -> B ; ... ; R = G yes|no a search line: candidate X run through the chain to R,
                                                 compared with the given value G
    part N                                       (compositions) start of part N
    result X                                     (compositions) part's result
    answer X                                     the final answer, always the last line

``forward`` applies op 1..k in order; ``backward`` undoes op k..1 (add c by
``sub c``, mul c by ``div c``). On its aligned kind a strategy writes direct
steps from the given value (forward/evaluation, backward/inversion); on the
other kind it searches: it tries candidates in symbol order, runs each through
the chain in its own direction, compares with the given value, and stops at the
first match. A search line ends by writing the value it reached next to the
given value (``e7 = e9 no``): the verdict then compares two adjacent words, and
the given value is copied from the previous ``=`` (in the prompt or the line
before) instead of being looked up far back in the prompt.

A step opens with the op's label and the op exactly as the prompt lists them
(``step 1 add e5``), so finding "op number i" in the prompt is one look-up
keyed on the label: what lets a small transformer align steps with ops.
"""

from __future__ import annotations

from typing import Sequence

from .field import INVERSE, affine
from .problem import Problem

__all__ = ["STRATEGIES", "ALIGNED", "write_trace"]

STRATEGIES: tuple[str, ...] = ("forward", "backward")
ALIGNED: dict[str, str] = {"evaluation": "forward", "inversion": "backward"}


def _plan(part: Problem, strategy: str) -> list[tuple[str, int, int]]:
    """The ops in the order ``strategy`` runs them, each as (its step's words up to the input, m, d) with
    output ``(input * m + d) % p``: worked out once, then run from every candidate a search tries."""
    sym, off, k = part.symbols.by_value, part.label_offset, len(part.ops)
    plan = []
    for i in range(1, k + 1) if strategy == "forward" else range(k, 0, -1):
        op, c = part.ops[i - 1]
        if strategy == "backward":
            op = INVERSE[op]
        plan.append((f"{i + off} {op} {sym[c]} : ", *affine(op, c, part.p)))
    return plan


def _run(plan: list[tuple[str, int, int]], x: int, sym: tuple[str, ...], p: int) -> tuple[list[str], int]:
    """The steps "I OP C : A -> B" of running ``x`` through the plan, and the value they reach."""
    steps = []
    for head, m, d in plan:
        y = (x * m + d) % p
        steps.append(f"{head}{sym[x]} -> {sym[y]}")
        x = y
    return steps, x


def _part_trace(part: Problem, strategy: str) -> tuple[list[str], int]:
    """The lines solving one (sub-)problem from its given value, and the value they reach."""
    sym, given, p = part.symbols.by_value, part.given, part.p
    plan = _plan(part, strategy)
    if ALIGNED[part.kind] == strategy:
        steps, x = _run(plan, given, sym, p)
        return [f"step {s}" for s in steps], x
    lines = []
    for candidate in part.symbols.search_order:
        steps, x = _run(plan, candidate, sym, p)
        hit = x == given
        chain = "".join([f"{s} ; " for s in steps])
        lines.append(f"try {sym[candidate]} : {chain}{sym[x]} = {sym[given]} {'yes' if hit else 'no'}")
        if hit:
            return lines, candidate
    raise AssertionError("a bijective chain always has a preimage")  # pragma: no cover


def write_trace(problem: Problem, strategy: str | Sequence[str]) -> str:
    """A correct response to ``problem`` that uses ``strategy``.

    For a composition ``strategy`` may be one name for every part or one per part.
    """
    if isinstance(strategy, str):
        strategies = [strategy] * max(1, len(problem.parts))
    else:
        strategies = list(strategy)
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"strategy: {s!r} is not one of {STRATEGIES}")
    if not problem.parts:
        if len(strategies) != 1:
            raise ValueError(f"strategy: one strategy needed for a {problem.kind} problem, got {strategies}")
        lines, x = _part_trace(problem, strategies[0])
        return "\n".join([*lines, f"answer {problem.symbol(x)}"])
    if len(strategies) != len(problem.parts):
        raise ValueError(f"strategy: {len(problem.parts)} parts but {len(strategies)} strategies")
    out = []
    for n, part, s in zip(problem.part_numbers, problem.parts, strategies):
        lines, x = _part_trace(part, s)
        out += [f"part {n}", *lines, f"result {problem.symbol(x)}"]
    out.append(f"answer {problem.symbol(x)}")
    return "\n".join(out)

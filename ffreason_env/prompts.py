"""The question text a policy sees. Words come from :mod:`ffreason_env.grammar`.

Evaluation (ops listed in order, x0 given)::

    evaluation over GF(11)
    step 1 add e5
    step 2 mul e2
    given x0 = e3 , find x2

Inversion: the same with ``given x2 = e4 , find x0``. A composition lists its
parts; a later part's given value is ``result of part i``.
"""

from __future__ import annotations

from .grammar import field_word, variable
from .problem import Problem

__all__ = ["render_prompt"]


def _part_lines(part: Problem, given: str) -> list[str]:
    o, sym = part.label_offset, part.symbols.by_value
    first, last = variable(o), variable(o + len(part.ops))
    lines = [f"step {i} {op} {sym[c]}" for i, (op, c) in enumerate(part.ops, start=o + 1)]
    if part.kind == "evaluation":
        lines.append(f"given {first} = {given} , find {last}")
    else:
        lines.append(f"given {last} = {given} , find {first}")
    return lines


def render_prompt(problem: Problem) -> str:
    """The user-facing question for ``problem``."""
    gf = field_word(problem.p)
    if not problem.parts:
        return "\n".join([f"{problem.kind} over {gf}", *_part_lines(problem, problem.symbol(problem.given))])
    lines = [f"composition of {len(problem.parts)} parts over {gf}"]
    for i, part in enumerate(problem.parts, start=1):
        given = problem.symbol(part.given) if i == 1 else f"result of part {i - 1}"
        lines.append(f"part {i} : {part.kind}")
        lines.extend(_part_lines(part, given))
    return "\n".join(lines)

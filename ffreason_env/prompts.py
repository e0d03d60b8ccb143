"""The question text a policy sees. Words come from :mod:`ffreason_env.grammar`.

Evaluation (ops listed in order, x0 given)::

    evaluation over GF(11)
    step 1 add e5
    step 2 mul e2
    given x0 = e3 , find x2

Inversion: the same with ``given x2 = e4 , find x0``. A composition lists its
parts (numbered from 1, or from 1 + o under ``max_part_offset``); a later part's
given value is ``result of part i``.

That bare question is the study's prompt (its models are fine-tuned on the
grammar). :class:`PromptStyle` puts the same question to a model that never saw
it: ``instructed`` states the answer grammar first, ``few_shot`` shows solved
problems of the same kind first, written with a chosen strategy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import ProblemConfig, check_int
from .grammar import field_word, variable
from .problem import Problem, generate
from .traces import ALIGNED, STRATEGIES, write_trace

__all__ = ["render_prompt", "PromptStyle", "PROMPT_STYLES", "SHOT_STRATEGIES", "SHOT_SEED"]

PROMPT_STYLES = ("bare", "instructed", "few_shot")
SHOT_STRATEGIES = ("aligned", "misaligned", *STRATEGIES)
SHOT_SEED = 2_000_003
"""Problem stream of few-shot examples (training uses small seeds, validation 1_000_003)."""

INSTRUCTIONS = """\
Solve the problem below. Each symbol (e0, e1, ...) names a hidden element of the finite field; \
x0, x1, ... are the values before and after each step. Write only these lines, one per line:
- a direct step, in order from the given value: step I OP C : IN -> OUT (backward from a given last \
value, apply each step's inverse: sub for add, div for mul, add for sub, mul for div)
- or a search over candidates in symbol order: try X : I OP C : IN -> OUT ; ... ; R = G yes|no
- for a composition, part N before each part's lines and result X after them
- last, exactly one line: answer X"""
"""What the ``instructed`` style says before the question."""


@dataclass(frozen=True)
class PromptStyle:
    """How a problem is put to a model.

    ``bare`` (the default) is the study's question alone. ``instructed`` states the answer grammar first
    (:data:`INSTRUCTIONS`). ``few_shot`` shows ``shots`` solved problems first: items ``0..shots-1`` of stream
    :data:`SHOT_SEED`, of the question's kind, field and symbols, 2-3 steps (parts of 2 steps for a
    composition), each written with ``shot_strategy`` (``aligned``, ``misaligned``, ``forward`` or
    ``backward``: which strategy the examples teach is itself an experimental arm)."""

    name: str = "bare"
    """bare | instructed | few_shot."""
    shots: int = 2
    """few_shot: solved examples before the question (1-16)."""
    shot_strategy: str = "aligned"
    """few_shot: the examples' strategy: aligned | misaligned | forward | backward."""

    def __post_init__(self) -> None:
        if self.name not in PROMPT_STYLES:
            raise ValueError(f"prompt_style: expected one of {PROMPT_STYLES}, got {self.name!r}")
        check_int("shots", self.shots, 1, 16)
        if self.shot_strategy not in SHOT_STRATEGIES:
            raise ValueError(f"shot_strategy: expected one of {SHOT_STRATEGIES}, got {self.shot_strategy!r}")

    def examples(self, problem: Problem) -> list[Problem]:
        """The few-shot examples of ``problem``: the same for every question of its kind, field and symbols."""
        kinds = [problem.kind] if not problem.parts else ["composition"]
        config = ProblemConfig(p=problem.p, min_steps=2, max_steps=2 if problem.parts else 3, problem_types=kinds,
                               min_parts=2, max_parts=2)
        out = []
        for i in range(self.shots):
            shot = generate(config, SHOT_SEED, i)
            parts = tuple(dataclasses.replace(part, symbols=problem.symbols) for part in shot.parts)
            out.append(dataclasses.replace(shot, symbols=problem.symbols, parts=parts))
        return out

    def strategy(self, problem: Problem) -> list[str]:
        """The strategy of each part of an example (one for an atomic problem)."""
        kinds = [part.kind for part in problem.parts] or [problem.kind]
        if self.shot_strategy in STRATEGIES:
            return [self.shot_strategy] * len(kinds)
        flip = self.shot_strategy == "misaligned"
        return [(("backward" if ALIGNED[k] == "forward" else "forward") if flip else ALIGNED[k]) for k in kinds]


def _part_lines(part: Problem, given: str) -> list[str]:
    o, sym = part.label_offset, part.symbols.by_value
    first, last = variable(o), variable(o + len(part.ops))
    lines = [f"step {i} {op} {sym[c]}" for i, (op, c) in enumerate(part.ops, start=o + 1)]
    if part.kind == "evaluation":
        lines.append(f"given {first} = {given} , find {last}")
    else:
        lines.append(f"given {last} = {given} , find {first}")
    return lines


def render_prompt(problem: Problem, style: PromptStyle | str = "bare") -> str:
    """The user-facing question for ``problem``, in ``style`` (a :class:`PromptStyle` or its name)."""
    style = PromptStyle(style) if isinstance(style, str) else style
    if style.name == "bare":
        return _question(problem)
    if style.name == "instructed":
        return f"{INSTRUCTIONS}\n\n{_question(problem)}"
    shots = [f"{_question(shot)}\n{write_trace(shot, style.strategy(shot))}" for shot in style.examples(problem)]
    return "\n\n".join([*shots, _question(problem)])


def _question(problem: Problem) -> str:
    gf = field_word(problem.p)
    if not problem.parts:
        return "\n".join([f"{problem.kind} over {gf}", *_part_lines(problem, problem.symbol(problem.given))])
    lines = [f"composition of {len(problem.parts)} parts over {gf}"]
    for i, part in zip(problem.part_numbers, problem.parts):
        given = problem.symbol(part.given) if i == problem.part_numbers[0] else f"result of part {i - 1}"
        lines.append(f"part {i} : {part.kind}")
        lines.extend(_part_lines(part, given))
    return "\n".join(lines)

"""The words prompts and traces are made of, shared by writer, verifier and tokenizers.

Every prompt and trace is a sequence of whitespace-separated words drawn from
:func:`vocabulary`, so a word-level tokenizer built from it loses nothing.
"""

from __future__ import annotations

from .field import OPS

__all__ = ["KEYWORDS", "vocabulary", "is_reserved", "is_guess"]

STEP, TRY, YES, NO = "step", "try", "yes", "no"
ANSWER, PART, RESULT = "answer", "part", "result"
COLON, EQUALS, SEMI, COMMA, ARROW = ":", "=", ";", ",", "->"
PROMPT_WORDS = ("evaluation", "inversion", "composition", "over", "of", "parts", "given", "find")

KEYWORDS: frozenset[str] = frozenset(
    (STEP, TRY, YES, NO, ANSWER, PART, RESULT, COLON, EQUALS, SEMI, COMMA, ARROW, *PROMPT_WORDS, *OPS)
)


def field_word(p: int) -> str:
    return f"GF({p})"


def variable(i: int) -> str:
    return f"x{i}"


def is_reserved(word: str) -> bool:
    """True for words a symbol may not be named: keywords, numbers, variables, GF(..)."""
    return (
        word in KEYWORDS
        or word.isdigit()
        or (word[:1] == "x" and word[1:].isdigit())
        or word.startswith("GF(")
    )


WORK_WORDS = (STEP, TRY)
"""The first words of the lines that do work: a direct step and a search's try, each applying operations."""


def is_guess(response: str) -> bool:
    """True for a response that shows no work: no step or try line applies an operation of the field (a bare
    ``answer X``, an empty response, free text, part headers and results alone, a degenerate ``try e0 : e0 -> e0``).
    Where most problems cannot be solved, such a guess earns 1/p of the outcome reward on average, and RL can drift
    to it; a wrong or malformed step that names an operation is still work."""
    lines = (line.split() for line in response.splitlines())
    return not any(words and words[0] in WORK_WORDS and any(w in OPS for w in words[1:]) for words in lines)


def vocabulary(symbols: tuple[str, ...], p: int, max_steps: int, max_parts: int = 2) -> list[str]:
    """Every word a prompt or trace can contain for these settings, in a stable order."""
    numbers = [str(i) for i in range(1, max(max_steps, max_parts) + 1)]
    variables = [variable(i) for i in range(max_steps + 1)]
    fixed = [STEP, TRY, YES, NO, ANSWER, PART, RESULT, COLON, EQUALS, SEMI, COMMA, ARROW, *PROMPT_WORDS, *OPS]
    return [*fixed, field_word(p), *symbols, *numbers, *variables]

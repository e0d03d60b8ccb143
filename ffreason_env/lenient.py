"""The lenient answer mode: what models never trained on the grammar write around a trace, removed before the
strict check (``verify(problem, response, mode="lenient")``).

The strict mode stays the default and the study's: its models are fine-tuned on the grammar, and every
deviation is a measured behaviour. The lenient mode rewrites the response by these rules, in order, and the
strict verifier then scores what is left (so ``well_formed`` says whether that text is in the grammar):

1. ``<think>`` ... ``</think>`` blocks are dropped (an unclosed ``<think>`` drops the rest of the response).
2. Chat special tokens (``<|im_end|>``, ``<|eot_id|>``, ``</s>``, ...) are dropped wherever they stand.
3. Code-fence lines (starting with three backticks) are dropped; so are ``*`` and backticks around a word.
4. A line whose first word is ``answer`` in any case, or the words ``final answer``, with an optional colon
   (``Answer: e3``, ``answer: e3``, ``Final answer e3``) is read as ``answer X``.
5. A period at the end of a line is dropped.
6. Lines before the first line of the grammar (``step``, ``try``, ``part``, ``result``, ``answer``) and after
   the last answer line are dropped: a preamble, a closing sentence.

Nothing else changes: a wrong step stays a wrong item, and a line of prose between two steps is still a line
outside the grammar.
"""

from __future__ import annotations

__all__ = ["lenient_text", "MODES"]

MODES = ("strict", "lenient")
"""Answer modes of :func:`~ffreason_env.verify`."""

_GRAMMAR_WORDS = frozenset({"step", "try", "part", "result", "answer"})


def _drop_think(text: str) -> str:
    out, rest = [], text
    while True:
        start = rest.find("<think>")
        if start < 0:
            out.append(rest)
            return "".join(out)
        out.append(rest[:start])
        end = rest.find("</think>", start)
        if end < 0:
            return "".join(out)
        rest = rest[end + len("</think>"):]


def _drop_special_tokens(text: str) -> str:
    out, i = [], 0
    while True:
        start = text.find("<|", i)
        if start < 0:
            out.append(text[i:])
            break
        end = text.find("|>", start + 2)
        if end < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        i = end + 2
    return "".join(out).replace("</s>", "").replace("<s>", "")


def _line(line: str) -> str | None:
    """One line after rules 3-5; None for a line to drop."""
    if line.lstrip().startswith("```"):
        return None
    words = [w.strip("*`") for w in line.split()]
    words = [w for w in words if w]
    if not words:
        return ""
    lowered = [w.lower() for w in words]
    if lowered[0] in ("answer", "answer:") or (lowered[0] == "final" and len(words) > 1
                                                and lowered[1] in ("answer", "answer:")):
        rest = words[2:] if lowered[0] == "final" else words[1:]
        if rest and rest[0] == ":":
            rest = rest[1:]
        words = ["answer", *rest]
    if words[-1].endswith(".") and len(words[-1]) > 1:
        words[-1] = words[-1][:-1]
    elif words[-1] == ".":
        words = words[:-1]
    return " ".join(words)


def lenient_text(response: str) -> str:
    """``response`` rewritten by the module's rules, for the strict verifier."""
    lines = [_line(t) for t in _drop_special_tokens(_drop_think(response)).split("\n")]
    kept = [t for t in lines if t is not None]
    grammar = [i for i, t in enumerate(kept) if t.split() and t.split()[0] in _GRAMMAR_WORDS]
    if not grammar:
        return "\n".join(kept)
    answers = [i for i in grammar if kept[i].split()[0] == "answer"]
    last = answers[-1] if answers else len(kept) - 1
    return "\n".join(kept[grammar[0]:last + 1])

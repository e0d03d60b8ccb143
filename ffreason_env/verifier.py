"""verify(): parse a response, check every line against the problem, label its strategy.

One function serves every consumer (envs, reward functions, evaluation,
exporters). It never raises on a string and runs in time linear in its length:
lines are split on ``\\n`` and words on whitespace, with no backtracking regex.

**Final answer.** The response's last non-empty line must be ``answer X`` with
``X`` a symbol, and no other line may start with ``answer``; otherwise the
answer is None and the response is not correct. Answer lists, several answer
lines and answers hidden inside other text are never rewarded.

**Strategy.** Each step (direct or inside a search line) names its op index
and the op it applies: writing op i as given votes ``forward``, writing its
inverse votes ``backward``. The majority labels the trace (a tie or no vote is
``unknown``). Compositions get one label per part; the overall label is the
shared one, ``mixed`` when parts differ, ``unknown`` if any part is unknown.

**Step checks.** Every line is an item that is right or wrong: a direct step
(right index, right op and constant for the strategy, input equal to the
previous written output, right arithmetic); each step inside a search line
(same checks, chained from the candidate); each search verdict (the candidate
is the next in symbol order, the chain is complete, the comparison ``R = G``
writes the value the chain reached and the given value, ``yes`` exactly when
they are equal, and no try after a ``yes``); each ``result`` and the
``answer`` line (equal to what the trace derived; the answer line must be
last); any line that does not parse is a wrong item. ``first_error`` is the
position of the first wrong item among ``steps_checked`` items.
"""

from __future__ import annotations

from dataclasses import dataclass

from .field import INVERSE, OPS, affine, apply
from .lenient import MODES, lenient_text
from .problem import Problem
from .traces import ALIGNED

__all__ = ["Verdict", "verify", "LABELS"]

LABELS: tuple[str, ...] = ("forward", "backward", "mixed", "unknown")
_OP = {op: op for op in OPS}
_VERDICTS = {"yes": True, "no": False}


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found in one response."""

    kind: str
    correct: bool
    """The final answer equals the problem's answer (the outcome reward)."""
    answer: int | None
    """The parsed final answer (a field element), None if there is no valid one."""
    strategy: str
    """forward | backward | unknown; compositions may also be mixed."""
    part_strategies: tuple[str, ...]
    """One label per composition part (empty for single problems)."""
    aligned: bool
    """Every part used the strategy that fits its kind (forward/evaluation, backward/inversion)."""
    steps_checked: int
    steps_correct: int
    steps_expected: int
    """Items in the shortest correct response (direct steps, results, answer)."""
    first_error: int | None
    """Position of the first wrong item, or None."""
    first_error_line: int | None
    """0-based line number of the first wrong item in the response, or None."""
    well_formed: bool
    """Every line follows the grammar and the answer line is single and last."""

    def to_dict(self) -> dict:
        d = {name: getattr(self, name) for name in _FIELDS}  # every value is immutable: no deep copy needed
        d["part_strategies"] = list(self.part_strategies)
        return d


_FIELDS = tuple(Verdict.__dataclass_fields__)


def _verdict(**values) -> Verdict:
    """``Verdict(**values)`` without the frozen ``__init__``'s one ``object.__setattr__`` per field (a third
    of verifying a short response)."""
    verdict = object.__new__(Verdict)
    verdict.__dict__.update(values)
    return verdict


def _index(tok: str) -> int | None:
    return int(tok) if len(tok) <= 6 and tok.isascii() and tok.isdigit() else None


def _steps(t: list[str], first: int, stop: int, value_of: dict[str, int]) -> list[tuple] | None:
    """Parse the steps ``I OP C : A -> B`` that start every 8 words from t[first] to before t[stop], each but a
    direct line's one followed by ``;``, into (I, A, OP, C, B) tuples, a None marking a word that is not what
    it should be; None when the punctuation is wrong."""
    get, steps, n = value_of.get, [], len(t)
    for s in range(first, stop, 8):
        if t[s + 3] != ":" or t[s + 5] != "->" or (s + 7 < n and t[s + 7] != ";"):
            return None
        steps.append((_index(t[s]), get(t[s + 4]), _OP.get(t[s + 1]), get(t[s + 2]), get(t[s + 6])))
    return steps


def _parse(t: list[str], value_of: dict[str, int]):
    """One line's words -> (tag, payload, syntax_ok), or None for a line outside the grammar."""
    head, n = t[0], len(t)
    if head == "step":
        steps = _steps(t, 1, 2, value_of) if n == 8 else None
        if steps is None:
            return None
        return ("step", steps[0], None not in steps[0])
    if head == "try":  # try X : steps ; R = G yes|no
        if n < 7 or t[2] != ":" or t[-1] not in _VERDICTS or t[-3] != "=" or (n - 7) % 8:
            return None
        steps = _steps(t, 3, n - 4, value_of)
        if steps is None:
            return None
        cand, reached, target = value_of.get(t[1]), value_of.get(t[-4]), value_of.get(t[-2])
        return ("try", (cand, steps, reached, target, _VERDICTS[t[-1]]),
                None not in (cand, reached, target) and not any(None in st for st in steps))
    if head == "answer" or head == "result":
        if n != 2:
            return None
        v = value_of.get(t[1])
        return (head, v, v is not None)
    if head == "part":
        if n != 2:
            return None
        i = _index(t[1])
        return ("part", i, i is not None)
    return None


def _label(block, part: Problem) -> str:
    """The block's strategy: ``forward`` if more of its steps write op i as given than write its inverse,
    ``backward`` if fewer, else ``unknown``."""
    ops, off = part.ops, part.label_offset
    k = len(ops)
    votes = 0
    for _, tag, payload in block:
        if tag == "step":
            steps = (payload,)
        elif tag == "try":
            steps = payload[1]
        else:
            continue
        for i, _, op, _, _ in steps:
            if i is not None and 1 <= i - off <= k:
                op0 = ops[i - off - 1][0]
                if op == op0:
                    votes += 1
                elif op == INVERSE[op0]:
                    votes -= 1
    return "forward" if votes > 0 else ("backward" if votes < 0 else "unknown")


class _Items:
    """Every checked item's verdict and response line, in order."""

    __slots__ = ("ok", "lines")

    def __init__(self) -> None:
        self.ok: list[bool] = []
        self.lines: list[int] = []

    def add(self, ok: bool, line: int, count: int = 1) -> None:
        self.ok += [ok] * count
        self.lines += [line] * count


def _check_block(block, part, given, strategy, composite, last_line, is_last_part, items) -> tuple[int | None, int | None]:
    """Check one part's lines; return (value it derived, value its result line wrote)."""
    direct = search = False
    if part is not None and strategy in ("forward", "backward"):
        direct = ALIGNED[part.kind] == strategy
        search = not direct
    backward = strategy == "backward"
    k = len(part.ops) if part is not None else 0
    if direct or search:
        p, off, ops = part.p, part.label_offset, part.ops
    if search:
        # a search runs every op once per candidate: per op position 1..k (index 0 unused) the op and
        # constant a step must write, and the output it must reach from input a, as (a * mul + add) % p
        want, consts, mul, add = [None], [None], [0], [0]
        for op, c in ops:
            if backward:
                op = INVERSE[op]
            m, d = affine(op, c, p)
            want.append(op)
            consts.append(c)
            mul.append(m)
            add.append(d)
    sign = -1 if backward else 1
    start = k if backward else 1
    ok, lines = items.ok, items.lines
    exp_i, cur, n_direct = start, given, 0
    n_try, found, order = 0, None, part.symbols.search_order if part is not None else ()
    written = None

    for line, tag, payload in block:
        if tag == "step" and direct:
            i, a, op, c, b = payload
            if i is not None and i - off == exp_i and 1 <= exp_i <= k and a is not None and a == cur:
                op0, c0 = ops[exp_i - 1]
                ok.append(op == (INVERSE[op0] if backward else op0) and c == c0 and b == apply(op, c, a, p))
            else:
                ok.append(False)
            lines.append(line)
            cur = b
            exp_i = (exp_i if i is None else i - off) + sign
            n_direct += 1
        elif tag == "try" and search and found is None:
            cand, steps, reached, target, yes = payload
            expected = order[n_try] if n_try < len(order) else None
            n_try += 1
            x, ei = cand, start
            for i, a, op, c, b in steps:
                ok.append(i is not None and i - off == ei and 1 <= ei <= k and a is not None and a == x
                          and op == want[ei] and c == consts[ei] and b == (a * mul[ei] + add[ei]) % p)
                x = b
                ei = (ei if i is None else i - off) + sign
            complete = len(steps) == k and x is not None
            ok.append(cand is not None and cand == expected and complete and reached == x and target == given
                      and yes == (x == given))
            lines += [line] * (len(steps) + 1)
            if yes:
                found = cand
        elif tag == "bad":
            items.add(False, line, payload)
        elif tag == "try":  # not a search, or after the search found its value
            items.add(False, line, len(payload[1]) + 1)
        elif tag == "result" or tag == "answer":
            derived = (cur if n_direct == k else None) if direct else found
            if tag == "result":
                items.add(composite and payload is not None and payload == derived, line)
                written = payload
            else:
                items.add(line == last_line and is_last_part and payload is not None and payload == derived, line)
        else:  # a step outside a direct trace, or a part header inside a single problem
            items.add(False, line)
    return ((cur if n_direct == k else None) if direct else found), written


def verify(problem: Problem, response: str, mode: str = "strict") -> Verdict:
    """Check ``response`` against ``problem``. Never raises on a string; linear time.

    ``mode="lenient"`` first removes what models never trained on the grammar write around a trace (think
    blocks, chat tokens, code fences, ``Answer:``, a closing sentence: :mod:`ffreason_env.lenient`); ``strict``,
    the default, is the study's."""
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    if mode != "strict":
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        response = lenient_text(response)
    value_of = problem.symbols.value_of
    composite = bool(problem.parts)
    parts = problem.parts if composite else (problem,)
    blocks: list[list] = [[]]
    well_formed = True
    headers: list[int | None] = []
    results_per_block = [0]
    answer_lines = 0
    answer = None
    answer_line = -1
    last_line = -1
    block = blocks[0]

    for n, text in enumerate(response.split("\n")):
        t = text.split()
        if not t:
            continue
        last_line = n
        parsed = _parse(t, value_of)
        if parsed is None:
            well_formed = False
            if t[0] == "answer":
                answer_lines += 1
            if block and block[-1][1] == "bad":
                block[-1] = (block[-1][0], "bad", block[-1][2] + 1)
            else:
                block.append((n, "bad", 1))
            continue
        tag, payload, ok = parsed
        well_formed = well_formed and ok and (composite or tag != "part")
        if tag == "part" and composite:
            headers.append(payload)
            block = []
            blocks.append(block)
            results_per_block.append(0)
            continue
        if tag == "answer":
            answer_lines += 1
            answer, answer_line = payload, n
        elif tag == "result":
            results_per_block[-1] += 1
        block.append((n, tag, payload))

    items = _Items()
    labels = []
    if composite:
        items_given = problem.given
        if blocks[0]:
            _check_block(blocks[0], None, None, "unknown", True, last_line, False, items)
        for b in range(1, len(blocks)):
            part = parts[b - 1] if b <= len(parts) else None
            label = _label(blocks[b], part) if part is not None else "unknown"
            derived, written = _check_block(
                blocks[b], part, items_given, label, True, last_line, b == len(parts), items
            )
            if part is not None:
                labels.append(label)
            items_given = written if written is not None else derived
        labels += ["unknown"] * (len(parts) - len(labels))
        well_formed = (
            well_formed
            and headers == list(problem.part_numbers)
            and not blocks[0]
            and all(r == 1 for r in results_per_block[1:])
        )
        distinct = set(labels)
        strategy = labels[0] if len(distinct) == 1 else ("unknown" if "unknown" in distinct else "mixed")
        aligned = all(label == ALIGNED[part.kind] for label, part in zip(labels, parts))
        steps_expected = problem.num_steps + len(parts) + 1
    else:
        strategy = _label(blocks[0], problem)
        _check_block(blocks[0], problem, problem.given, strategy, False, last_line, True, items)
        aligned = strategy == ALIGNED[problem.kind]
        steps_expected = len(problem.ops) + 1
        well_formed = well_formed and results_per_block[0] == 0

    if answer_lines != 1 or answer_line != last_line:
        answer = None
    well_formed = well_formed and answer is not None
    checked = len(items.ok)
    correct = items.ok.count(True)
    first = items.ok.index(False) if correct < checked else None
    return _verdict(
        kind=problem.kind,
        correct=answer is not None and answer == problem.answer,
        answer=answer,
        strategy=strategy,
        part_strategies=tuple(labels),
        aligned=aligned,
        steps_checked=checked,
        steps_correct=correct,
        steps_expected=steps_expected,
        first_error=first,
        first_error_line=None if first is None else items.lines[first],
        well_formed=well_formed,
    )

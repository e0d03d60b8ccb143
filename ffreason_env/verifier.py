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
is the next in symbol order, the chain is complete, ``yes`` exactly when it
reaches the given value, and no try after a ``yes``); each ``result`` and the
``answer`` line (equal to what the trace derived; the answer line must be
last); any line that does not parse is a wrong item. ``first_error`` is the
position of the first wrong item among ``steps_checked`` items.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

from .field import INVERSE, OPS, apply
from .problem import Problem
from .traces import ALIGNED

__all__ = ["Verdict", "verify", "LABELS"]

LABELS: tuple[str, ...] = ("forward", "backward", "mixed", "unknown")
_OPS = frozenset(OPS)
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
        d = asdict(self)
        d["part_strategies"] = list(self.part_strategies)
        return d


def _index(tok: str) -> int | None:
    if len(tok) <= 6 and tok.isascii() and tok.isdigit():
        return int(tok)
    return None


def _step(t: list[str], s: int, value_of: dict[str, int]):
    """Parse ``I OP C : A -> B`` at t[s:s+7] into (I, A, OP, C, B); a None marks a word that is not what it should be."""
    op = t[s + 1]
    return (_index(t[s]), value_of.get(t[s + 4]), op if op in _OPS else None, value_of.get(t[s + 2]), value_of.get(t[s + 6]))


def _parse(t: list[str], value_of: dict[str, int]):
    """One line's words -> (tag, payload, syntax_ok), or None for a line outside the grammar."""
    head, n = t[0], len(t)
    if head == "step":
        if n == 8 and t[4] == ":" and t[6] == "->":
            st = _step(t, 1, value_of)
            return ("step", st, None not in st)
        return None
    if head == "try":
        if n < 4 or t[2] != ":" or t[-1] not in _VERDICTS or (n - 4) % 8:
            return None
        steps = []
        ok = True
        for s in range(3, n - 1, 8):
            if t[s + 3] != ":" or t[s + 5] != "->" or t[s + 7] != ";":
                return None
            st = _step(t, s, value_of)
            ok = ok and None not in st
            steps.append(st)
        cand = value_of.get(t[1])
        return ("try", (cand, steps, _VERDICTS[t[-1]]), ok and cand is not None)
    if head in ("answer", "result"):
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


class _Items:
    """Running tally of checked items."""

    __slots__ = ("checked", "correct", "first", "first_line")

    def __init__(self) -> None:
        self.checked = self.correct = 0
        self.first = self.first_line = None

    def add(self, ok: bool, line: int, count: int = 1) -> None:
        if ok:
            self.correct += count
        elif self.first is None:
            self.first, self.first_line = self.checked, line
        self.checked += count


def _position(st, part: Problem) -> int | None:
    """The op position (1..k when valid) a step's written label stands for."""
    return None if st[0] is None else st[0] - part.label_offset


def _advance(st, part: Problem, exp_i: int, sign: int) -> int:
    """The position the next step should apply: one on from what this step wrote (so one skip is one error)."""
    pos = _position(st, part)
    return (exp_i if pos is None else pos) + sign


def _vote(st, part: Problem, votes: list[int]) -> None:
    i, op = _position(st, part), st[2]
    if i is not None and 1 <= i <= len(part.ops):
        op0 = part.ops[i - 1][0]
        if op == op0:
            votes[0] += 1
        elif op == INVERSE[op0]:
            votes[1] += 1


def _label(votes: list[int]) -> str:
    if votes[0] > votes[1]:
        return "forward"
    if votes[1] > votes[0]:
        return "backward"
    return "unknown"


def _check_step(st, exp_i: int, x: int | None, part: Problem, backward: bool) -> bool:
    """``exp_i`` is the op position (1..k) this step should apply, ``x`` the input it should take."""
    _, a, op, c, b = st
    if _position(st, part) != exp_i or not 1 <= exp_i <= len(part.ops) or a is None or a != x:
        return False
    op0, c0 = part.ops[exp_i - 1]
    want = INVERSE[op0] if backward else op0
    return op == want and c == c0 and b == apply(op, c, a, part.p)


def _check_block(block, part, given, strategy, composite, last_line, is_last_part, items) -> tuple[int | None, int | None]:
    """Check one part's lines; return (value it derived, value its result line wrote)."""
    direct = search = False
    if part is not None and strategy in ("forward", "backward"):
        direct = ALIGNED[part.kind] == strategy
        search = not direct
    backward = strategy == "backward"
    k = len(part.ops) if part is not None else 0
    sign = -1 if backward else 1
    start = k if backward else 1
    exp_i, cur, n_direct = start, given, 0
    n_try, found, order = 0, None, part.symbols.search_order if part is not None else ()
    written = None

    def derived():
        if direct:
            return cur if n_direct == k else None
        return found

    for line, tag, payload in block:
        if tag == "bad":
            items.add(False, line, payload)
        elif tag == "step":
            if not direct:
                items.add(False, line)
                continue
            items.add(_check_step(payload, exp_i, cur, part, backward), line)
            cur = payload[4]
            exp_i = _advance(payload, part, exp_i, sign)
            n_direct += 1
        elif tag == "try":
            cand, steps, yes = payload
            if not search or found is not None:
                items.add(False, line, len(steps) + 1)
                continue
            expected = order[n_try] if n_try < len(order) else None
            n_try += 1
            x, ei = cand, start
            for st in steps:
                items.add(_check_step(st, ei, x, part, backward), line)
                x = st[4]
                ei = _advance(st, part, ei, sign)
            complete = len(steps) == k and x is not None
            items.add(cand is not None and cand == expected and complete and yes == (x == given), line)
            if yes:
                found = cand
        elif tag == "result":
            items.add(composite and payload is not None and payload == derived(), line)
            written = payload
        elif tag == "answer":
            items.add(line == last_line and is_last_part and payload is not None and payload == derived(), line)
        else:  # a part header inside a single problem
            items.add(False, line)
    return derived(), written


def verify(problem: Problem, response: str) -> Verdict:
    """Check ``response`` against ``problem``. Never raises on a string; linear time."""
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    value_of = problem.symbols.value_of
    composite = bool(problem.parts)
    parts = problem.parts if composite else (problem,)
    n_blocks = len(parts) + 1 if composite else 1
    blocks: list[list] = [[]]
    votes = [[0, 0] for _ in range(n_blocks)]
    well_formed = True
    headers: list[int | None] = []
    results_per_block = [0]
    answer_lines = 0
    answer = None
    answer_line = -1
    last_line = -1

    for n, text in enumerate(io.StringIO(response)):
        t = text.split()
        if not t:
            continue
        last_line = n
        parsed = _parse(t, value_of)
        block = blocks[-1]
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
            blocks.append([])
            results_per_block.append(0)
            continue
        b = len(blocks) - 1 if composite else 0
        part = parts[b - 1] if composite and 1 <= b <= len(parts) else (None if composite else problem)
        if part is not None:
            if tag == "step":
                _vote(payload, part, votes[b])
            elif tag == "try":
                for st in payload[1]:
                    _vote(st, part, votes[b])
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
            label = _label(votes[b]) if part is not None else "unknown"
            derived, written = _check_block(
                blocks[b], part, items_given, label, True, last_line, b == len(parts), items
            )
            if part is not None:
                labels.append(label)
            items_given = written if written is not None else derived
        labels += ["unknown"] * (len(parts) - len(labels))
        well_formed = (
            well_formed
            and headers == list(range(1, len(parts) + 1))
            and not blocks[0]
            and all(r == 1 for r in results_per_block[1:])
        )
        distinct = set(labels)
        strategy = labels[0] if len(distinct) == 1 else ("unknown" if "unknown" in distinct else "mixed")
        aligned = all(label == ALIGNED[part.kind] for label, part in zip(labels, parts))
        steps_expected = problem.num_steps + len(parts) + 1
    else:
        strategy = _label(votes[0])
        _check_block(blocks[0], problem, problem.given, strategy, False, last_line, True, items)
        aligned = strategy == ALIGNED[problem.kind]
        steps_expected = len(problem.ops) + 1
        well_formed = well_formed and results_per_block[0] == 0

    if answer_lines != 1 or answer_line != last_line:
        answer = None
    well_formed = well_formed and answer is not None
    return Verdict(
        kind=problem.kind,
        correct=answer is not None and answer == problem.answer,
        answer=answer,
        strategy=strategy,
        part_strategies=tuple(labels),
        aligned=aligned,
        steps_checked=items.checked,
        steps_correct=items.correct,
        steps_expected=steps_expected,
        first_error=items.first,
        first_error_line=items.first_line,
        well_formed=well_formed,
    )

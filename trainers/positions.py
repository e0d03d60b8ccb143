"""Coupled position ids: every line of a trace sits at the positions of the prompt line it applies.

A small transformer trained on 2-5-step chains finds "op number i" in the
prompt by its distance, and on 6-9-step chains that distance is one it never
saw: its look-ups land a line short (docs/log.md). Position coupling
(Cho et al., 2024, "Position Coupling: Improving Length Generalization of
Arithmetic Transformers Using Task Structure") takes the distance away: a
token's position id is computed from the label of the line it belongs to, so
the trace line ``step 7 ...`` and the prompt line ``step 7 ...`` get the same
position ids however long the chain, and every look-up is at a fixed
relative distance.

Positions are a function of the tokens alone (of the token and the one before
it), so generation computes them on the fly from what it has generated:

- a *label* (a number after ``step``, ``:`` or ``;``) L puts its line at
  ``L * label_stride``; the given variable ``xM`` (``given x3 = ...``) at
  ``M * label_stride + given_offset``, so that the trace's first line, which
  starts from it (at label M + 1 forward, at label M backward), is at a fixed
  distance from it; the tokens that follow count on from there until the
  next such token;
- each ``try`` line of a search moves everything by ``try_stride``, so the
  candidates' lines do not share positions;
- ``part N`` (a composition's part, at a line start) moves everything by
  ``N * part_stride`` and restarts the count of tries;
- the value of a part's ``result`` line (the token after ``result`` at a
  line start), when the prompt's next part N + 1 starts from it (``given xM
  = result of part N``), sits in part N + 1 where a given value would (two
  after that line's ``xM``), and the tokens after it count on from there.
  ``result`` itself counts on from part N's last line, so the value is
  written at a fixed distance from the line it comes from, and part N + 1
  reads it as a single problem reads its given value: both look-ups at
  distances learnt on single problems, not across a part's varying length;
- tokens before the first of these (the chat template, the header) keep their
  plain positions.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import cached_property

__all__ = ["PositionCoupling"]

_NUMBER = re.compile(r"^\u2581?(\d+)$")
_X = re.compile(r"^\u2581?x(\d+)$")
_ID_LISTS = ("label_after", "x_after", "part_after", "try_ids", "result_ids")


@dataclass(frozen=True)
class PositionCoupling:
    """Which tokens set a line's position, and how far apart lines, tries and parts are."""

    numbers: dict[int, int] = field(default_factory=dict)
    """token id -> the number it spells (labels and part numbers)"""
    xs: dict[int, int] = field(default_factory=dict)
    """token id -> M of a variable ``xM``"""
    label_after: tuple[int, ...] = ()
    """a number is a label when it follows one of these (``step``, ``:``, ``;``)"""
    x_after: tuple[int, ...] = ()
    """an ``xM`` sets a position when it follows one of these (``given``)"""
    part_after: tuple[int, ...] = ()
    """a number is a part number when it follows one of these (``part`` at a line start)"""
    try_ids: tuple[int, ...] = ()
    result_ids: tuple[int, ...] = ()
    """``result`` at a line start: the value after it is carried to the next part (empty in models coupled before
    the carry, which keep their positions)"""
    label_stride: int = 24
    given_offset: int = 9
    try_stride: int = 512
    part_stride: int = 8192
    """16 tries fit in a part: a search over GF(p) has at most p tries."""

    def __post_init__(self):
        # a direct line (label .. the next line's "step") spans 9 tokens, and the given line of a composition's
        # part ("xM = result of part 1 , find xN \n part") 12: offsets below that would overlap them
        if not 9 <= self.given_offset <= self.label_stride - 12:
            raise ValueError(f"label_stride/given_offset: expected 9 <= given_offset <= label_stride - 12, "
                             f"got {self.label_stride}/{self.given_offset}")
        top = max([*self.numbers.values(), *self.xs.values(), 0]) + 1
        if self.try_stride < top * self.label_stride:
            raise ValueError(f"try_stride: {self.try_stride} is below the {top} labels' span {top * self.label_stride}")

    @classmethod
    def from_tokenizer(cls, tokenizer, **strides) -> "PositionCoupling":
        """The coupling for a word-level tokenizer of the task's grammar (:mod:`trainers.tokenizer`)."""
        vocab = tokenizer.get_vocab()
        numbers = {i: int(m.group(1)) for t, i in vocab.items() if (m := _NUMBER.match(t))}
        xs = {i: int(m.group(1)) for t, i in vocab.items() if (m := _X.match(t))}
        label_after = tuple(vocab[t] for t in ("step", "\u2581step", "\u2581:", "\u2581;") if t in vocab)
        if not numbers or not xs or not label_after or "given" not in vocab:
            raise ValueError("position coupling needs the task's word-level vocabulary (labels, xM, step, given as "
                             "single tokens); this tokenizer lacks some of them")

        def ids(*words):
            return tuple(vocab[w] for w in words if w in vocab)

        return cls(numbers=numbers, xs=xs, label_after=label_after, x_after=ids("given", "\u2581given"),
                   part_after=ids("part"), try_ids=ids("try", "\u2581try"), result_ids=ids("result"), **strides)

    def to_dict(self) -> dict:
        """JSON-safe (for a model's config.json)."""
        d = asdict(self)
        d["numbers"] = [[k, v] for k, v in self.numbers.items()]
        d["xs"] = [[k, v] for k, v in self.xs.items()]
        for key in _ID_LISTS:
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PositionCoupling":
        d = dict(d)
        d["numbers"] = {int(k): int(v) for k, v in d["numbers"]}
        d["xs"] = {int(k): int(v) for k, v in d["xs"]}
        for key in _ID_LISTS:
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    @cached_property
    def _tables(self):
        """Per token id (one slot past the known ids stands for every other token): the number it spells (-1:
        none), its ``xM`` (-1: none), and whether it is a try, a ``result``, or comes before a label, a given
        ``xM``, a part."""
        import torch

        size = max([*self.numbers, *self.xs, *self.label_after, *self.x_after, *self.part_after, *self.try_ids,
                    *self.result_ids]) + 2

        def table(values: dict[int, int]):
            t = torch.full((size,), -1, dtype=torch.long)
            t[list(values)] = torch.tensor(list(values.values()))
            return t

        def member(ids: tuple[int, ...]):
            t = torch.zeros(size, dtype=torch.bool)
            t[list(ids)] = True
            return t

        return (table(self.numbers), table(self.xs), member(self.try_ids), member(self.label_after),
                member(self.x_after), member(self.part_after), member(self.result_ids))

    @cached_property
    def _parts(self) -> int:
        """Slots of the per-part table of given lines: every number the vocabulary spells, and one past the largest,
        so that the part after any part has a slot."""
        return max(self.numbers.values(), default=0) + 2

    def _flags(self, tables, tokens, prev):
        """Per token: whether it sets its line's position, the position it sets, and whether it is a part number,
        the number it spells, whether it is a try, a given ``xM`` and its M, and whether it follows ``result``."""
        import torch

        numbers, xs, tries_at, before_label, before_x, before_part, results = tables
        number = numbers[tokens]
        x = xs[tokens]
        is_label = (number >= 0) & before_label[prev]
        is_part = (number >= 0) & before_part[prev]
        is_try = tries_at[tokens]
        is_x = (x >= 0) & before_x[prev]
        anchor = torch.where(is_label, number * self.label_stride,
                             torch.where(is_x, x * self.label_stride + self.given_offset, 0))
        return is_label | is_x | is_try | is_part, anchor, is_part, number, is_try, is_x, x, results[prev]

    def _carry_anchor(self, given_m):
        """The position (within its part) of a result's value carried to a part whose given is ``xM``: that of a
        given value (``xM = value``)."""
        return given_m * self.label_stride + self.given_offset + 2

    def _scan(self, input_ids, attention_mask=None, with_state: bool = True):
        """Position ids of a whole ``[batch, seq]`` sequence, and (``with_state``) the state :meth:`advance`
        continues from."""
        import torch

        tables = tuple(t.to(input_ids.device) for t in self._tables)
        tokens = input_ids.clamp(max=len(tables[0]) - 1)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        seq = (mask.cumsum(-1) - 1).clamp(min=0)
        prev = torch.cat([torch.zeros_like(tokens[:, :1]), tokens[:, :-1]], dim=1)
        flagged, anchor, is_part, number, is_try, is_x, x, after_result = self._flags(tables, tokens, prev)
        index = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)

        def last(flag):  # index of the last flagged token at or before each token (-1: none yet)
            return torch.where(flag, index, -1).cummax(-1).values

        last_part = last(is_part)
        part_read = torch.where(last_part >= 0, number.gather(-1, last_part.clamp(min=0)), 0)  # each token's part
        last_move, part = last_part, part_read
        # a result's value is carried when the next part's given line came before it: that line's latest M (only
        # the tokens after a result are looked at, as this runs on every forward pass)
        rows, cols = after_result.nonzero(as_tuple=True)
        if len(rows):
            earlier = (index[rows] < cols[:, None]) & is_x[rows] & (part_read[rows] == part_read[rows, cols, None] + 1)
            given_at = torch.where(earlier, index[rows], -1).max(-1).values
            next_m = torch.full_like(tokens, -1)
            next_m[rows, cols] = torch.where(given_at >= 0, x[rows, given_at.clamp(min=0)], -1)
            is_carry = next_m >= 0
            flagged = flagged | is_carry
            anchor = torch.where(is_carry, self._carry_anchor(next_m), anchor)
            # a carried value moves the positions into the next part, as ``part N + 1`` will
            last_move = last(is_part | is_carry)
            moves_to = torch.where(is_carry, part_read + 1, number)
            part = torch.where(last_move >= 0, moves_to.gather(-1, last_move.clamp(min=0)), 0)
        last_anchor = last(flagged)
        at = last_anchor.clamp(min=0)
        base = anchor.gather(-1, at) - seq.gather(-1, at)  # a line's position minus its token count so far
        tries = is_try.long().cumsum(-1)
        tries = tries - torch.where(last_move >= 0, tries.gather(-1, last_move.clamp(min=0)), 0)
        anchored = last_anchor >= 0
        positions = torch.where(anchored, part * self.part_stride + tries * self.try_stride + base + seq, seq) * mask
        if not with_state:
            return positions, None
        # for advance: the M of each part's latest given line
        latest = torch.full((len(tokens), self._parts), -1, dtype=torch.long, device=input_ids.device)
        latest = latest.scatter_reduce(1, part_read, torch.where(is_x, index, -1), "amax")
        given = torch.where(latest >= 0, x.gather(-1, latest.clamp(min=0)), -1)
        state = {"prev": tokens[:, -1], "seq": seq[:, -1], "anchored": anchored[:, -1], "base": base[:, -1],
                 "part": part[:, -1], "tries": tries[:, -1], "part_read": part_read[:, -1], "given": given}
        return positions, state

    def position_ids(self, input_ids, attention_mask=None):
        """``[batch, seq]`` position ids for ``input_ids`` (left padding is read from ``attention_mask``)."""
        return self._scan(input_ids, attention_mask, with_state=False)[0]

    def start(self, input_ids, attention_mask=None) -> tuple:
        """``(position_ids, state)`` of a ``[batch, seq]`` prompt: its positions, and the state from which
        :meth:`advance` gives each next token's position."""
        return self._scan(input_ids, attention_mask)

    def advance(self, state: dict, tokens):
        """``(state, positions)`` after one more token per row (``tokens [batch]``): the last column of
        :meth:`position_ids` over the longer sequence, in a constant number of operations."""
        import torch

        tables = tuple(t.to(tokens.device) for t in self._tables)
        tokens = tokens.clamp(max=len(tables[0]) - 1)
        flagged, anchor, is_part, number, is_try, is_x, x, after_result = self._flags(tables, tokens, state["prev"])
        seq = state["seq"] + 1
        part_read = torch.where(is_part, number, state["part_read"])
        given = state["given"].scatter(1, part_read[:, None],
                                       torch.where(is_x, x, state["given"].gather(1, part_read[:, None])[:, 0])[:, None])
        next_m = given.gather(1, (part_read + 1)[:, None])[:, 0]
        is_carry = after_result & (next_m >= 0)
        flagged = flagged | is_carry
        anchor = torch.where(is_carry, self._carry_anchor(next_m), anchor)
        base = torch.where(flagged, anchor - seq, state["base"])
        anchored = state["anchored"] | flagged
        part = torch.where(is_part, number, torch.where(is_carry, part_read + 1, state["part"]))
        tries = torch.where(is_part | is_carry, 0, state["tries"]) + is_try.long()
        positions = torch.where(anchored, part * self.part_stride + tries * self.try_stride + base + seq, seq)
        return {"prev": tokens, "seq": seq, "anchored": anchored, "base": base, "part": part, "tries": tries,
                "part_read": part_read, "given": given}, positions

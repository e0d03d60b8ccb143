"""Strategy probes: how RL moves the way a model reasons, measured per problem and without sampling noise.

- **Teacher-forced preference** (:func:`trace_logprobs`, :func:`preference`): the log-probability the model gives
  to each strategy's reference trace as its response. Its sign says which strategy the model prefers on a
  problem before any sample is drawn, so the selection curve needs no sampling.
- **Per-problem transitions** (:func:`profiles`, :func:`transitions`): a fixed probe set sampled k times at each
  checkpoint; between two checkpoints the accuracy change splits exactly into *selection* (problems moved to a
  strategy that was already accurate) and *improvement* (a strategy got more accurate).
- **pass@k per kind and strategy** (:func:`pass_at_k_table`): whether sampling could already reach a correct
  answer of a strategy before RL, or RL made it reachable.
- **Where the gradient goes** (:func:`group_signal`): per RL step, the share of groups whose rewards are all equal
  (no signal) and the advantage mass per (kind, strategy).

The decomposition, per problem i with strategy shares ``pi`` and accuracy within a strategy ``a`` at the first
(0) and last (1) checkpoint, is ``A1 - A0 = sum_s (pi1(s) - pi0(s)) a0(s) + sum_s pi1(s) (a1(s) - a0(s))``: the
first sum is selection, the second improvement. A strategy the problem never used at 0 takes its accuracy
``a0(s)`` from every problem of the same kind at 0 (0 if none used it), so a switch to a strategy that works
elsewhere counts as selection; the two sums add up to the change whatever that estimate is.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from statistics import mean, stdev
from typing import Any, Sequence

from ffreason_env import ALIGNED, STRATEGIES, Problem, PromptStyle, render_prompt, verify, write_trace

from .evaluation import STRATEGY_LABELS, pass_at_k

__all__ = ["trace_logprobs", "preference", "profiles", "transitions", "pass_at_k_table", "probe_metrics",
           "group_signal", "PASS_KS", "PROBES_FILE"]

PASS_KS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""The k of pass@k tables (those at most the samples drawn)."""
PROBES_FILE = "probes.jsonl"
"""A run's probe-set samples by strategy, one line per checkpoint probed: ``{"step", "phase": "probe",
"profiles": [...]}`` (:func:`profiles`), written by the RL runs at each evaluation and by ``ffreason analyze``."""


def _flip(strategy: str) -> str:
    return "backward" if strategy == "forward" else "forward"


def _candidates(problem: Problem) -> list[tuple[str, ...]]:
    """The traces a problem's preference compares, as strategies per part: each strategy for an atomic problem;
    for a composition, every part at its aligned strategy, then each part in turn flipped."""
    if not problem.parts:
        return [(s,) for s in STRATEGIES]
    aligned = tuple(ALIGNED[part.kind] for part in problem.parts)
    return [aligned, *(aligned[:j] + (_flip(aligned[j]),) + aligned[j + 1:] for j in range(len(aligned)))]


def trace_logprobs(model, tokenizer, problems: Sequence[Problem], batch_size: int = 32,
                   style: PromptStyle | str = "bare") -> list[dict[tuple, tuple]]:
    """Per problem, ``{strategies: (log-probability, tokens)}`` of each candidate trace (:func:`_candidates`) as the
    response: the prompt (in ``style``) as generation renders it, the trace through its end-of-turn token, the
    tokens an SFT example labels (:func:`trainers.sft.sft_example`), summed in float32."""
    import torch

    from .sft import sft_example

    jobs = sorted(((i, c, sft_example(tokenizer, render_prompt(p, style), write_trace(p, list(c))))
                   for i, p in enumerate(problems) for c in _candidates(p)),
                  key=lambda job: len(job[2]["input_ids"]))  # a search trace is many times a direct one: batch alike
    out: list[dict[tuple, tuple]] = [{} for _ in problems]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            width = max(len(ex["input_ids"]) for _, _, ex in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (_, _, ex) in enumerate(chunk):  # right-padded: positions are those of the unpadded sequence
                n = len(ex["input_ids"])
                ids[row, :n], labels[row, :n], mask[row, :n] = torch.tensor(ex["input_ids"]), torch.tensor(ex["labels"]), 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
            target = labels[:, 1:].to(device)
            keep = target != -100
            logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0)[..., None])[..., 0] * keep
            for row, (i, c, _) in enumerate(chunk):
                out[i][c] = (float(logp[row].sum()), int(keep[row].sum()))
    finally:
        model.train(was_training)
    return out


def preference(problems: Sequence[Problem], logprobs: Sequence[dict[tuple, tuple]], prefix: str) -> dict[str, float]:
    """Metrics of :func:`trace_logprobs`: per kind, the share of problems whose aligned trace is the more probable
    (``{prefix}/{kind}/prefers_aligned``), the mean log-ratio aligned / other, total (``log_ratio``) and per token
    (``log_ratio_per_token``); for compositions per part j (``composition/part_j/...``), the all-aligned trace
    against the one with part j flipped."""
    ratios: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for p, lp in zip(problems, logprobs, strict=True):
        cands = _candidates(p)
        if not p.parts:
            (a_lp, a_n), (o_lp, o_n) = lp[(ALIGNED[p.kind],)], lp[(_flip(ALIGNED[p.kind]),)]
            ratios[p.kind].append((a_lp - o_lp, a_lp / a_n - o_lp / o_n))
            continue
        a_lp, a_n = lp[cands[0]]
        for j, c in enumerate(cands[1:], start=1):
            o_lp, o_n = lp[c]
            ratios[f"composition/part_{j}"].append((a_lp - o_lp, a_lp / a_n - o_lp / o_n))
    out = {}
    for group, rs in sorted(ratios.items()):
        out[f"{prefix}/{group}/prefers_aligned"] = sum(r > 0 for r, _ in rs) / len(rs)
        out[f"{prefix}/{group}/log_ratio"] = mean(r for r, _ in rs)
        out[f"{prefix}/{group}/log_ratio_per_token"] = mean(r for _, r in rs)
    return out


def profiles(problems: Sequence[Problem], samples: Sequence[Sequence[str]],
             answer_mode: str = "strict") -> list[dict[str, Any]]:
    """Each probe problem's sampled responses by strategy: ``{"kind", "num_steps", "n", "strategies": {s: [n,
    correct]}}`` (the verifier's labels and verdicts, in ``answer_mode``)."""
    out = []
    for p, texts in zip(problems, samples, strict=True):
        by: dict[str, list[int]] = {}
        for t in texts:
            v = verify(p, t, answer_mode)
            counts = by.setdefault(v.strategy, [0, 0])
            counts[0] += 1
            counts[1] += int(v.correct)
        out.append({"kind": p.kind, "num_steps": p.num_steps, "n": len(texts), "strategies": by})
    return out


def _modal(profile: dict) -> str:
    """The strategy a problem's samples use most (ties: the first of ``STRATEGY_LABELS``)."""
    return max(STRATEGY_LABELS, key=lambda s: (profile["strategies"].get(s, [0])[0], -STRATEGY_LABELS.index(s)))


def transitions(before: Sequence[dict], after: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """The accuracy change of the probe set between two checkpoints' :func:`profiles`, split into selection and
    improvement (module docstring), per kind and over ``all``; with the matrix of problems by their modal strategy
    before and after (``{from: {to: count}}``) and the share whose modal strategy changed."""
    if len(before) != len(after):
        raise ValueError(f"transitions: {len(before)} problems before, {len(after)} after: not one probe set")
    pooled: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (kind, strategy) at 0: [n, correct]
    for prof in before:
        for s, (n, c) in prof["strategies"].items():
            pooled[prof["kind"], s][0] += n
            pooled[prof["kind"], s][1] += c
    rows: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    matrix: dict[str, Counter] = defaultdict(Counter)
    for b, a in zip(before, after):
        if b["kind"] != a["kind"] or b["num_steps"] != a["num_steps"]:
            raise ValueError("transitions: the two checkpoints were probed on different problems")

        def acc0(s: str) -> float:
            n, c = b["strategies"].get(s, (0, 0))
            if n:
                return c / n
            n, c = pooled.get((b["kind"], s), (0, 0))
            return c / n if n else 0.0

        pi0 = {s: n / b["n"] for s, (n, _) in b["strategies"].items()}
        pi1 = {s: n / a["n"] for s, (n, _) in a["strategies"].items()}
        selection = sum((pi1.get(s, 0.0) - pi0.get(s, 0.0)) * acc0(s) for s in set(pi0) | set(pi1))
        improvement = sum(w * (a["strategies"][s][1] / a["strategies"][s][0] - acc0(s)) for s, w in pi1.items())
        a0 = sum(c for _, c in b["strategies"].values()) / b["n"]
        a1 = sum(c for _, c in a["strategies"].values()) / a["n"]
        for group in (b["kind"], "all"):
            rows[group].append((a0, a1, selection, improvement))
            matrix[group][_modal(b), _modal(a)] += 1
    out = {}
    for group, rs in sorted(rows.items()):
        grid: dict[str, dict[str, int]] = defaultdict(dict)
        for (s0, s1), n in sorted(matrix[group].items()):
            grid[s0][s1] = n
        out[group] = {"n": len(rs), "before": mean(r[0] for r in rs), "after": mean(r[1] for r in rs),
                      "selection": mean(r[2] for r in rs), "improvement": mean(r[3] for r in rs),
                      "switched": sum(n for (s0, s1), n in matrix[group].items() if s0 != s1) / len(rs),
                      "matrix": dict(grid)}
    return out


def pass_at_k_table(profiles_: Sequence[dict], ks: Sequence[int] = PASS_KS) -> dict[str, dict[str, dict[str, float]]]:
    """Unbiased pass@k of a probe set's :func:`profiles`, per kind (and ``all``): over every sample (``any``) and
    per strategy s, the chance that k samples hold a correct response that uses s. Only the k at most the samples
    per problem."""
    out: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for prof in profiles_:
        n = prof["n"]
        correct = {s: c for s, (_, c) in prof["strategies"].items()}
        for group in (prof["kind"], "all"):
            for k in (k for k in ks if k <= n):
                out[group]["any"][str(k)].append(pass_at_k(n, sum(correct.values()), k))
                for s in STRATEGY_LABELS:
                    out[group][s][str(k)].append(pass_at_k(n, correct.get(s, 0), k))
    return {g: {s: {k: mean(v) for k, v in by_k.items()} for s, by_k in by_s.items()} for g, by_s in out.items()}


def probe_metrics(first: Sequence[dict], now: Sequence[dict], prefix: str = "probe") -> dict[str, float]:
    """What an evaluation logs of the probe set: per kind and ``all``, the sampled accuracy, pass@k over every
    sample (k up to the samples), and against the first checkpoint's profiles the ``selection``,
    ``improvement`` and ``switched`` of :func:`transitions`."""
    out: dict[str, float] = {}
    for group, t in transitions(first, now).items():
        out.update({f"{prefix}/{group}/{k}": t[k] for k in ("selection", "improvement", "switched")})
        out[f"{prefix}/{group}/accuracy"] = t["after"]
    for group, by_strategy in pass_at_k_table(now).items():
        out.update({f"{prefix}/{group}/pass@{k}": v for k, v in by_strategy["any"].items()})
    return out


def group_signal(kinds: Sequence[str], strategies: Sequence[str], rewards: Sequence[float],
                 advantages: Sequence[float] | None = None, group_size: int = 0, scale: str = "group",
                 prefix: str = "train") -> dict[str, float]:
    """Where a batch's policy gradient goes: ``{prefix}/zero_std_groups`` (the share of groups of ``group_size``
    consecutive responses to one problem whose rewards are all equal, so their advantages are 0) and, per (kind,
    strategy), the sum of the positive and of the negative advantages (``{prefix}/{kind}/advantage/{s}/positive``,
    ``.../negative``), each divided by the batch size.

    ``advantages``: one per response (PPO: the mean over its tokens); None computes GRPO's as TRL does, reward
    minus the group mean, divided by the group's (``scale="group"``) or the batch's (``"batch"``) standard
    deviation (Bessel-corrected) + 1e-4, or not divided (``"none"``)."""
    n = len(rewards)
    if not n or len(kinds) != n or len(strategies) != n or (advantages is not None and len(advantages) != n):
        raise ValueError(f"group_signal: {len(kinds)} kinds, {len(strategies)} strategies, {n} rewards and "
                         f"{'no' if advantages is None else len(advantages)} advantages: one each per response")
    out: dict[str, float] = {}
    if group_size:
        if n % group_size:
            raise ValueError(f"group_signal: groups of {group_size} do not divide a batch of {n}")
        groups = [rewards[i:i + group_size] for i in range(0, n, group_size)]
        out[f"{prefix}/zero_std_groups"] = sum(max(g) == min(g) for g in groups) / len(groups)
        if advantages is None:
            if scale not in ("group", "batch", "none"):
                raise ValueError(f"scale: expected group, batch or none, got {scale!r}")
            batch_std = stdev(rewards) if n > 1 else 0.0
            advantages = []
            for g in groups:
                centre = mean(g)
                std = {"group": stdev(g) if len(g) > 1 else 0.0, "batch": batch_std, "none": None}[scale]
                advantages += [(r - centre) / (std + 1e-4) if std is not None else r - centre for r in g]
    if advantages is None:
        raise ValueError("group_signal: GRPO's advantages need group_size")
    mass: dict[tuple[str, str, str], float] = defaultdict(float)
    for kind, s, adv in zip(kinds, strategies, advantages):
        mass[kind, s, "positive" if adv > 0 else "negative"] += adv
    for kind in sorted(set(kinds)):
        for s in STRATEGY_LABELS:
            for sign in ("positive", "negative"):
                if (kind, s, "positive") in mass or (kind, s, "negative") in mass:
                    out[f"{prefix}/{kind}/advantage/{s}/{sign}"] = mass.get((kind, s, sign), 0.0) / n
    return out

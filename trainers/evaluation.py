"""Evaluation: accuracy, pass@k and strategy use of a model on fixed validation sets.

A library function first (:func:`evaluate`, also called by the RL trainers
every ``eval_every`` steps), a command second (``ffreason eval``). Verdicts and
strategy labels come from ``ffreason_env.verify`` only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from math import comb
from typing import Annotated, Any, Iterable, Sequence

import tyro

from ffreason_env import Problem, ProblemConfig, ProblemSet, PromptStyle, render_prompt, verify, write_trace
from ffreason_env.lenient import MODES
from ffreason_env.config import check_int
from ffreason_env.verifier import LABELS as STRATEGY_LABELS

from .generation import generate as sample
from .settings import OMIT_PREFIX

__all__ = [
    "VALIDATION_SEED",
    "EvalSettings",
    "EvalRunConfig",
    "validation_set",
    "pass_at_k",
    "summarize",
    "evaluate",
    "greedy_records",
    "format_report",
    "reference_max_tokens",
    "eval_set_name",
    "flatten",
]

VALIDATION_SEED = 1_000_003
"""Problem stream of validation sets; training data uses small seeds, so the streams differ."""


@dataclass(frozen=True)
class EvalSettings:
    """How a model is evaluated on a validation set."""

    n: Annotated[int, tyro.conf.arg(aliases=("-n",))] = 500
    """Validation problems (items 0..n-1 of the validation stream)."""
    samples: int = 0
    """Sampled completions per problem for pass@k and strategy fractions (0: greedy only)."""
    temperature: float = 1.0
    """Sampling temperature of ``samples``."""
    max_new_tokens: int | None = None
    """Generation budget; None: 1.25x the longest reference trace of the set (in the model's tokens)."""
    batch_size: int = 64
    """Sequences per generate call."""
    seed: int = VALIDATION_SEED
    """Problem stream of the validation set (and seed of the sampling)."""
    prompt_style: str = "bare"
    """How the questions are put: bare (the study's), instructed (the answer grammar first) or few_shot (solved
    examples first; ffreason_env.PromptStyle)."""
    shots: int = 2
    """few_shot: solved examples before each question."""
    shot_strategy: str = "aligned"
    """few_shot: the examples' strategy (aligned, misaligned, forward, backward)."""
    answer_mode: str = "strict"
    """How responses are read: strict (the study's) or lenient (ffreason_env.lenient)."""

    def __post_init__(self) -> None:
        check_int("n", self.n, 1, 2**31 - 1)
        check_int("samples", self.samples, 0, 2**31 - 1)
        check_int("batch_size", self.batch_size, 1, 2**31 - 1)
        if self.max_new_tokens is not None:
            check_int("max_new_tokens", self.max_new_tokens, 1, 2**31 - 1)
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature!r}")
        if self.answer_mode not in MODES:
            raise ValueError(f"answer_mode: expected one of {MODES}, got {self.answer_mode!r}")
        self.style()

    def style(self) -> PromptStyle:
        """The :class:`~ffreason_env.PromptStyle` of ``prompt_style``, ``shots`` and ``shot_strategy``."""
        return PromptStyle(self.prompt_style, self.shots, self.shot_strategy)


@dataclass(frozen=True)
class EvalRunConfig:
    """``ffreason eval``: a trained model on a validation set."""

    run_dir: tyro.conf.Positional[str]
    """A run directory (with model/) or a model directory."""
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    """The validation problems; by default the run's training problems (from its config.yaml), labels from 1."""
    settings: Annotated[EvalSettings, OMIT_PREFIX] = field(default_factory=EvalSettings)
    """How the model is evaluated (its flags carry no prefix: ``-n``, ``--samples``, ...)."""
    out: str | None = None
    """Report path (default RUN_DIR/eval_MIN-MAX.json)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""


def validation_set(config: ProblemConfig, n: int, seed: int = VALIDATION_SEED) -> list[Problem]:
    """The first ``n`` problems of the validation stream: the same set wherever it is built."""
    return list(ProblemSet(config, seed, n))


def eval_set_name(min_steps: int, max_steps: int) -> str:
    """The metric prefix of a validation set of ``min_steps``-``max_steps``-step problems (``eval_6-9``)."""
    return f"eval_{min_steps}-{max_steps}"


def flatten(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    """Metric names of a :func:`summarize` block, as every log and report spells them:
    ``{prefix}/accuracy``, ``{prefix}/{kind}/strategy/{s}``, ``{prefix}/steps/{k}/accuracy``, ...; the problem
    counts as ``{prefix}/n``, ``{prefix}/{kind}/n``, ``{prefix}/steps/{k}/n`` (a report's intervals need them)."""
    out = {f"{prefix}/{k}": summary[k] for k in ("n", "accuracy", "aligned", "mean_tokens") if k in summary}
    for kind, b in summary.get("per_kind", {}).items():
        out[f"{prefix}/{kind}/n"] = b["n"]
        out[f"{prefix}/{kind}/accuracy"] = b["accuracy"]
        out[f"{prefix}/{kind}/aligned"] = b["aligned"]
        for s, frac in b["strategy"].items():
            out[f"{prefix}/{kind}/strategy/{s}"] = frac
        for s, block in b["accuracy_by_strategy"].items():
            out[f"{prefix}/{kind}/accuracy_by_strategy/{s}"] = block["accuracy"]
    for steps, b in summary.get("per_steps", {}).items():
        out[f"{prefix}/steps/{steps}/n"] = b["n"]
        out[f"{prefix}/steps/{steps}/accuracy"] = b["accuracy"]
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def reference_max_tokens(tokenizer, problems: Sequence[Problem], margin: float = 1.25) -> int:
    """A generation budget that fits the longest correct response of either strategy."""
    longest = 0
    for problem in problems:
        for s in ("forward", "backward"):
            trace = write_trace(problem, s)
            longest = max(longest, len(tokenizer(trace, add_special_tokens=False)["input_ids"]))
    return int(longest * margin) + 8


def summarize(records: Iterable[tuple[Problem, Any, int]]) -> dict[str, Any]:
    """Accuracy and strategy use of ``(problem, verdict, num_tokens)`` records.

    Per kind: accuracy, the fraction of responses using each strategy (the
    fractions add up to 1), the aligned fraction, and accuracy per strategy used
    with, for its wrong responses, how many first went wrong at each item
    (``first_wrong_item``: item 0 is a direct trace's first step line): errors
    that pile up at the first items of long chains are look-ups that do not
    carry over, errors spread along the chain are slips that accumulate.
    """
    records = list(records)
    out: dict[str, Any] = {"n": len(records)}
    if not records:
        return out
    out["accuracy"] = sum(v.correct for _, v, _ in records) / len(records)
    out["well_formed"] = sum(v.well_formed for _, v, _ in records) / len(records)
    out["aligned"] = sum(v.aligned for _, v, _ in records) / len(records)
    out["mean_tokens"] = sum(t for _, _, t in records) / len(records)
    by_kind: dict[str, list] = defaultdict(list)
    by_steps: dict[int, list] = defaultdict(list)
    for r in records:
        by_kind[r[0].kind].append(r)
        by_steps[r[0].num_steps].append(r)
    out["per_kind"] = {}
    for kind, rs in sorted(by_kind.items()):
        labels = [v.strategy for _, v, _ in rs]
        per_strategy = {}
        for s in STRATEGY_LABELS:
            used = [v for _, v, _ in rs if v.strategy == s]
            if used:
                first = Counter(v.first_error for v in used if not v.correct and v.first_error is not None)
                per_strategy[s] = {"n": len(used), "accuracy": sum(v.correct for v in used) / len(used),
                                   "first_wrong_item": {str(i): first[i] for i in sorted(first)}}
        out["per_kind"][kind] = {
            "n": len(rs),
            "accuracy": sum(v.correct for _, v, _ in rs) / len(rs),
            "aligned": sum(v.aligned for _, v, _ in rs) / len(rs),
            "strategy": {s: labels.count(s) / len(rs) for s in STRATEGY_LABELS if kind == "composition" or s != "mixed"},
            "accuracy_by_strategy": per_strategy,
            "mean_tokens": sum(t for _, _, t in rs) / len(rs),
        }
    out["per_steps"] = {
        str(k): {"n": len(rs), "accuracy": sum(v.correct for _, v, _ in rs) / len(rs)} for k, rs in sorted(by_steps.items())
    }
    return out


def greedy_records(model, tokenizer, problems: Sequence[Problem], max_new_tokens: int, batch_size: int = 64,
                   progress: bool = False, engine=None, style: PromptStyle | str = "bare",
                   answer_mode: str = "strict") -> list[tuple[Problem, Any, int]]:
    """``(problem, verdict, num_tokens)`` of the greedy response to each problem, for :func:`summarize`;
    ``engine``: another greedy decoder (:func:`trainers.generation.vllm_engine`) in place of ``model``'s;
    ``style`` and ``answer_mode``: how questions are put and responses read (the study's: bare, strict)."""
    greedy = sample(model, tokenizer, [render_prompt(p, style) for p in problems], max_new_tokens=max_new_tokens,
                    batch_size=batch_size, progress=progress, desc="eval greedy", engine=engine)
    return [(p, verify(p, c[0].text, answer_mode), c[0].num_tokens) for p, c in zip(problems, greedy)]


def evaluate(model, tokenizer, problems: Sequence[Problem], settings: EvalSettings = EvalSettings(), progress: bool = True) -> dict[str, Any]:
    """Greedy accuracy and strategy use; with ``settings.samples = k``, also pass@1..k and sampled strategy use."""
    prompts = [render_prompt(p, settings.style()) for p in problems]
    max_new = settings.max_new_tokens or reference_max_tokens(tokenizer, problems)
    report: dict[str, Any] = {"max_new_tokens": max_new}
    report["greedy"] = summarize(greedy_records(model, tokenizer, problems, max_new, settings.batch_size, progress,
                                                style=settings.style(), answer_mode=settings.answer_mode))
    if settings.samples > 0:
        import torch

        torch.manual_seed(settings.seed)
        sampled = sample(model, tokenizer, prompts, num_samples=settings.samples, temperature=settings.temperature,
                         max_new_tokens=max_new, batch_size=settings.batch_size, progress=progress, desc="eval sampled")
        records, correct_counts = [], []
        for p, cs in zip(problems, sampled):
            verdicts = [verify(p, c.text, settings.answer_mode) for c in cs]
            records += [(p, v, c.num_tokens) for v, c in zip(verdicts, cs)]
            correct_counts.append(sum(v.correct for v in verdicts))
        block = summarize(records)
        ks = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= settings.samples} | {settings.samples})
        block["pass@k"] = {
            str(k): sum(pass_at_k(settings.samples, c, k) for c in correct_counts) / len(correct_counts) for k in ks
        }
        block["temperature"] = settings.temperature
        block["samples"] = settings.samples
        report["sampled"] = block
    return report


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A plain-text table of an :func:`evaluate` report."""
    lines = [title] if title else []
    for mode in ("greedy", "sampled"):
        block = report.get(mode)
        if not block or not block.get("n"):
            continue
        head = f"{mode}: accuracy {block['accuracy']:.3f} on {block['n']} responses"
        if mode == "sampled":
            head += f" (T={block['temperature']}); " + " ".join(f"pass@{k} {v:.3f}" for k, v in block["pass@k"].items())
        lines.append(head)
        lines.append(f"  {'kind':<12} {'n':>5} {'acc':>6} {'fwd':>6} {'bwd':>6} {'unk':>6}  acc|fwd acc|bwd")
        for kind, b in block["per_kind"].items():
            st, by = b["strategy"], b["accuracy_by_strategy"]
            acc_f = f"{by['forward']['accuracy']:.3f}" if "forward" in by else "  -  "
            acc_b = f"{by['backward']['accuracy']:.3f}" if "backward" in by else "  -  "
            lines.append(
                f"  {kind:<12} {b['n']:>5} {b['accuracy']:>6.3f} {st['forward']:>6.3f} {st['backward']:>6.3f} "
                f"{st['unknown']:>6.3f}  {acc_f:>7} {acc_b:>7}"
            )
        lines.append("  by steps: " + "  ".join(f"{k}:{b['accuracy']:.2f}" for k, b in block["per_steps"].items()))
        for kind, b in block["per_kind"].items():
            for strategy, by in b["accuracy_by_strategy"].items():
                if by["first_wrong_item"]:
                    counts = list(by["first_wrong_item"].items())
                    items = "  ".join(f"{i}:{n}" for i, n in counts[:12]) + ("  ..." if len(counts) > 12 else "")
                    lines.append(f"  first wrong item, {kind} {strategy}: {items}")
    return "\n".join(lines)

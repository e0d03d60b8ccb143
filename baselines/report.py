"""The report's parts: what the stages logged, tables, plots, and one section per experiment; no model is loaded.

Sources, per stage: RL runs' ``metrics.jsonl`` (``eval`` lines: greedy
validation before the first step, every ``eval_every`` steps and at the end;
``train`` lines: strategy fractions of the sampled completions per kind) and
``completions.jsonl``; evaluation stages' ``eval_summary.json``. After-SFT
numbers are the RL runs' step-0 evaluations. A stage that has not finished
shows as ``-``, so a report of an interrupted run is still a report.
:func:`baselines.experiments.write_report` puts an experiment's section and the
common parts together into ``RUN_DIR/report.md``.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from ffreason_env import ALIGNED, is_guess, read_jsonl
from ffreason_env.atomic import atomic_path
from trainers.evaluation import eval_set_name, flatten
from trainers.runlog import COMPLETIONS_FILE, CONFIG_FILE, METRICS_FILE

from .claims import HOLDS, Claim, Share, combine
from .stages import STAGE_LOG, EvalStage, RLStage, SFTStage
from .study import AMPLIFICATION_SHARES, ARM_ORDER, COMPOSITION_PARTS, ROBUSTNESS_DATA, SOURCE

__all__ = ["Report", "Section", "Logs", "Cells", "share", "sample_share", "parts_share", "summary_share", "guess_share", "guessing", "tenth", "selection", "improvement", "robustness",
           "amplification", "composition", "claims", "document", "table"]

KINDS = ("evaluation", "inversion")
NA = "-"


@dataclass(frozen=True)
class Report:
    path: str
    """``RUN_DIR/report.md``."""
    headline: str
    """The experiment's main table (markdown), printed at the end of a reproduction."""


@dataclass(frozen=True)
class Section:
    """An experiment's part of the report."""

    headline: str
    """Its main table (markdown)."""
    markdown: list[str]
    plots: list[str]
    """Paths of its plots, relative to the run directory."""
    cells: Cells
    """Every number of its tables, per replica (``report.json``)."""


# --- what the stages logged


class Logs:
    """Read-once access to the stages' files."""

    def __init__(self, run_dir: str, stages: list, _cache: dict | None = None, stage_log: str | None = None) -> None:
        self.run_dir = run_dir
        """Where the report and its plots go."""
        self.stages = stages
        self.stage_log = stage_log or os.path.join(run_dir, STAGE_LOG)
        """The runner's log of stage runs (a study's is in its top directory)."""
        self._metrics: dict[str, tuple[dict[int, dict], dict[int, dict]]] = {} if _cache is None else _cache

    def replicas(self) -> list[int]:
        """The replicas (seeds) the stages belong to, in order."""
        return sorted({s.replica for s in self.stages})

    def each(self) -> list["Logs"]:
        """One :class:`Logs` per replica, over that replica's stages alone (sharing what was read)."""
        return [Logs(self.run_dir, [s for s in self.stages if s.replica == k], self._metrics, self.stage_log)
                for k in self.replicas()]

    def rl(self, data: str | None = None, arm: str | None = None) -> list[RLStage]:
        return [s for s in self.stages if isinstance(s, RLStage) and data in (None, s.data) and arm in (None, s.arm)]

    def metrics(self, stage: RLStage) -> tuple[dict[int, dict], dict[int, dict]]:
        """``(eval, train)`` metrics by step. Lines of one step are merged, later ones winning: a resumed run
        evaluates again at the step it resumed from."""
        if stage.name not in self._metrics:
            evals: dict[int, dict] = defaultdict(dict)
            train: dict[int, dict] = {}
            path = os.path.join(stage.out, METRICS_FILE)
            for r in read_jsonl(path) if os.path.exists(path) else []:
                if r["phase"] == "eval":
                    evals[r["step"]].update(r)
                elif r["phase"] == "train" and "train/accuracy" in r:
                    train[r["step"]] = r
            self._metrics[stage.name] = (dict(sorted(evals.items())), dict(sorted(train.items())))
        return self._metrics[stage.name]

    def after_sft(self, arm: str) -> dict | None:
        """The step-0 evaluations of the RL runs from ``arm``'s SFT model: the model after SFT, on every set any of
        them validates on (a set two runs share, as the first run measured it)."""
        found = [evals[0] for evals, _ in map(self.metrics, self.rl(arm=arm)) if 0 in evals]
        return {k: v for m in reversed(found) for k, v in m.items()} if found else None

    def after_rl(self, data: str, arm: str) -> dict | None:
        """The final evaluation of a finished RL run, and what evaluation stages of its trained model measured on
        sets it does not validate on."""
        for stage in self.rl(data, arm):
            evals, _ = self.metrics(stage)
            if stage.done() and evals:
                return {**self.evaluated(stage), **evals[max(evals)]}
        return None

    def evaluated(self, model: SFTStage | RLStage) -> dict[str, float]:
        """Metrics of the finished evaluation stages of ``model``, named as the RL runs log theirs."""
        out: dict[str, float] = {}
        for s in self.stages:
            if isinstance(s, EvalStage) and s.model.name == model.name and (summary := self.eval_summary(s)):
                for set_name, report in summary["sets"].items():
                    out.update(flatten(report["greedy"], set_name))
        return out

    def completions(self, stage: RLStage) -> list[dict]:
        path = os.path.join(stage.out, COMPLETIONS_FILE)
        return read_jsonl(path) if os.path.exists(path) else []

    def eval_summary(self, stage: EvalStage) -> dict | None:
        if not stage.done():
            return None
        with open(os.path.join(stage.out, stage.summary_file), encoding="utf-8") as f:
            return json.load(f)

    def evaluations(self, of: type) -> dict[str, dict | None]:
        """The summaries of the evaluation stages of ``of`` models (SFTStage or RLStage), by the model's arm."""
        return {s.model.arm: self.eval_summary(s) for s in self.stages
                if isinstance(s, EvalStage) and isinstance(s.model, of)}

    def seconds(self) -> dict[str, float]:
        """Wall seconds of each stage's last run (from the runner's stage log)."""
        path = self.stage_log
        return {r["stage"]: r["seconds"] for r in (read_jsonl(path) if os.path.exists(path) else [])
                if r["status"] == "ran"}


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}"


def share(m: dict | None, key: str, name: str = "") -> Share:
    """The fraction ``key`` of a metrics line with its count (``.../n`` beside it; absent from logs older than the
    counts); not measured where the line or the key is missing."""
    if m is None or m.get(key) is None:
        return Share(name or key, None)
    n = m.get(key.rsplit("/", 1)[0] + "/n")
    return Share(name or key, m[key], int(n) if n else None)


def sample_share(rows: list[dict], kind: str, strategy: str, name: str = "") -> Share:
    """The fraction of sampled completions ``rows`` (of ``kind``, or of every kind for ``"all"``) that used
    ``strategy``, over their count."""
    sel = [r for r in rows if kind == "all" or r["kind"] == kind]
    name = name or f"{kind}: {strategy}"
    return Share(name, sum(r["strategy"] == strategy for r in sel) / len(sel), len(sel)) if sel else Share(name, None)


def guess_share(rows: list[dict], name: str = "guesses") -> Share:
    """The fraction of sampled completions ``rows`` that show no work (:func:`ffreason_env.is_guess`)."""
    return Share(name, sum(is_guess(r["completion"]) for r in rows) / len(rows), len(rows)) if rows else \
        Share(name, None)


def guessing(logs: Logs, cells: Cells) -> list[str]:
    """The share of each RL run's sampled responses that are guesses, first -> last tenth of its steps."""
    reps = logs.each()
    rows = []
    for run in reps[0].rl():
        per = [r.completions(s[0]) if (s := r.rl(run.data, run.arm)) else [] for r in reps]
        row = [run.arm, run.data]
        for first, label in ((True, "first tenth"), (False, "last tenth")):
            row.append(cells.cell("guesses", f"{run.arm} {run.data}", label,
                                  [guess_share(tenth(c, first)) for c in per]))
        rows.append(row)
    return ["## Guessing: sampled responses that show no work (%)", "",
            "A guess has no step or try line that applies an operation (a bare `answer X`, free text, a `try e0 : e0 "
            "-> e0`); where most problems cannot be solved it still earns 1/p of the outcome reward on average.", "",
            table(["arm", "RL data", "first tenth of RL steps", "last tenth"], rows), ""]


def _stats(shares: list[Share]) -> dict:
    present = [x for x in shares if x.measured]
    out: dict = {"values": [x.value for x in shares], "n": [x.n for x in shares]}
    if present:
        out["mean"] = statistics.fmean(x.value for x in present)
        out["sd"] = statistics.stdev(x.value for x in present) if len(present) > 1 else None
        if len(present) == 1:
            out["interval"] = list(present[0].interval()) if present[0].n else None
    return out


class Cells:
    """The numbers of a report's tables, one per replica (seed) per cell: rendered as the single run's value or as
    mean ± sd over replicas, and kept whole for ``report.json``."""

    def __init__(self, replicas: list[int]) -> None:
        self.replicas = replicas
        self.records: list[dict] = []

    def cell(self, table: str, row: str, column: str, shares: list[Share]) -> str:
        stats = _stats(shares)
        self.records.append({"table": table, "row": row, "column": column, "replicas": self.replicas, **stats})
        if "mean" not in stats:
            return NA
        present = sum(v is not None for v in stats["values"])
        text = f"{100 * stats['mean']:.1f}" if present == 1 else f"{100 * stats['mean']:.1f} ± {100 * stats['sd']:.1f}"
        return text if present == len(shares) else f"{text} ({present} of {len(shares)})"  # seeds not all run yet

    def interval(self, shares: list[Share]) -> str:
        """The 95% interval of a single run's cell (Wilson), or min-max over several replicas."""
        present = [x for x in shares if x.measured]
        if not present:
            return NA
        if len(present) > 1:
            return f"{100 * min(x.value for x in present):.1f}-{100 * max(x.value for x in present):.1f}"
        if not present[0].n:
            return NA
        lo, hi = present[0].interval()
        return f"{100 * lo:.1f}-{100 * hi:.1f}"


TRIPLE = ("all", "inversion", "evaluation")
"""The parts of a Table 1 cell, the study's order."""


def _triple_shares(m: dict | None, eval_set: str) -> list[Share]:
    """``all / inversion / evaluation`` accuracy of an evaluation line."""
    keys = (f"{eval_set}/accuracy", f"{eval_set}/inversion/accuracy", f"{eval_set}/evaluation/accuracy")
    return [share(m, k) for k in keys]


def _triple(cells: Cells, table: str, row: str, column: str, lines: list[dict | None], eval_set: str) -> tuple[str, str]:
    """A Table 1 cell over replicas (one evaluation line each) and its intervals: ``all / inversion / evaluation``."""
    per = [_triple_shares(m, eval_set) for m in lines]
    if not any(x.measured for p in per for x in p):
        return NA, NA
    parts = [[p[i] for p in per] for i in range(3)]
    return (" / ".join(cells.cell(table, row, f"{column}: {part}", xs) for part, xs in zip(TRIPLE, parts)),
            " / ".join(cells.interval(xs) for xs in parts))


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _eval_n(stage: RLStage) -> int | None:
    """Problems per validation set, as the run recorded it in its config.yaml."""
    import yaml

    path = os.path.join(stage.out, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return (yaml.safe_load(f) or {}).get("eval_n")


# --- plots (matplotlib, Agg: no display needed)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, run_dir: str, name: str) -> str:
    with atomic_path(os.path.join(run_dir, "plots", name)) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return f"plots/{name}"


def _rl_grid(logs: Logs, title: str):
    """A figure with one subplot per RL run: rows are the RL data, columns the arms (plan order)."""
    plt = _pyplot()
    rows = list(dict.fromkeys(s.data for s in logs.rl()))
    cols = list(dict.fromkeys(s.arm for s in logs.rl()))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.6 * len(cols), 2.8 * len(rows)), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    fig.suptitle(title)
    cells = []
    for stage in logs.rl():
        ax = axes[rows.index(stage.data)][cols.index(stage.arm)]
        ax.set_title(f"{stage.arm}, RL on {stage.data}", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        cells.append((stage, ax))
    for ax in axes[-1]:
        ax.set_xlabel("RL step")
        _integer_ticks(ax)
    return fig, cells


def _kinds(m: dict, prefix: str) -> list[str]:
    return [k for k in (*KINDS, "composition") if f"{prefix}/{k}/accuracy" in m]


def plot_accuracy_vs_rl_step(logs: Logs) -> str:
    """Greedy validation accuracy per kind (colour) and validation set (line style) against the RL step."""
    fig, cells = _rl_grid(logs, "greedy validation accuracy per kind vs RL step")
    styles = ["-", "--", ":", "-."]
    for stage, ax in cells:
        evals, _ = logs.metrics(stage)
        if not evals:
            continue
        steps = list(evals)
        for j, (lo, hi) in enumerate(stage.config.eval_ranges):
            prefix = eval_set_name(lo, hi)
            for kind in _kinds(evals[steps[0]], prefix):
                ax.plot(steps, [evals[s].get(f"{prefix}/{kind}/accuracy") for s in steps], styles[j % 4],
                        color=_COLOURS[kind], marker=".", label=f"{kind}, {lo}-{hi} steps")
    _legend(cells)
    return _save(fig, logs.run_dir, "accuracy_vs_rl_step.png")


_COLOURS = {"evaluation": "tab:blue", "inversion": "tab:orange", "composition": "tab:green", "all": "black"}


def _legend(cells) -> None:
    """One legend, on the first subplot that has lines; a label once, though every seed draws its line."""
    for _, ax in cells:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(labels, handles))
            ax.legend(list(unique.values()), list(unique), fontsize=6, loc="best")
            return


def _moving_average(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def plot_strategy_vs_rl_step(logs: Logs) -> str:
    """Fraction of forward responses per kind against the RL step: the picture of strategy selection.

    Lines: the sampled training completions (moving average); dots: greedy answers on the validation set of the
    RL data's step range (the first set when the data is not a step range)."""
    fig, cells = _rl_grid(logs, "forward fraction per kind vs RL step (evaluation: aligned; inversion: search)")
    for stage, ax in cells:
        evals, train = logs.metrics(stage)
        if train:
            steps = list(train)
            window = max(1, len(steps) // 20)
            for kind in KINDS:
                key = f"train/{kind}/strategy/forward"
                pts = [(s, train[s][key]) for s in steps if key in train[s]]
                if pts:
                    ax.plot([s for s, _ in pts], _moving_average([v for _, v in pts], window), color=_COLOURS[kind],
                            label=f"{kind}, samples")
        if evals:
            names = [f"{lo}-{hi}" for lo, hi in stage.config.eval_ranges]
            prefix = f"eval_{stage.data if stage.data in names else names[0]}"
            for kind in KINDS:
                key = f"{prefix}/{kind}/strategy/forward"
                pts = [(s, m[key]) for s, m in evals.items() if key in m]
                if pts:
                    ax.plot([s for s, _ in pts], [v for _, v in pts], "o", color=_COLOURS[kind], markersize=4,
                            label=f"{kind}, greedy ({prefix[5:]})")
    _legend(cells)
    return _save(fig, logs.run_dir, "strategy_vs_rl_step.png")


def _per_steps(m: dict | None) -> dict[int, float]:
    """Accuracy per step count, over every validation set of an evaluation line."""
    out = {}
    for key, value in (m or {}).items():
        parts = key.split("/")
        if len(parts) == 4 and parts[1] == "steps" and parts[3] == "accuracy":
            out[int(parts[2])] = value
    return dict(sorted(out.items()))


def _before_after(logs: Logs, arm: str) -> list[tuple[str, dict | None]]:
    return [("after SFT", logs.after_sft(arm))] + [
        (f"after RL on {data}", logs.after_rl(data, arm)) for data in dict.fromkeys(s.data for s in logs.rl(arm=arm))]


def plot_accuracy_vs_steps(logs: Logs, arms: list[str]) -> str:
    """Greedy accuracy per number of steps of the problem, before and after each RL run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(arms), figsize=(4 * len(arms), 3), squeeze=False, sharey=True, layout="constrained")
    fig.suptitle("greedy validation accuracy vs number of steps, before and after RL")
    for ax, arm in zip(axes[0], arms):
        for label, m in _before_after(logs, arm):
            per = _per_steps(m)
            if per:
                ax.plot(list(per), list(per.values()), marker=".", label=label,
                        color="black" if label == "after SFT" else None)
        ax.set_title(f"arm {arm}", fontsize=9)
        ax.set_xlabel("steps")
        _integer_ticks(ax)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    _legend([(None, ax) for ax in axes[0]])
    return _save(fig, logs.run_dir, "accuracy_vs_steps.png")


# --- one section per experiment: its headline table, its markdown lines, and its own plot where it has one


def _seeds_note(logs: Logs) -> str:
    seeds = logs.replicas()
    return (f"one run (seed {seeds[0]}); the table below it gives each cell's 95% interval (Wilson, over the cell's "
            f"problems)" if len(seeds) == 1 else
            f"mean ± sd over {len(seeds)} seeds ({', '.join(map(str, seeds))}); the table below it gives each cell's "
            f"lowest-highest seed")


def selection(logs: Logs, experiment) -> Section:
    """Table 1 on 6-9 steps (beside ``experiment.published``, the study's, where it has it), the same on 2-5 steps,
    and the aligned fraction of each RL run's samples, first -> last tenth of its steps; every cell over the
    replicas (seeds)."""
    published = experiment.published
    reps = logs.each()
    cells = Cells(logs.replicas())
    arms = [a for a in ARM_ORDER if logs.rl(arm=a)]
    datas = list(dict.fromkeys(s.data for s in logs.rl()))

    def tables(eval_set: str, with_study: bool) -> tuple[str, str]:
        header = ["arm", "after SFT"] + (["study"] if with_study else [])
        for data in datas:
            header += [f"after RL on {data}"] + (["study"] if with_study else [])
        rows, spread = [], []
        for arm in arms:
            value, interval = _triple(cells, eval_set, arm, "after SFT", [r.after_sft(arm) for r in reps], eval_set)
            row, band = [arm, value], [arm, interval]
            row += [" / ".join(f"{v:.1f}" for v in published[arm]["sft"])] if with_study else []
            for data in datas:
                value, interval = _triple(cells, eval_set, arm, f"after RL on {data}",
                                          [r.after_rl(data, arm) for r in reps], eval_set)
                row.append(value)
                band.append(interval)
                row += [" / ".join(f"{v:.1f}" for v in published[arm][data])] if with_study else []
            rows.append(row)
            spread.append(band)
        return table(header, rows), table([h for h in header if h != "study"], spread)

    stage = logs.rl()[0]
    n = _eval_n(stage)
    ours = (f"ours: greedy accuracy (%) of the {stage.config.algo.upper()} runs on {n if n else '?'} validation "
            f"problems, {_seeds_note(logs)}")
    headline, headline_spread = tables(eval_set_name(6, 9), published is not None)
    easy, easy_spread = tables(eval_set_name(2, 5), False)
    aligned = []
    for run in [s for s in logs.rl() if s.replica == logs.replicas()[0]]:
        windows = [[r.completions(s) for s in r.rl(run.data, run.arm)] for r in reps]
        rows = [w[0] if w else [] for w in windows]
        row = [run.arm, run.data]
        for kind in KINDS:
            before = [sample_share(tenth(r, True), kind, ALIGNED[kind]) for r in rows]
            after = [sample_share(tenth(r, False), kind, ALIGNED[kind]) for r in rows]
            row.append(f"{cells.cell('aligned samples', f'{run.arm} {run.data}', f'{kind}: first tenth', before)} -> "
                       f"{cells.cell('aligned samples', f'{run.arm} {run.data}', f'{kind}: last tenth', after)}")
        aligned.append(row)
    unbudgeted, unbudgeted_spread = [], []
    for arm in arms:
        summaries = [r.evaluations(SFTStage).get(arm) for r in reps]
        row, band = [arm], [arm]
        for eval_set in (eval_set_name(2, 5), eval_set_name(6, 9)):
            parts = [[summary_share(m, eval_set, kind) for m in summaries] for kind in TRIPLE]
            row.append(" / ".join(cells.cell(f"{eval_set} unbudgeted", arm, f"after SFT: {kind}", xs)
                                  for kind, xs in zip(TRIPLE, parts)))
            band.append(" / ".join(cells.interval(xs) for xs in parts))
        unbudgeted.append(row)
        unbudgeted_spread.append(band)
    spread_title = "95% intervals" if len(reps) == 1 else "lowest-highest seed"
    md = [
        "## Table 1: 6-9-step validation, all / inversion / evaluation",
        "",
        f"Each cell: all / inversion / evaluation; {ours}."
        + (f" **study**: pass@1 (%), Qwen2.5-1.5B-Instruct, from {SOURCE}." if published else ""),
        "",
        headline,
        "",
        f"{spread_title.capitalize()} of the cells above:",
        "",
        headline_spread,
        "",
        "## The same on 2-5-step validation",
        "",
        easy,
        "",
        f"{spread_title.capitalize()}:",
        "",
        easy_spread,
        "",
        "## After SFT without the RL budget",
        "",
        "The SFT models' greedy accuracy on the same validation sets, all / inversion / evaluation, with a budget "
        "of the longest reference trace of either strategy plus 25%, so that a search is not cut (the tables above "
        "give them the RL budget, as the RL runs' step-0 evaluation does).",
        "",
        table(["arm", "2-5", "6-9"], unbudgeted),
        "",
        f"{spread_title.capitalize()}:",
        "",
        table(["arm", "2-5", "6-9"], unbudgeted_spread),
        "",
        "## Strategy selection: aligned fraction (%) of sampled responses, first -> last tenth of RL steps",
        "",
        "Aligned: forward on evaluation, backward on inversion. Samples: the RL run's own completions "
        "(temperature sampling, the training budget).",
        "",
        table(["arm", "RL data", "evaluation: forward", "inversion: backward"], aligned),
        "",
        *guessing(logs, cells),
    ]
    return Section(headline, md, [plot_accuracy_vs_steps(reps[0], arms), plot_accuracy_vs_rl_step(logs),
                                  plot_strategy_vs_rl_step(logs)], cells)


def improvement(logs: Logs, experiment) -> Section:
    """Greedy accuracy per number of steps before and after each RL run, and per kind per validation set."""
    reps = logs.each()
    cells = Cells(logs.replicas())
    arms = [a for a in ARM_ORDER if logs.rl(arm=a)]
    lines = {arm: list(zip(*[_before_after(r, arm) for r in reps])) for arm in arms}  # per model: (label, m) per replica
    all_steps = sorted({k for arm in arms for model in lines[arm] for _, m in model for k in _per_steps(m)})
    rows, kind_rows = [], []
    for arm in arms:
        for model in lines[arm]:
            label, ms = model[0][0], [m for _, m in model]
            rows.append([arm, label] + [cells.cell("per steps", f"{arm} {label}", str(k),
                                                   [_step_share(m, k) for m in ms]) for k in all_steps])
            kind_rows.append([arm, label] + [
                " / ".join(cells.cell("per kind", f"{arm} {label}", f"{eval_set_name(*r)}: {kind}",
                                      [share(m, f"{eval_set_name(*r)}/{kind}/accuracy") for m in ms])
                           for kind in ("inversion", "evaluation"))
                for r in ((2, 5), (6, 9), (10, 15))])
    headline = table(["arm", "model"] + [str(k) for k in all_steps], rows)
    md = [
        "## Greedy accuracy (%) per number of steps",
        "",
        f"{_seeds_note(logs).split(';')[0].capitalize()}.",
        "",
        headline,
        "",
        "## Inversion / evaluation accuracy (%) per validation set",
        "",
        table(["arm", "model", "2-5", "6-9", "10-15"], kind_rows),
        "",
        *guessing(logs, cells),
    ]
    return Section(headline, md, [plot_accuracy_vs_steps(reps[0], arms), plot_accuracy_vs_rl_step(logs),
                                  plot_strategy_vs_rl_step(logs)], cells)


def _step_share(m: dict | None, k: int) -> Share:
    """Accuracy on ``k``-step problems, from whichever validation set of the line holds them."""
    for key in (m or {}):
        parts = key.split("/")
        if len(parts) == 4 and parts[1] == "steps" and parts[2] == str(k) and parts[3] == "accuracy":
            return share(m, key)
    return Share(f"{k} steps", None)


def tenth(rows: list[dict], first: bool) -> list[dict]:
    """The sampled completions of the first or the last tenth of a run's steps."""
    steps = sorted({r["step"] for r in rows})
    width = max(1, len(steps) // 10)
    keep = set(steps[:width] if first else steps[-width:])
    return [r for r in rows if r["step"] in keep]


def amplification(logs: Logs, experiment) -> Section:
    """The forward fraction of each run's samples against the evaluation share of its RL data."""
    plt = _pyplot()
    reps = logs.each()
    cells = Cells(logs.replicas())
    rows, points = [], []
    for share_ in AMPLIFICATION_SHARES:
        data = f"eval{share_}"
        runs = [r.completions(r.rl(data)[0]) if r.rl(data) else [] for r in reps]
        row = [f"{share_} / {100 - share_}"]
        fractions = {}
        for kind in ("all", *KINDS):
            before = [sample_share(tenth(c, True), kind, "forward") for c in runs]
            after = [sample_share(tenth(c, False), kind, "forward") for c in runs]
            row.append(f"{cells.cell('forward samples', data, f'{kind}: first tenth', before)} -> "
                       f"{cells.cell('forward samples', data, f'{kind}: last tenth', after)}")
            fractions[kind] = [_mean(before), _mean(after)]
        row.append(cells.cell("greedy", data, "eval_2-5", [share(r.after_rl(data, "FB"), "eval_2-5/accuracy")
                                                            for r in reps]))
        rows.append(row)
        points.append((share_, {k: v[0] for k, v in fractions.items()}, {k: v[1] for k, v in fractions.items()}))
    headline = table(["evaluation / inversion in RL data", "forward (%) of samples, first -> last tenth of steps",
                       "on evaluation problems", "on inversion problems", "greedy accuracy (%) after RL, 2-5"], rows)
    fig, ax = plt.subplots(figsize=(4.5, 3.6), layout="constrained")
    ax.plot([0.45, 0.95], [0.45, 0.95], ":", color="grey", label="forward fraction = evaluation share")
    for key, style, label in (("before", "o--", "first tenth of RL steps"), ("after", "o-", "last tenth of RL steps")):
        pts = [(s / 100, (b if key == "before" else a)["all"]) for s, b, a in points
               if (b if key == "before" else a)["all"] is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], style, color="black", label=label)
    for kind in KINDS:
        pts = [(s / 100, a[kind]) for s, _, a in points if a[kind] is not None]
        if pts:
            ax.plot([x for x, _ in pts], [y for _, y in pts], "s-", color=_COLOURS[kind], alpha=0.6,
                    label=f"{kind} problems, last tenth")
    ax.set_xlabel("evaluation share of the RL data")
    ax.set_ylabel("forward fraction of sampled responses")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    plot = _save(fig, logs.run_dir, "forward_fraction_vs_share.png")
    md = ["## Forward fraction vs evaluation share of the RL data", "", f"{_seeds_note(logs).split(';')[0].capitalize()}.",
          "", headline, "",
          "Samples: the RL run's own completions (temperature sampling). The validation sets of these runs have the "
          "RL data's mix of kinds.", "", *guessing(logs, cells)]
    return Section(headline, md, [plot, plot_accuracy_vs_rl_step(logs), plot_strategy_vs_rl_step(logs)], cells)


def _mean(shares: list[Share]) -> float | None:
    values = [x.value for x in shares if x.measured]
    return statistics.fmean(values) if values else None


def robustness(logs: Logs, experiment) -> Section:
    """Accuracy on 6-9 after RL on 6-9 per arm under each hyper-parameter variant (beside the study's), and FB's
    6-9 accuracy at each of its evaluations (instability shows as a fall after a peak)."""
    reps = logs.each()
    cells = Cells(logs.replicas())
    arms = [a for a in ARM_ORDER if logs.rl(arm=a)]
    rows, evals = [], {}
    for variant, data in ROBUSTNESS_DATA.items():
        row = [variant] + [cells.cell("robustness", variant, arm, [share(r.after_rl(data, arm), "eval_6-9/accuracy")
                                                                  for r in reps]) for arm in arms]
        study = experiment.published.get(variant) if experiment.published else None
        rows.append(row + [" / ".join(f"{v:.1f}" for v in study) if study else NA])
        evals[variant] = [r.metrics(s[0])[0] if (s := r.rl(data, "FB")) else {} for r in reps]
    steps = sorted({step for es in evals.values() for e in es for step in e})
    curves = [[variant] + [cells.cell("FB curve", variant, str(step), [share(e.get(step), "eval_6-9/accuracy")
                                                                       for e in es]) for step in steps]
              for variant, es in evals.items()]
    headline = table(["variant"] + arms + ["study: B / F / FB"], rows)
    md = ["## Greedy accuracy (%) on 6-9 after RL on 6-9, per hyper-parameter variant", "",
          f"{_seeds_note(logs).split(';')[0].capitalize()}; **study**: pass@1 (%) from {SOURCE}. The lr x5 variant is "
          "five times the preset's learning rate, as the study's unstable 5e-5 was five times its 1e-5.", "",
          headline, "", "## FB's 6-9 accuracy (%) at each evaluation, by RL step", "",
          table(["variant"] + [f"step {step}" for step in steps], curves), "", *guessing(logs, cells)]
    return Section(headline, md, [plot_accuracy_vs_rl_step(logs), plot_strategy_vs_rl_step(logs)], cells)


def composition(logs: Logs, experiment) -> Section:
    """Greedy accuracy per number of parts, after SFT and after RL, with and without compositions in SFT."""
    plt = _pyplot()
    reps = logs.each()
    cells = Cells(logs.replicas())
    rows = []
    fig, ax = plt.subplots(figsize=(4.8, 3.4), layout="constrained")
    ax.axvspan(2.5, 5.5, color="grey", alpha=0.12, label="RL data: 3-5 parts")
    evals = [[s for s in r.stages if isinstance(s, EvalStage)] for r in reps]
    for i, stage in enumerate(evals[0] if evals else []):
        model = stage.model
        label = f"SFT {model.arm}, " + ("after SFT" if isinstance(model, SFTStage) else "after RL on 3-5 parts")
        per = {k: [parts_share(r.eval_summary(e[i]), k) for r, e in zip(reps, evals)] for k in COMPOSITION_PARTS}
        rows.append([model.arm, label.split(", ")[1]] + [cells.cell("parts", f"{model.arm} {label.split(', ')[1]}",
                                                                    f"{k} parts", per[k]) for k in COMPOSITION_PARTS])
        acc = {k: _mean(v) for k, v in per.items() if _mean(v) is not None}
        if acc:
            ax.plot(list(acc), list(acc.values()), "o--" if isinstance(model, SFTStage) else "o-",
                    color="tab:green" if model.arm == "with-2part" else "tab:red", label=label)
    ax.set_xlabel("parts of the composition")
    _integer_ticks(ax)
    ax.set_ylabel("greedy accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    plot = _save(fig, logs.run_dir, "accuracy_vs_parts.png")
    headline = table(["SFT data", "model"] + [f"{k} parts" for k in COMPOSITION_PARTS], rows)
    n = evals[0][0].n if evals and evals[0] else "?"
    md = [f"## Greedy accuracy (%) per number of parts ({n} problems per set, 2-5 steps per part)", "",
          f"{_seeds_note(logs).split(';')[0].capitalize()}.", "", headline, "", *guessing(logs, cells)]
    return Section(headline, md, [plot, plot_accuracy_vs_rl_step(logs)], cells)  # parts mix strategies: no strategy plot


def summary_share(summary: dict | None, set_name: str, kind: str = "all", name: str = "") -> Share:
    """Greedy accuracy of an evaluation stage's summary on one set, over all its problems or one kind's."""
    block = (summary or {}).get("sets", {}).get(set_name, {}).get("greedy") or {}
    if kind != "all":
        block = block.get("per_kind", {}).get(kind) or {}
    return Share(name or f"{set_name} {kind}", block.get("accuracy"), block.get("n"))


def parts_share(summary: dict | None, parts: int, name: str = "") -> Share:
    """Greedy accuracy of an evaluation stage's summary on its ``parts``-part set."""
    block = (summary or {}).get("sets", {}).get(f"parts-{parts}", {}).get("greedy") or {}
    return Share(name or f"{parts} parts", block.get("accuracy"), block.get("n"))


def claims(logs: Logs, claims_: Iterable[Claim]) -> tuple[list[str], list[dict]]:
    """The study's claims, each rule's verdict per replica and in how many it holds: markdown and records."""
    replicas, reps = logs.replicas(), logs.each()
    rows, details, records = [], [], []
    for claim in claims_:
        checks = [claim.check(r) for r in reps]
        verdicts = [combine(c) for c in checks]
        per_seed = verdicts[0] if len(reps) == 1 else ", ".join(f"{k}: {v}" for k, v in zip(replicas, verdicts))
        rows.append([claim.text, claim.rule, per_seed, f"{verdicts.count(HOLDS)} of {len(reps)}"])
        details += [f"- *{claim.rule}*"] + [f"  - seed {k}, {v}: " + "; ".join(f"{c.text} ({c.verdict})" for c in cs)
                                           for k, v, cs in zip(replicas, verdicts, checks)]
        records.append({"claim": claim.text, "rule": claim.rule, "replicas": replicas, "verdicts": verdicts,
                        "holds_in": verdicts.count(HOLDS),
                        "checks": [[{"verdict": c.verdict, "text": c.text} for c in cs] for cs in checks]})
    md = ["## What the study reports, and whether it holds here", "",
          "Each claim is tested by the rule beside it, on each seed's logged metrics: a comparison **holds** when "
          "its whole 95% interval is on the claim's side of the threshold, **does not hold** when all of it is on "
          "the other side, and is **inconclusive** when the interval straddles the threshold or a number is "
          "missing; a rule holds when all its comparisons do.", "",
          table(["the study reports", "rule", "verdict" if len(reps) == 1 else "verdict per seed",
                  "holds in (seeds)"], rows), "", "The numbers behind each verdict:", "", *details, ""]
    return md, records


def document(logs: Logs, name: str, summary: str, manifest: dict, section: Section, claims_md: list[str],
             regenerate: str) -> str:
    """The whole ``report.md``: title, the experiment's section, the study's claims and verdicts, the plots, the
    stages; ``regenerate``: the run directory ``ffreason report`` rebuilds it from."""
    seconds = logs.seconds()
    status = [[s.name, "done" if s.done() else ("partial" if os.path.exists(s.out) else "not run"),
               f"{seconds[s.name]:.0f}" if s.name in seconds else NA, s.describe()] for s in logs.stages]
    seeds = logs.replicas()
    text = [
        f"# {name}: {summary}",
        "",
        f"Preset `{manifest['preset']}`, RL algorithm `{manifest['algo']}`, "
        + (f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}")
        + f". Regenerate with `ffreason report {regenerate}`; every number is also in `report.json`.",
        "",
        *section.markdown,
        *claims_md,
        "## Plots",
        "",
        *[f"![{os.path.basename(p)}]({p})\n" for p in section.plots],
        "## Stages",
        "",
        table(["stage", "state", "wall s", "what"], status),
        "",
    ]
    return "\n".join(text)

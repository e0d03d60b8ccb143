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
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from ffreason_env import ALIGNED, read_jsonl
from ffreason_env.atomic import atomic_path
from trainers.evaluation import eval_set_name
from trainers.runlog import COMPLETIONS_FILE, CONFIG_FILE, METRICS_FILE

from .stages import STAGE_LOG, EvalStage, RLStage, SFTStage
from .study import AMPLIFICATION_SHARES, ARM_ORDER, COMPOSITION_PARTS, SOURCE

__all__ = ["Report", "Section", "Logs", "selection", "improvement", "amplification", "composition", "document"]

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


# --- what the stages logged


class Logs:
    """Read-once access to the stages' files."""

    def __init__(self, run_dir: str, stages: list) -> None:
        self.run_dir = run_dir
        self.stages = stages
        self._metrics: dict[str, tuple[dict[int, dict], dict[int, dict]]] = {}

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
        """The step-0 evaluation of any RL run from ``arm``'s SFT model: the model after SFT."""
        for stage in self.rl(arm=arm):
            evals, _ = self.metrics(stage)
            if 0 in evals:
                return evals[0]
        return None

    def after_rl(self, data: str, arm: str) -> dict | None:
        """The final evaluation of a finished RL run."""
        for stage in self.rl(data, arm):
            evals, _ = self.metrics(stage)
            if stage.done() and evals:
                return evals[max(evals)]
        return None

    def completions(self, stage: RLStage) -> list[dict]:
        path = os.path.join(stage.out, COMPLETIONS_FILE)
        return read_jsonl(path) if os.path.exists(path) else []

    def eval_summary(self, stage: EvalStage) -> dict | None:
        if not stage.done():
            return None
        with open(os.path.join(stage.out, stage.summary_file), encoding="utf-8") as f:
            return json.load(f)

    def seconds(self) -> dict[str, float]:
        """Wall seconds of each stage's last run (from the runner's stage log)."""
        path = os.path.join(self.run_dir, STAGE_LOG)
        return {r["stage"]: r["seconds"] for r in (read_jsonl(path) if os.path.exists(path) else [])
                if r["status"] == "ran"}


def _pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}"


def _triple(m: dict | None, eval_set: str) -> str:
    """``all / inversion / evaluation`` accuracy (%) of an evaluation line, the study's order."""
    if m is None or f"{eval_set}/accuracy" not in m:
        return NA
    keys = (f"{eval_set}/accuracy", f"{eval_set}/inversion/accuracy", f"{eval_set}/evaluation/accuracy")
    return " / ".join(_pct(m.get(k)) for k in keys)


def _table(header: list[str], rows: Iterable[list[str]]) -> str:
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
    for _, ax in cells:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best")
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


def selection(logs: Logs, experiment) -> Section:
    """Table 1 on 6-9 steps (beside ``experiment.published``, the study's, where it has it), the same on 2-5 steps,
    and the aligned fraction of each RL run's samples, first -> last tenth of its steps."""
    published = experiment.published
    arms = [a for a in ARM_ORDER if logs.rl(arm=a)]
    datas = list(dict.fromkeys(s.data for s in logs.rl()))

    def table(eval_set: str, with_study: bool) -> str:
        header = ["arm", "after SFT"] + (["study"] if with_study else [])
        for data in datas:
            header += [f"after RL on {data}"] + (["study"] if with_study else [])
        rows = []
        for arm in arms:
            row = [arm, _triple(logs.after_sft(arm), eval_set)]
            row += [" / ".join(f"{v:.1f}" for v in published[arm]["sft"])] if with_study else []
            for data in datas:
                row.append(_triple(logs.after_rl(data, arm), eval_set))
                row += [" / ".join(f"{v:.1f}" for v in published[arm][data])] if with_study else []
            rows.append(row)
        return _table(header, rows)

    stage = logs.rl()[0]
    n = _eval_n(stage)
    ours = f"ours: greedy accuracy (%) of the {stage.config.algo.upper()} runs on {n if n else '?'} validation problems"
    headline = table(eval_set_name(6, 9), published is not None)
    aligned = []
    for run in logs.rl():
        rows = logs.completions(run)
        before, after = _window(rows, True), _window(rows, False)
        aligned.append([run.arm, run.data] + [f"{_pct(_fraction(before, k, ALIGNED[k]))} -> "
                                              f"{_pct(_fraction(after, k, ALIGNED[k]))}" for k in KINDS])
    md = [
        "## Table 1: 6-9-step validation, all / inversion / evaluation",
        "",
        f"Each cell: all / inversion / evaluation; {ours}."
        + (f" **study**: pass@1 (%), Qwen2.5-1.5B-Instruct, from {SOURCE}." if published else ""),
        "",
        headline,
        "",
        "## The same on 2-5-step validation",
        "",
        table(eval_set_name(2, 5), False),
        "",
        "## Strategy selection: aligned fraction (%) of sampled responses, first -> last tenth of RL steps",
        "",
        "Aligned: forward on evaluation, backward on inversion. Samples: the RL run's own completions "
        "(temperature sampling, the training budget).",
        "",
        _table(["arm", "RL data", "evaluation: forward", "inversion: backward"], aligned),
        "",
    ]
    return Section(headline, md, [plot_accuracy_vs_steps(logs, arms), plot_accuracy_vs_rl_step(logs),
                                  plot_strategy_vs_rl_step(logs)])


def improvement(logs: Logs, experiment) -> Section:
    """Greedy accuracy per number of steps before and after each RL run, and per kind per validation set."""
    arms = [a for a in ARM_ORDER if logs.rl(arm=a)]
    all_steps = sorted({k for arm in arms for _, m in _before_after(logs, arm) for k in _per_steps(m)})
    rows, kind_rows = [], []
    for arm in arms:
        for label, m in _before_after(logs, arm):
            per = _per_steps(m)
            rows.append([arm, label] + [_pct(per.get(k)) for k in all_steps])
            kind_rows.append([arm, label] + [
                " / ".join(_pct((m or {}).get(f"{eval_set_name(*r)}/{kind}/accuracy"))
                           for kind in ("inversion", "evaluation"))
                for r in ((2, 5), (6, 9), (10, 15))])
    headline = _table(["arm", "model"] + [str(k) for k in all_steps], rows)
    md = [
        "## Greedy accuracy (%) per number of steps",
        "",
        headline,
        "",
        "## Inversion / evaluation accuracy (%) per validation set",
        "",
        _table(["arm", "model", "2-5", "6-9", "10-15"], kind_rows),
        "",
    ]
    return Section(headline, md, [plot_accuracy_vs_steps(logs, arms), plot_accuracy_vs_rl_step(logs),
                                  plot_strategy_vs_rl_step(logs)])


def _window(rows: list[dict], first: bool) -> list[dict]:
    """The sampled completions of the first or the last tenth of a run's steps."""
    steps = sorted({r["step"] for r in rows})
    width = max(1, len(steps) // 10)
    keep = set(steps[:width] if first else steps[-width:])
    return [r for r in rows if r["step"] in keep]


def _fraction(rows: list[dict], kind: str, strategy: str) -> float | None:
    """Fraction of ``rows`` (of ``kind``, or of every kind for ``"all"``) that used ``strategy``."""
    sel = [r for r in rows if kind == "all" or r["kind"] == kind]
    return sum(r["strategy"] == strategy for r in sel) / len(sel) if sel else None


def _window_fractions(rows: list[dict], first: bool) -> dict[str, float | None]:
    """Forward fraction of sampled completions, overall and per kind, over the first or last tenth of the steps."""
    window = _window(rows, first)
    return {kind: _fraction(window, kind, "forward") for kind in ("all", *KINDS)}


def amplification(logs: Logs, experiment) -> Section:
    """The forward fraction of each run's samples against the evaluation share of its RL data."""
    plt = _pyplot()
    rows, points = [], []
    for share in AMPLIFICATION_SHARES:
        stages = logs.rl(f"eval{share}")
        completions = logs.completions(stages[0]) if stages else []
        before, after = _window_fractions(completions, True), _window_fractions(completions, False)
        final = logs.after_rl(f"eval{share}", "FB")
        rows.append([f"{share} / {100 - share}"] + [f"{_pct(before[k])} -> {_pct(after[k])}" for k in ("all", *KINDS)]
                    + [_pct(final.get("eval_2-5/accuracy") if final else None)])
        points.append((share, before, after))
    headline = _table(["evaluation / inversion in RL data", "forward (%) of samples, first -> last tenth of steps",
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
    md = ["## Forward fraction vs evaluation share of the RL data", "", headline, "",
          "Samples: the RL run's own completions (temperature sampling). The validation sets of these runs have the "
          "RL data's mix of kinds.", ""]
    return Section(headline, md, [plot, plot_accuracy_vs_rl_step(logs), plot_strategy_vs_rl_step(logs)])


def composition(logs: Logs, experiment) -> Section:
    """Greedy accuracy per number of parts, after SFT and after RL, with and without compositions in SFT."""
    plt = _pyplot()
    evals = [s for s in logs.stages if isinstance(s, EvalStage)]
    rows = []
    fig, ax = plt.subplots(figsize=(4.8, 3.4), layout="constrained")
    ax.axvspan(2.5, 5.5, color="grey", alpha=0.12, label="RL data: 3-5 parts")
    for stage in evals:
        summary = logs.eval_summary(stage)
        acc = {k: summary["sets"][f"parts-{k}"]["greedy"]["accuracy"] for k in COMPOSITION_PARTS} if summary else {}
        model = stage.model
        label = f"SFT {model.arm}, " + ("after SFT" if isinstance(model, SFTStage) else "after RL on 3-5 parts")
        rows.append([model.arm, label.split(", ")[1]] + [_pct(acc.get(k)) for k in COMPOSITION_PARTS])
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
    headline = _table(["SFT data", "model"] + [f"{k} parts" for k in COMPOSITION_PARTS], rows)
    n = evals[0].n if evals else "?"
    md = [f"## Greedy accuracy (%) per number of parts ({n} problems per set, 2-5 steps per part)", "", headline, ""]
    return Section(headline, md, [plot, plot_accuracy_vs_rl_step(logs)])  # parts mix strategies: no strategy plot


def document(logs: Logs, name: str, summary: str, manifest: dict, section: Section, claims) -> str:
    """The whole ``report.md``: title, the experiment's section, the study's claims, the plots, the stages."""
    seconds = logs.seconds()
    status = [[s.name, "done" if s.done() else ("partial" if os.path.exists(s.out) else "not run"),
               f"{seconds[s.name]:.0f}" if s.name in seconds else NA, s.describe()] for s in logs.stages]
    text = [
        f"# {name}: {summary}",
        "",
        f"Preset `{manifest['preset']}`, RL algorithm `{manifest['algo']}`. Regenerate with "
        f"`ffreason report {logs.run_dir}`.",
        "",
        *section.markdown,
        "## What the study reports",
        "",
        *[f"- {claim}" for claim in claims],
        "",
        "## Plots",
        "",
        *[f"![{os.path.basename(p)}]({p})\n" for p in section.plots],
        "## Stages",
        "",
        _table(["stage", "state", "wall s", "what"], status),
        "",
    ]
    return "\n".join(text)

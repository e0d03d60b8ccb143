"""The report's strategy-probe section (trainers/probes.py): what each RL run logged of them, and what
``ffreason analyze`` measured of it afterwards (``analysis.json``).

Per RL run, where present: the teacher-forced aligned preference per kind at the first and the last checkpoint;
the probe set's accuracy change split into selection and improvement; the share of groups with no reward
variance and the advantage mass per (kind, strategy) over the first and last tenth of the steps; pass@k before
and after RL. One figure, ``plots/strategy_probes.png``.
"""

from __future__ import annotations

import json
import os
import statistics

from ffreason_env import ALIGNED, read_jsonl
from trainers.probes import PROBES_FILE, transitions

from .analyze import ANALYSIS_FILE
from .report import KINDS, NA, Logs, _pct, _pyplot, _save, table, tenth
from .stages import RLStage

__all__ = ["probe_views", "probe_section"]


def probe_views(logs: Logs, stage: RLStage) -> dict:
    """What is known of one RL run's probes: ``preference`` ({step: {kind: share}}), ``transitions``,
    ``pass_at_k`` ({"before"|"after": table}), ``signal`` ({step: train metrics}), each with its source."""
    out: dict = {}
    path = os.path.join(stage.out, ANALYSIS_FILE)
    analysis = None
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            analysis = json.load(f)
    evals, train = logs.metrics(stage)
    prefix = "probe/teacher_forced"
    logged = {s: {k: m[f"{prefix}/{k}/prefers_aligned"] for k in KINDS if f"{prefix}/{k}/prefers_aligned" in m}
              for s, m in evals.items()}
    logged = {s: v for s, v in logged.items() if v}
    if logged:
        out["preference"] = (logged, f"logged: probe set, {stage.config.probe_n} problems")
    elif analysis:
        out["preference"] = ({c["step"]: {k: c["teacher_forced"][f"teacher_forced/{k}/prefers_aligned"]
                                          for k in KINDS if f"teacher_forced/{k}/prefers_aligned" in c["teacher_forced"]}
                              for c in analysis["checkpoints"]}, "analysis probe set")
    probes = os.path.join(stage.out, PROBES_FILE)
    lines = read_jsonl(probes) if os.path.exists(probes) else []
    if analysis:
        s = analysis["settings"]
        out["transitions"] = (analysis["transitions"], f"analysis: {s['probe_n']} problems x {s['samples']} samples, "
                                                       f"steps {analysis['checkpoints'][0]['step']} -> "
                                                       f"{analysis['checkpoints'][-1]['step']}")
        first, last = analysis["checkpoints"][0], analysis["checkpoints"][-1]
        if "pass_at_k" in first and "pass_at_k" in last:
            out["pass_at_k"] = ({"before": first["pass_at_k"], "after": last["pass_at_k"]},
                                f"{s['pass_n']} problems x {s['pass_samples']} samples")
    elif len(lines) > 1:
        n = len(lines[0]["profiles"])
        samples = lines[0]["profiles"][0]["n"] if n else 0
        out["transitions"] = (transitions(lines[0]["profiles"], lines[-1]["profiles"]),
                              f"logged: {n} problems x {samples} samples, steps {lines[0]['step']} -> "
                              f"{lines[-1]['step']}")
    signal = {s: m for s, m in train.items() if "train/zero_std_groups" in m}
    if signal:
        out["signal"] = signal
    return out


def _tenth_mean(signal: dict[int, dict], key: str, first: bool) -> float | None:
    """The mean of a logged train metric over the first or the last tenth of the steps (:func:`report.tenth`)."""
    vals = [m.get(key, 0.0) for m in tenth(list(signal.values()), first)]
    return statistics.fmean(vals) if vals else None


def probe_section(logs: Logs) -> tuple[list[str], list[str]]:
    """Markdown and plots of every RL run's probes, for the runs of replica 0 that have any; ([], []) if none."""
    runs = [(s, probe_views(logs, s)) for s in logs.each()[0].rl()] if logs.stages else []
    runs = [(s, v) for s, v in runs if v]
    if not runs:
        return [], []
    md = ["## Strategy probes", "",
          "What each RL run logged of the strategy probes and what `ffreason analyze` measured from its checkpoints "
          "(docs/analysis.md explains each).", ""]
    pref = [(s, v["preference"]) for s, v in runs if "preference" in v]
    if pref:
        rows = []
        for s, (by_step, source) in pref:
            steps = sorted(by_step)
            rows.append([s.arm, s.data, *(f"{_pct(by_step[steps[0]].get(k))} -> {_pct(by_step[steps[-1]].get(k))}"
                                          for k in KINDS), f"{steps[0]} -> {steps[-1]}", source])
        md += ["### Teacher-forced preference: problems whose aligned trace is the more probable (%)", "",
               table(["arm", "RL data", *(f"{k} (aligned {ALIGNED[k]})" for k in KINDS), "steps", "measured on"],
                     rows), ""]
    trans = [(s, v["transitions"]) for s, v in runs if "transitions" in v]
    if trans:
        rows = []
        for s, (t, source) in trans:
            for group in (*KINDS, "all"):
                if group in t:
                    g = t[group]
                    rows.append([s.arm, s.data, group, _pct(g["before"]), _pct(g["after"]),
                                 f"{100 * g['selection']:+.1f}", f"{100 * g['improvement']:+.1f}", _pct(g["switched"]),
                                 source])
        md += ["### Sampled accuracy on the probe set, its change split into selection and improvement (points)", "",
               "Selection: problems moved to a strategy that was already accurate; improvement: a strategy got more "
               "accurate; the two add up to after - before. Switched: problems whose most used strategy changed.", "",
               table(["arm", "RL data", "kind", "before", "after", "selection", "improvement", "switched (%)",
                      "measured on"], rows), ""]
    sig = [(s, v["signal"]) for s, v in runs if "signal" in v]
    if sig:
        rows = []
        for s, signal in sig:
            key = "train/zero_std_groups"
            row = [s.arm, s.data, f"{_pct(_tenth_mean(signal, key, True))} -> {_pct(_tenth_mean(signal, key, False))}"]
            for k in KINDS:
                a = ALIGNED[k]
                other = "backward" if a == "forward" else "forward"
                row += [" / ".join(f"{_tenth_mean(signal, f'train/{k}/advantage/{st}/positive', first) or 0:+.3f}"
                                   for first in (True, False) for st in (a, other))]
            rows.append(row)
        md += ["### Where the gradient goes", "",
               "Groups whose rewards are all equal carry no GRPO signal; advantage mass is the sum of the positive "
               "advantages per (kind, strategy), divided by the batch size, averaged over the first and the last "
               "tenth of the steps.", "",
               table(["arm", "RL data", "groups without signal (%), first -> last tenth",
                      *(f"{k}: positive mass aligned / other, first tenth; aligned / other, last tenth" for k in KINDS)],
                     rows), ""]
    passk = [(s, v["pass_at_k"]) for s, v in runs if "pass_at_k" in v]
    if passk:
        rows = []
        for s, (t, source) in passk:
            for group in (*KINDS, "all"):
                if group not in t["before"]:
                    continue
                top = max(t["before"][group]["any"], key=int)
                cols = [f"{_pct(t['before'][group]['any'].get(k))} -> {_pct(t['after'][group]['any'].get(k))}"
                        for k in ("1", top)]
                if group in ALIGNED:
                    a = ALIGNED[group]
                    cols.append(f"{_pct(t['before'][group][a].get(top))} -> {_pct(t['after'][group][a].get(top))}")
                else:
                    cols.append(NA)
                rows.append([s.arm, s.data, group, *cols, top, source])
        md += ["### pass@k before -> after RL (%)", "",
               "pass@k: the chance that k samples hold a correct response; a gain at k = 1 with none at the largest "
               "k reweights what sampling already reached, a gain there adds what it could not.", "",
               table(["arm", "RL data", "kind", "pass@1", "pass@K", "pass@K, aligned strategy", "K", "measured on"],
                     rows), ""]
    return md, [_plot(logs, runs)]


def _plot(logs: Logs, runs: list) -> str:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.2), layout="constrained")
    fig.suptitle("strategy probes per RL run")
    styles = {"evaluation": "-", "inversion": "--"}
    for s, v in runs:
        label = f"{s.arm}, RL on {s.data}"
        line = None
        if "preference" in v:
            by_step = v["preference"][0]
            for k in KINDS:
                pts = [(st, m[k]) for st, m in sorted(by_step.items()) if k in m]
                if pts:
                    kw = {"color": line.get_color()} if line else {}
                    (line,) = axes[0].plot([p for p, _ in pts], [x for _, x in pts], styles[k], marker=".",
                                           label=f"{label}, {k}", **kw)
        if "signal" in v:
            steps = sorted(v["signal"])
            kw = {"color": line.get_color()} if line else {}
            axes[2].plot(steps, [v["signal"][st]["train/zero_std_groups"] for st in steps], label=label, **kw)
        if "pass_at_k" in v:
            t = v["pass_at_k"][0]
            for when, style in (("before", ":"), ("after", "-")):
                by_k = sorted((int(k), x) for k, x in t[when]["all"]["any"].items())
                kw = {"color": line.get_color()} if line else {}
                (line,) = axes[3].plot([k for k, _ in by_k], [x for _, x in by_k], style, marker=".",
                                       label=f"{label}, {when}", **kw)
    trans = [(s, v["transitions"][0]["all"]) for s, v in runs if "transitions" in v]
    if trans:
        names = [f"{s.arm}\n{s.data}" for s, _ in trans]
        sel = [t["selection"] for _, t in trans]
        imp = [t["improvement"] for _, t in trans]
        axes[1].bar(names, sel, label="selection", color="tab:purple")
        axes[1].bar(names, imp, bottom=[max(0.0, x) for x in sel], label="improvement", color="tab:olive")
        axes[1].axhline(0, color="black", linewidth=0.5)
    titles = ("teacher-forced: aligned more probable", "probe accuracy change: selection + improvement",
              "groups without reward variance", "pass@k (all kinds)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    axes[0].set_xlabel("RL step")
    axes[2].set_xlabel("RL step")
    axes[3].set_xlabel("k")
    axes[3].set_xscale("log", base=2)
    return _save(fig, logs.run_dir, "strategy_probes.png")

"""The study's experiments, each one object registered once: its stages, its report section, the study's claims.

:data:`EXPERIMENTS` is the registry ``ffreason reproduce`` and ``ffreason
report`` read; an experiment's stages are built from a preset by
:class:`~baselines.stages.Builder`, and its report section
(:mod:`baselines.report`) reads what those stages logged. After-SFT numbers are
the RL runs' step-0 evaluation (``eval_every`` is always on): the same greedy
validation sets, with no extra stage.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from ffreason_env import ALIGNED, ProblemConfig
from ffreason_env.atomic import atomic_write
from trainers.evaluation import eval_set_name
from trainers.rl_config import from_layers
from trainers.runlog import write_json

from . import report as sections
from .claims import Check, Claim, above, at_least, at_most, at_most_above, missing
from .probe_report import probe_section
from .report import Logs, Report, Section, parts_share, sample_share, share, summary_share, tenth
from .stages import STAGE_LOG, Builder, RLStage, SFTStage, Stage, read_manifest
from .study import AMPLIFICATION_SHARES, ARM_ORDER, COMPOSITION_PARTS, ROBUSTNESS, ROBUSTNESS_DATA, TABLE1

__all__ = ["Experiment", "EXPERIMENTS", "STUDY", "REPORT_DATA", "experiment_stages", "plan", "robustness_variants",
           "seed_list", "write_report"]


def _selection(b: Builder, p: int = 11) -> list[Stage]:
    """SFT arms F, B, FB on 2-5 steps; RL on 2-5 and on 6-9 steps from each; validation on 2-5 and 6-9, by the RL
    runs under their budget and, for the SFT models, once more without it (a budget from the reference traces)."""
    sft = [b.sft(arm, p=p) for arm in ARM_ORDER]
    rl = [b.rl(s, f"{lo}-{hi}", {"p": p, "min_steps": lo, "max_steps": hi}) for lo, hi in ((2, 5), (6, 9)) for s in sft]
    unbudgeted = [b.evaluation(s, {eval_set_name(lo, hi): run.config.problem.without_offsets().replace(
                                       min_steps=lo, max_steps=hi)
                                   for lo, hi in run.config.eval_ranges})  # the RL runs' own validation sets
                  for s, run in zip(sft, rl)]
    return [*sft, *rl, *unbudgeted]


def _improvement(b: Builder) -> list[Stage]:
    """RL on 2-5, 6-9 and 6-15 steps from the same SFT arms; accuracy per step count 2..15 before and after.

    RL on 2-5 and on 6-9 are selection's runs (in a study, the same stages); RL on 6-15 validates on 10-15 steps
    as it trains, and the models of the other two are evaluated there once trained, under its budget."""
    sft = [b.sft(arm) for arm in ARM_ORDER]
    rl = [b.rl(s, f"{lo}-{hi}", {"min_steps": lo, "max_steps": hi}) for lo, hi in ((2, 5), (6, 9)) for s in sft]
    hard = {s.arm: b.rl(s, "6-15", {"min_steps": 6, "max_steps": 15}, eval_ranges=((2, 5), (6, 9), (10, 15)),
                        min_budget_ratio=1.05)  # every direct 15-step trace fits
            for s in sft}
    long = {eval_set_name(10, 15): hard["B"].config.problem.without_offsets().replace(min_steps=10, max_steps=15)}
    return [*sft, *rl, *hard.values(), *(b.evaluation(run, long, budget_of=hard[run.arm]) for run in rl)]


def _amplification(b: Builder) -> list[Stage]:
    """RL from the FB model on 2-5-step data with 50/50, 75/25, 90/10 evaluation/inversion.

    50/50 is the environments' default mix, so it is left unweighted: in a study that run is selection's RL on 2-5
    from the same arm (one stage; with weights 50/50 it drew the same problems as a stage of its own)."""
    sft = b.sft("FB")
    mix = {"min_steps": 2, "max_steps": 5, "problem_types": ["evaluation", "inversion"]}
    return [sft, *(b.rl(sft, f"eval{share}", mix if share == 50 else {**mix, "type_weights": [share, 100 - share]})
                   for share in AMPLIFICATION_SHARES)]


def _composition(b: Builder) -> list[Stage]:
    """FB SFT with and without 2-part compositions; RL on 3-5-part compositions; accuracy per number of parts.

    The 2-part compositions start at part 1 to 5 (``max_part_offset`` 4, as ``max_label_offset`` 4 shows 2-5-step
    SFT data the labels of 9 steps), so SFT shows every part number of the longest validation compositions: a model
    that never wrote ``part 3`` cannot write a third part."""
    with_parts = b.sft("FB", "with-2part", problem_types=["evaluation", "inversion", "composition"],
                       min_parts=2, max_parts=2, max_part_offset=max(COMPOSITION_PARTS) - 2)
    without = b.sft("FB", "without-2part")
    rl = [b.rl(sft, "parts-3-5", {"problem_types": ["composition"], "min_steps": 2, "max_steps": 5, "min_parts": 3,
                                  "max_parts": 5},
               env="ffreason/Composition-v0", eval_ranges=((2, 5),),
               min_budget_ratio=1.05)  # every aligned 5-part trace fits
          for sft in (with_parts, without)]
    sets = {f"parts-{k}": ProblemConfig(min_steps=2, max_steps=5, problem_types=["composition"], min_parts=k,
                                        max_parts=k) for k in COMPOSITION_PARTS}
    return [with_parts, without, *rl, *(b.evaluation(s, sets) for s in (with_parts, rl[0], without, rl[1]))]


def robustness_variants(b: Builder) -> dict[str, tuple[str, dict]]:
    """The study's hyper-parameter variants of RL on 6-9 steps, relative to the preset: ``{variant: (RL data
    label, changed knobs)}``. A group of 16 keeps the problems per batch (twice the samples); the study's
    unstable lr was five times its default."""
    base = from_layers(b.algo, b.sections["rl"], b.sections[b.algo])
    knobs = {
        "default": {},
        "beta 0.1": {"beta": 0.1},
        "group 16": {"num_generations": 16,
                     "per_device_train_batch_size": base.per_device_train_batch_size * 16 // base.num_generations},
        "lr x5": {"learning_rate": 5 * base.learning_rate},
    }
    return {variant: (ROBUSTNESS_DATA[variant], k) for variant, k in knobs.items()}


def _robustness(b: Builder) -> list[Stage]:
    """SFT arms as in selection; RL on 6-9 from each under every variant of :func:`robustness_variants`."""
    sft = [b.sft(arm) for arm in ARM_ORDER]
    return [*sft, *(b.rl(s, data, {"min_steps": 6, "max_steps": 9}, **knobs)
                    for data, knobs in robustness_variants(b).values() for s in sft)]


# --- the study's claims as rules (baselines.claims): each takes one replica's Logs


def _arms_after_sft_on_easy(r: Logs) -> list[Check]:
    """On the SFT models' own evaluation, without the RL budget: the study's budget cut no 2-5-step search."""
    found = r.evaluations(SFTStage)
    return [at_least(summary_share(found.get(arm), "eval_2-5", "all", f"{arm} after SFT on 2-5, unbudgeted"), 0.70)
            for arm in ARM_ORDER]


def _fb_selects_on_hard(r: Logs) -> list[Check]:
    fb, b, f = (share(r.after_rl("6-9", arm), "eval_6-9/accuracy", f"{arm} after RL on 6-9") for arm in ("FB", "B", "F"))
    return [at_least(fb, 0.90), above(fb, b, 0.25), above(fb, f, 0.25),
            at_most(share(r.after_rl("6-9", "B"), "eval_6-9/evaluation/accuracy", "B on evaluation"), 0.20),
            at_most(share(r.after_rl("6-9", "F"), "eval_6-9/inversion/accuracy", "F on inversion"), 0.20)]


def _only_fb_near_perfect(r: Logs) -> list[Check]:
    return _arms_after_sft_on_easy(r) + [
        at_least(share(r.after_rl("6-9", "FB"), "eval_6-9/accuracy", "FB after RL on 6-9"), 0.90),
        *(at_most(share(r.after_rl("6-9", arm), "eval_6-9/accuracy", f"{arm} after RL on 6-9"), 0.80)
          for arm in ("B", "F"))]


def _select_then_improve(r: Logs) -> list[Check]:
    sft, easy = r.after_sft("FB"), r.after_rl("2-5", "FB")
    return [above(share(easy, "eval_6-9/evaluation/accuracy", "FB evaluation after RL on 2-5"),
                  share(sft, "eval_6-9/evaluation/accuracy", "after SFT"), 0.10),
            above(share(easy, "eval_6-9/aligned", "FB aligned after RL on 2-5"), share(sft, "eval_6-9/aligned",
                                                                                      "after SFT"), 0.0),
            *_b_improves(r, "6-9", "6-9")]


def _b_improves(r: Logs, data: str, steps: str) -> list[Check]:
    key = f"eval_{steps}/inversion/accuracy"
    return [above(share(r.after_rl(data, "B"), key, f"B inversion on {steps} after RL on {data}"),
                  share(r.after_sft("B"), key, "after SFT"), 0.25)]


def _fb_aligned_rises(r: Logs) -> list[Check]:
    runs = r.rl("6-9", "FB")
    rows = r.completions(runs[0]) if runs else []
    return [above(sample_share(tenth(rows, False), kind, ALIGNED[kind], f"FB {kind} {ALIGNED[kind]}, last tenth"),
                  sample_share(tenth(rows, True), kind, ALIGNED[kind], "first tenth"), 0.10)
            for kind in ("evaluation", "inversion")]


def _improvement_needs_hard_data(r: Logs) -> list[Check]:
    key = "eval_6-9/inversion/accuracy"
    sft = share(r.after_sft("B"), key, "after SFT")
    return [*_b_improves(r, "6-9", "6-9"), *_b_improves(r, "6-15", "10-15"),
            at_most_above(share(r.after_rl("2-5", "B"), key, "B inversion on 6-9 after RL on 2-5"), sft, 0.15)]


def _forward_tracks_share(r: Logs) -> list[Check]:
    checks, fractions = [], []
    for s in AMPLIFICATION_SHARES:
        runs = r.rl(f"eval{s}")
        x = sample_share(tenth(r.completions(runs[0]) if runs else [], False), "all", "forward",
                         f"forward at {s}/{100 - s}")
        fractions.append(x)
        checks += [at_least(x, s / 100 - 0.15), at_most(x, s / 100 + 0.15)]
    return checks + [above(b, a, 0.0) for a, b in zip(fractions, fractions[1:])]


def _composition_needs_parts_in_sft(r: Logs) -> list[Check]:
    after = r.evaluations(RLStage)  # the models after RL, by their SFT data
    checks = [above(parts_share(after.get("with-2part"), k, f"with, {k} parts"),
                    parts_share(after.get("without-2part"), k, "without"), 0.25) for k in (3, 4, 5)]
    return checks + [at_most(parts_share(after.get("without-2part"), 5, "without, 5 parts"), 0.20)]


def _selects_under(variants: tuple[str, ...]) -> Callable[[Logs], list[Check]]:
    def check(r: Logs) -> list[Check]:
        out = []
        for variant in variants:
            data = ROBUSTNESS_DATA[variant]
            fb, b, f = (share(r.after_rl(data, arm), "eval_6-9/accuracy", f"{arm} ({variant})")
                        for arm in ("FB", "B", "F"))
            out += [at_least(fb, 0.90), above(fb, b, 0.25), above(fb, f, 0.25)]
        return out
    return check


def _unstable_lr(r: Logs) -> list[Check]:
    runs = r.rl(ROBUSTNESS_DATA["lr x5"], "FB")
    evals = r.metrics(runs[0])[0] if runs else {}
    if not evals:
        return [missing("FB (lr x5)")]
    key = "eval_6-9/accuracy"
    best = max((step for step in evals if key in evals[step]), key=lambda step: evals[step][key])
    return [above(share(evals[best], key, f"FB (lr x5) at its best, step {best}"),
                  share(evals[max(evals)], key, "at the end"), 0.20)]


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    """One line: what it runs and shows."""
    stages: Callable[[Builder], list[Stage]]
    """Its stages at a preset, in run order."""
    section: Callable[[Logs, "Experiment"], Section]
    """Its part of the report: the headline table, the markdown, its own plots."""
    claims: tuple[Claim, ...]
    """What the study reports for it, each with the rule that tests it."""
    published: dict | None = None
    """The study's numbers printed beside ours (Table 1), where there are any."""


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "selection", "SFT arms F, B, FB on 2-5 steps; RL on 2-5 and on 6-9; the study's Table 1", _selection,
        sections.selection, (
            Claim("All three arms start near 80% on 2-5-step validation after SFT.",
                  "each arm >= 70% on 2-5 after SFT, without the RL budget", _arms_after_sft_on_easy),
            Claim("FB after RL on hard (6-9) data: ~95%; single-strategy arms ~50-60%, at chance on the kind their "
                  "strategy does not fit.",
                  "after RL on 6-9, on 6-9: FB >= 90% and >= 25 points above B and above F; B on evaluation and F "
                  "on inversion <= 20% (chance: 1/p)", _fb_selects_on_hard),
            Claim("RL on same-difficulty data mostly selects (FB evaluation 64 -> 92); RL on harder data improves "
                  "(B inversion 39 -> 96).",
                  "on 6-9: FB's evaluation accuracy >= 10 points higher after RL on 2-5 than after SFT, with a "
                  "higher aligned fraction; B's inversion accuracy >= 25 points higher after RL on 6-9",
                  _select_then_improve),
            Claim("FB's aligned-strategy fraction rises on both kinds.",
                  "FB's sampled responses under RL on 6-9: aligned fraction >= 10 points higher in the last tenth "
                  "of steps than in the first, on evaluation and on inversion", _fb_aligned_rises),
        ), published=TABLE1),
    Experiment(
        "improvement", "RL on 2-5 vs 6-9 vs 6-15 from the same SFT arms; accuracy per step count 2..15",
        _improvement, sections.improvement, (
            Claim("RL on harder data (6-9, 6-15 steps) makes a strategy work on longer chains than it was "
                  "supervised on (B inversion 39 -> 96 on 6-9 steps); RL on 2-5 does not.",
                  "B's inversion accuracy >= 25 points above after SFT on 6-9 after RL on 6-9 and on 10-15 after RL "
                  "on 6-15; after RL on 2-5, at most 15 points above on 6-9", _improvement_needs_hard_data),
        )),
    Experiment(
        "amplification", "RL data 50/50, 75/25, 90/10 evaluation/inversion; forward fraction vs share",
        _amplification, sections.amplification, (
            Claim("With RL data skewed 50/50, 75/25, 90/10 (evaluation/inversion), the fraction of forward "
                  "responses tracks the evaluation share.",
                  "forward fraction of the samples in the last tenth of RL steps within 15 points of each share, "
                  "and rising with the share", _forward_tracks_share),
        )),
    Experiment(
        "composition", "SFT with / without 2-part compositions; RL on 3-5 parts; accuracy per part count",
        _composition, sections.composition, (
            Claim("With 2-part compositions in SFT, RL on 3-5-part compositions extends to longer chains; without "
                  "them in SFT, RL does not learn composition.",
                  "after RL on 3-5 parts: the model with 2-part compositions in SFT >= 25 points above the one "
                  "without on 3, 4 and 5 parts; the one without <= 20% on 5 parts", _composition_needs_parts_in_sft),
        )),
    Experiment(
        "robustness", "RL on 6-9 from the selection arms under beta 0.1, a group of 16, and 5x the lr",
        _robustness, sections.robustness, (
            Claim("The selection result holds under beta 0.1 and a group of 16 (B / F / FB after RL: default "
                  "53 / 60 / 97, beta 0.1 53 / 58 / 96, group 16 58 / 51 / 98).",
                  "under the default, beta 0.1 and group 16: FB >= 90% on 6-9 after RL on 6-9 and >= 25 points "
                  "above B and above F", _selects_under(("default", "beta 0.1", "group 16"))),
            Claim("A learning rate of 5e-5 (five times the study's) is unstable.",
                  "with 5x the preset's lr, FB's 6-9 accuracy at its last evaluation >= 20 points below its best",
                  _unstable_lr),
        ), published=ROBUSTNESS),
    Experiment(
        "gf13", "selection at p = 13", lambda b: _selection(b, p=13), sections.selection, (
            Claim("GF(13): all arms 70-80% after SFT on 2-5 steps; after RL on 6-9 only FB is near perfect.",
                  "each arm >= 70% on 2-5 after SFT, without the RL budget; after RL on 6-9, on 6-9: FB >= 90%, B "
                  "and F <= 80%",
                  _only_fb_near_perfect),
        )),
)}


def seed_list(seeds: Sequence[int]) -> list[int]:
    """``--seeds``: one number N is replicas 0..N-1; several numbers are those replicas."""
    seeds = list(seeds)
    if not seeds or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in seeds):
        raise ValueError(f"seeds: expected N >= 1 or a list of replicas >= 0, got {seeds!r}")
    if len(seeds) == 1:
        if seeds[0] < 1:
            raise ValueError(f"seeds: expected N >= 1 (replicas 0..N-1), got {seeds[0]}")
        return list(range(seeds[0]))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: {seeds} names a replica twice")
    return sorted(seeds)


STUDY = "study"
"""``reproduce study``: every experiment, each in its own sub-directory, sharing the stages they have in common."""


def experiment_stages(experiment: str, preset: str, run_dir: str, algo: str = "grpo", replicas: Sequence[int] = (0,),
                      eval_n: int | None = None) -> dict[str, list[Stage]]:
    """Each experiment's stages (every experiment's for :data:`STUDY`), every config validated, nothing loaded.

    A study keeps experiment E in ``run_dir/E`` and builds the experiments of one replica with one cache of
    stages, so a stage two experiments define alike (the selection arms that improvement, amplification and
    robustness start from; selection's RL on 6-9, robustness's default) is one stage, in the first one's
    directory."""
    names = list(EXPERIMENTS) if experiment == STUDY else [experiment]
    if experiment != STUDY and experiment not in EXPERIMENTS:
        raise ValueError(f"experiment: {experiment!r} is not one of {', '.join([*EXPERIMENTS, STUDY])}")
    out: dict[str, list[Stage]] = {name: [] for name in names}
    for k in replicas:
        shared: dict = {}
        for name in names:
            b = Builder(run_dir, preset, algo, k, eval_n, experiment_dir=name if experiment == STUDY else "",
                        shared=shared)
            out[name] += EXPERIMENTS[name].stages(b)
    for stages in out.values():
        for stage in stages:
            stage.validate()
    return out


def plan(experiment: str, preset: str, run_dir: str, algo: str = "grpo", replicas: Sequence[int] = (0,),
         eval_n: int | None = None) -> list[Stage]:
    """The stages of ``experiment`` (or of the whole :data:`STUDY`) at ``preset`` for each replica (seed), in run
    order, each once. Replica 0's stages are in ``run_dir``, replica k's in ``run_dir/seed-k``; ``eval_n``
    problems per validation set (None: the preset's)."""
    stages: dict[str, Stage] = {}
    for experiment_stages_ in experiment_stages(experiment, preset, run_dir, algo, replicas, eval_n).values():
        for stage in experiment_stages_:
            stages.setdefault(stage.name, stage)
    return list(stages.values())


REPORT_DATA = "report.json"
"""``RUN_DIR/report.json``: every number of the report per replica, and each claim's verdicts."""


def _experiment_report(run_dir: str, logs: Logs, experiment: Experiment, manifest: dict, study_dir: str | None
                       ) -> tuple[Section, list[str], list[dict]]:
    section = experiment.section(logs, experiment)
    probes_md, probe_plots = probe_section(logs)
    section = dataclasses.replace(section, markdown=[*section.markdown, *probes_md],
                                  plots=[*section.plots, *probe_plots])
    claims_md, verdicts = sections.claims(logs, experiment.claims)
    text = sections.document(logs, experiment.name, experiment.summary, manifest, section, claims_md,
                             regenerate=study_dir or run_dir)
    with atomic_write(os.path.join(run_dir, "report.md")) as f:
        f.write(text)
    write_json(os.path.join(run_dir, REPORT_DATA), {**manifest, "experiment": experiment.name,
                                                     "seeds": logs.replicas(), "cells": section.cells.records,
                                                     "claims": verdicts})
    return section, claims_md, verdicts


def _held_replicas(run_dir: str, listed: Sequence[int]) -> list[int]:
    """The replicas of ``run_dir``: those its manifest lists, and any other it holds a ``seed-k`` directory of."""
    found = {int(name[5:]) for name in (os.listdir(run_dir) if os.path.isdir(run_dir) else [])
             if name.startswith("seed-") and name[5:].isdigit() and os.path.isdir(os.path.join(run_dir, name))}
    return sorted(set(listed) | found)


def _reported(stages: list[Stage], listed: Sequence[int]) -> list[Stage]:
    """The stages of the replicas a report covers: the listed ones, finished or not, and any other replica whose
    stages have all finished (a study whose selection ran more seeds than its other experiments)."""
    extra = {s.replica for s in stages} - set(listed)
    done = {k for k in extra if all(s.done() for s in stages if s.replica == k)}
    return [s for s in stages if s.replica in listed or s.replica in done]


def write_report(run_dir: str) -> Report:
    """Write ``RUN_DIR/report.md``, ``report.json`` and the plots from the logged metrics of the experiment the
    directory holds; for a study, each experiment's in its sub-directory and an overview of every claim's
    verdicts in ``RUN_DIR``. Each experiment reports the replicas the manifest lists and every other replica
    (``seed-k``) whose stages of that experiment have all finished."""
    manifest = read_manifest(run_dir)
    listed = manifest.get("seeds", [0])
    by_experiment = {name: _reported(stages, listed) for name, stages in experiment_stages(
        manifest["experiment"], manifest["preset"], run_dir, manifest["algo"], _held_replicas(run_dir, listed),
        manifest.get("eval_n")).items()}
    stage_log = os.path.join(run_dir, STAGE_LOG)
    if manifest["experiment"] != STUDY:
        experiment = EXPERIMENTS[manifest["experiment"]]
        logs = Logs(run_dir, by_experiment[experiment.name], stage_log=stage_log)
        section, _, _ = _experiment_report(run_dir, logs, experiment, manifest, None)
        return Report(os.path.join(run_dir, "report.md"), section.headline)
    rows, text, data, seeds = [], [], {}, {}
    for name, stages in by_experiment.items():
        experiment = EXPERIMENTS[name]
        sub = os.path.join(run_dir, name)
        logs = Logs(sub, stages, stage_log=stage_log)
        seeds[name] = logs.replicas()
        section, claims_md, verdicts = _experiment_report(sub, logs, experiment, manifest, run_dir)
        data[name] = verdicts
        rows += [[name, v["claim"], v["rule"], f"{v['holds_in']} of {len(v['verdicts'])}"
                  + (f" ({v['verdicts'][0]})" if len(v["verdicts"]) == 1 else "")] for v in verdicts]
        text += [f"## [{name}]({name}/report.md): {experiment.summary}", "", section.headline, ""]
    if len({tuple(k) for k in seeds.values()}) == 1:
        seeds_text = "seeds " + ", ".join(map(str, next(iter(seeds.values()))))
    else:
        seeds_text = "seeds " + "; ".join(f"{name} {', '.join(map(str, k))}" for name, k in seeds.items())
    overview = sections.table(["experiment", "the study reports", "rule", "holds in (seeds)"], rows)
    document = [f"# The study at preset `{manifest['preset']}`", "",
                f"RL algorithm `{manifest['algo']}`, {seeds_text}; every experiment's own report is in its "
                f"directory. Regenerate with `ffreason report {run_dir}`.", "",
                "## The study's claims, and in how many seeds each holds", "", overview, "", *text]
    path = os.path.join(run_dir, "report.md")
    with atomic_write(path) as f:
        f.write("\n".join(document))
    write_json(os.path.join(run_dir, REPORT_DATA), {**manifest, "seeds": seeds, "claims": data})
    return Report(path, overview)

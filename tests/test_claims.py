"""The study's claims as rules: intervals, comparisons, each experiment's rule on hand-made metrics (holds, does not
hold, inconclusive), and replicas (``--seeds``): their directories, aggregates and verdict counts."""

import json
import math
import os

import pytest

pytest.importorskip("torch")

from baselines.claims import FAILS, HOLDS, INCONCLUSIVE, Share, above, at_least, at_most, at_most_above, combine, wilson
from baselines.cli import main
from baselines.experiments import EXPERIMENTS, REPORT_DATA, plan, seed_list
from baselines.stages import MANIFEST, EvalStage, RLStage
from ffreason_env import read_jsonl


def test_wilson_interval_matches_hand_computed_values():
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson(0.0, 10)  # a fraction at the edge keeps a non-empty interval inside [0, 1]
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson(1.0, 10) == pytest.approx((1 - 0.2775, 1.0), abs=1e-4)
    with pytest.raises(ValueError, match="n:"):
        wilson(0.5, 0)


def test_a_comparison_holds_fails_or_is_inconclusive_by_its_interval():
    assert at_least(Share("x", 0.97, 100), 0.90).verdict == HOLDS  # [0.915, 0.990]
    assert at_least(Share("x", 0.93, 100), 0.90).verdict == INCONCLUSIVE  # [0.862, 0.966] straddles 0.90
    assert at_least(Share("x", 0.80, 100), 0.90).verdict == FAILS  # [0.711, 0.867]
    assert at_least(Share("x", 0.91), 0.90).verdict == HOLDS  # no count: the point estimate decides
    assert at_most(Share("x", 0.05, 50), 0.20).verdict == HOLDS
    assert at_most(Share("x", 0.30, 50), 0.20).verdict == INCONCLUSIVE
    assert at_least(Share("FB", None), 0.9).verdict == INCONCLUSIVE
    assert "FB: not measured" in at_least(Share("FB", None), 0.9).text
    # a difference: half-widths added in quadrature
    a, b = Share("a", 0.95, 100), Share("b", 0.50, 100)
    check = above(a, b, 0.25)
    (alo, ahi), (blo, bhi) = a.interval(), b.interval()
    half = math.hypot((ahi - alo) / 2, (bhi - blo) / 2)
    assert check.verdict == HOLDS and f"[{100 * (0.45 - half):.1f}, {100 * (0.45 + half):.1f}]" in check.text
    assert above(Share("a", 0.70, 100), b, 0.25).verdict == INCONCLUSIVE  # 20 points, about +-13
    assert above(Share("a", 0.50, 100), b, 0.25).verdict == FAILS
    assert at_most_above(Share("a", 0.52, 100), b, 0.10).verdict == INCONCLUSIVE
    assert at_most_above(Share("a", 0.52, 1000), Share("b", 0.50, 1000), 0.10).verdict == HOLDS
    assert combine([check, at_least(Share("x", 0.8, 100), 0.9)]) == FAILS
    assert combine([check, at_least(Share("x", 0.93, 100), 0.9)]) == INCONCLUSIVE
    assert combine([check, check]) == HOLDS and combine([]) == INCONCLUSIVE


def test_seeds_are_a_count_or_a_list():
    assert seed_list([3]) == [0, 1, 2] and seed_list([1]) == [0]
    assert seed_list([4, 0]) == [0, 4]
    for bad in ([0], [], [1, 1], [-1, 2], [True]):
        with pytest.raises(ValueError, match="seeds"):
            seed_list(bad)


# --- each experiment's rule on hand-made metrics: the RL runs' eval lines, completions and summaries written by hand


def _line(step, sets):
    """An eval line of ``sets``: {set name: {"all": acc, "inversion": acc, "evaluation": acc, "aligned": frac}},
    with the counts the trainers log (100 problems, half of each kind)."""
    m = {"phase": "eval", "step": step}
    for name, values in sets.items():
        m[f"{name}/n"] = 100
        m[f"{name}/accuracy"] = values["all"]
        m[f"{name}/aligned"] = values.get("aligned", 0.5)
        for kind in ("inversion", "evaluation"):
            if kind in values:
                m[f"{name}/{kind}/n"] = 50
                m[f"{name}/{kind}/accuracy"] = values[kind]
        for k, acc in values.get("steps", {}).items():
            m[f"{name}/steps/{k}/n"] = 20
            m[f"{name}/steps/{k}/accuracy"] = acc
    return m


def _write_rl(stage, first, last, completions=()):
    os.makedirs(stage.out, exist_ok=True)
    with open(os.path.join(stage.out, "metrics.jsonl"), "w") as f:
        f.write(json.dumps(_line(0, first)) + "\n" + json.dumps(_line(10, last)) + "\n")
    with open(os.path.join(stage.out, "completions.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in completions)
    with open(os.path.join(stage.out, stage.summary_file), "w") as f:
        f.write("{}")


WORK = "step 1 add e1 : e2 -> e3\nanswer e3"


def _samples(kind, strategy_first, strategy_last, n=100):
    """Completions of steps 1..10: the first tenth (step 1) all ``strategy_first``, the last (step 10) all
    ``strategy_last``."""
    def row(step, strategy):
        return {"step": step, "kind": kind, "strategy": strategy, "completion": WORK}

    return [row(1, strategy_first)] * n + [row(s, "unknown") for s in range(2, 10)] + [row(10, strategy_last)] * n


def _verdicts(run_dir, experiment, replica=0):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, MANIFEST), "w") as f:
        json.dump({"experiment": experiment, "preset": "micro", "algo": "grpo", "seeds": [replica]}, f)
    assert main(["report", run_dir]) == 0
    with open(os.path.join(run_dir, REPORT_DATA)) as f:
        return [c["verdicts"][0] for c in json.load(f)["claims"]]


def _selection(run_dir, fb_hard=0.98, b_eval=0.05, sft_easy=0.85, fb_easy_eval=0.90, b_inv=0.96, fb_last="forward",
               b_all=0.50, experiment="selection", replica=0):
    sft = {"eval_2-5": {"all": 0.2}, "eval_6-9": {"all": 0.3, "inversion": 0.30, "evaluation": 0.50, "aligned": 0.5}}
    final = {
        ("6-9", "FB"): {"all": fb_hard, "inversion": fb_hard, "evaluation": fb_hard},
        ("6-9", "B"): {"all": b_all, "inversion": b_inv, "evaluation": b_eval},
        ("6-9", "F"): {"all": 0.50, "inversion": 0.04, "evaluation": 0.96},
        ("2-5", "FB"): {"all": 0.6, "inversion": 0.3, "evaluation": fb_easy_eval, "aligned": 0.9},
    }
    for stage in plan(experiment, "micro", run_dir, replicas=[replica]):
        if isinstance(stage, EvalStage):  # the SFT models without the RL budget
            os.makedirs(stage.out, exist_ok=True)
            sets = {name: {"greedy": {"n": 100, "accuracy": sft_easy if name == "eval_2-5" else 0.3}}
                    for name in stage.sets}
            with open(os.path.join(stage.out, stage.summary_file), "w") as f:
                json.dump({"model": stage.model.name, "sets": sets}, f)
        if isinstance(stage, RLStage):
            last = final.get((stage.data, stage.arm), {"all": 0.5, "inversion": 0.5, "evaluation": 0.5})
            samples = _samples("evaluation", "backward", fb_last) + _samples("inversion", "forward", "backward") \
                if (stage.data, stage.arm) == ("6-9", "FB") else ()
            _write_rl(stage, sft, {"eval_2-5": {"all": 0.9}, "eval_6-9": last}, samples)
    return _verdicts(run_dir, experiment, replica)


def test_selection_rules_hold_on_numbers_that_satisfy_them_and_not_on_others(tmp_path):
    assert _selection(str(tmp_path / "holds")) == [HOLDS] * 4
    assert _selection(str(tmp_path / "fb-low"), fb_hard=0.60) == [HOLDS, FAILS, HOLDS, HOLDS]
    assert _selection(str(tmp_path / "fb-edge"), fb_hard=0.91)[1] == INCONCLUSIVE  # [0.838, 0.952] straddles 90
    assert _selection(str(tmp_path / "b-eval"), b_eval=0.60)[1] == FAILS  # B not at chance on evaluation
    assert _selection(str(tmp_path / "sft-low"), sft_easy=0.40)[0] == FAILS  # unbudgeted; under the budget 20 in all
    assert _selection(str(tmp_path / "no-select"), fb_easy_eval=0.50)[2] == INCONCLUSIVE  # 0 +- 19 points, n 50
    assert _selection(str(tmp_path / "lower"), fb_easy_eval=0.30)[2] == FAILS
    assert _selection(str(tmp_path / "no-improve"), b_inv=0.30)[2] == FAILS
    assert _selection(str(tmp_path / "no-rise"), fb_last="backward")[3] == FAILS  # evaluation stays on backward


def test_a_one_seed_report_names_that_seed(tmp_path):
    run_dir = str(tmp_path / "seed2")
    assert _selection(run_dir, replica=2) == [HOLDS] * 4  # replica 2 alone, in run_dir/seed-2
    report = open(os.path.join(run_dir, "report.md")).read()
    assert "RL algorithm `grpo`, seed 2." in report and "one run (seed 2);" in report and "(seed 0)" not in report


def test_a_partial_multi_seed_run_says_how_many_seeds_a_cell_rests_on(tmp_path):
    run_dir = str(tmp_path / "partial")
    assert _selection(run_dir) == [HOLDS] * 4  # replica 0 only
    with open(os.path.join(run_dir, MANIFEST), "w") as f:
        json.dump({"experiment": "selection", "preset": "micro", "algo": "grpo", "seeds": [0, 1]}, f)
    assert main(["report", run_dir]) == 0
    table1 = open(os.path.join(run_dir, "report.md")).read().split("## Table 1")[1].split("\n## ")[0]
    assert "| FB | 30.0 (1 of 2) / 30.0 (1 of 2) / 50.0 (1 of 2) |" in table1
    with open(os.path.join(run_dir, REPORT_DATA)) as f:
        claims = json.load(f)["claims"]
    assert [c["verdicts"] for c in claims] == [[HOLDS, INCONCLUSIVE]] * 4 and {c["holds_in"] for c in claims} == {1}


def test_gf13_rule_wants_only_fb_near_perfect(tmp_path):
    assert _selection(str(tmp_path / "holds"), experiment="gf13") == [HOLDS]
    assert _selection(str(tmp_path / "b-perfect"), b_all=0.97, b_eval=0.98, experiment="gf13") == [FAILS]
    assert _selection(str(tmp_path / "fb-low"), fb_hard=0.60, experiment="gf13") == [FAILS]


def _improvement(run_dir, hard_inv=0.96, long_inv=0.90, easy_inv=0.25):
    after = {"6-9": {"eval_6-9": {"all": 0.5, "inversion": hard_inv}, "eval_10-15": {"all": 0.1, "inversion": 0.1}},
             "6-15": {"eval_6-9": {"all": 0.5, "inversion": 0.9}, "eval_10-15": {"all": 0.5, "inversion": long_inv}},
             "2-5": {"eval_6-9": {"all": 0.3, "inversion": easy_inv}, "eval_10-15": {"all": 0.1, "inversion": 0.1}}}
    sft = {"eval_6-9": {"all": 0.3, "inversion": 0.30}, "eval_10-15": {"all": 0.05, "inversion": 0.05}}
    for stage in plan("improvement", "micro", run_dir):
        if isinstance(stage, RLStage):
            _write_rl(stage, sft, after[stage.data])
    return _verdicts(run_dir, "improvement")


def test_improvement_rule_needs_gains_on_hard_data_and_none_on_easy(tmp_path):
    assert _improvement(str(tmp_path / "holds")) == [HOLDS]
    assert _improvement(str(tmp_path / "no-gain"), hard_inv=0.35) == [FAILS]
    assert _improvement(str(tmp_path / "no-long"), long_inv=0.05) == [FAILS]
    assert _improvement(str(tmp_path / "easy-gains"), easy_inv=0.90) == [FAILS]


def _amplification(run_dir, forward):
    for stage in plan("amplification", "micro", run_dir):
        if isinstance(stage, RLStage):
            share = int(stage.data[4:])
            k = round(forward[share] * 100)
            rows = [{"step": 10, "kind": "evaluation", "strategy": "forward", "completion": WORK}] * k + \
                   [{"step": 10, "kind": "inversion", "strategy": "backward", "completion": WORK}] * (100 - k)
            _write_rl(stage, {"eval_2-5": {"all": 0.5}}, {"eval_2-5": {"all": 0.9}}, rows)
    return _verdicts(run_dir, "amplification")


def test_amplification_rule_wants_the_forward_fraction_to_track_the_share(tmp_path):
    assert _amplification(str(tmp_path / "holds"), {50: 0.45, 75: 0.75, 90: 0.95}) == [HOLDS]
    assert _amplification(str(tmp_path / "flat"), {50: 0.95, 75: 0.95, 90: 0.95}) == [FAILS]


def _composition(run_dir, with_parts, without_parts):
    for stage in plan("composition", "micro", run_dir):
        if stage.summary_file == "eval_summary.json" and isinstance(stage.model, RLStage):
            acc = with_parts if stage.model.arm == "with-2part" else without_parts
            os.makedirs(stage.out, exist_ok=True)
            sets = {f"parts-{k}": {"greedy": {"n": 100, "accuracy": acc}} for k in range(2, 7)}
            with open(os.path.join(stage.out, stage.summary_file), "w") as f:
                json.dump({"model": stage.model.name, "sets": sets}, f)
    return _verdicts(run_dir, "composition")


def test_composition_rule_wants_parts_in_sft_to_matter(tmp_path):
    assert _composition(str(tmp_path / "holds"), 0.80, 0.08) == [HOLDS]
    assert _composition(str(tmp_path / "both"), 0.80, 0.80) == [FAILS]
    assert _composition(str(tmp_path / "missing"), None, 0.08) == [INCONCLUSIVE]


def _robustness(run_dir, fb=0.98, fb_lr_curve=(0.1, 0.9, 0.5)):
    for stage in plan("robustness", "micro", run_dir):
        if isinstance(stage, RLStage):
            acc = {"FB": fb, "B": 0.5, "F": 0.55}[stage.arm]
            curve = fb_lr_curve if (stage.data, stage.arm) == ("6-9-lr5x", "FB") else (0.1, acc, acc)
            os.makedirs(stage.out, exist_ok=True)
            with open(os.path.join(stage.out, "metrics.jsonl"), "w") as f:
                for step, a in zip((0, 5, 10), curve):
                    f.write(json.dumps(_line(step, {"eval_6-9": {"all": a}})) + "\n")
            with open(os.path.join(stage.out, stage.summary_file), "w") as f:
                f.write("{}")
    return _verdicts(run_dir, "robustness")


def test_robustness_rules_want_selection_under_each_variant_and_a_fall_at_5x_lr(tmp_path):
    assert _robustness(str(tmp_path / "holds")) == [HOLDS, HOLDS]
    assert _robustness(str(tmp_path / "fb-low"), fb=0.70) == [FAILS, HOLDS]
    assert _robustness(str(tmp_path / "stable"), fb_lr_curve=(0.1, 0.9, 0.95)) == [HOLDS, FAILS]


def test_every_claim_of_every_experiment_has_a_rule():
    for experiment in EXPERIMENTS.values():
        assert experiment.claims and all(c.rule and callable(c.check) for c in experiment.claims)


# --- replicas


def _evals(stage_dir):
    lines = {}
    for r in read_jsonl(os.path.join(stage_dir, "metrics.jsonl")):
        if r["phase"] == "eval":
            lines.setdefault(r["step"], {}).update(r)
    return lines


def test_seeds_run_replicas_in_their_own_directories_and_the_report_aggregates_them(tmp_path):
    out = str(tmp_path / "sel")
    assert main(["reproduce", "selection", "--preset", "micro", "--out", out, "--seeds", "2"]) == 0
    for k, root in ((0, out), (1, os.path.join(out, "seed-1"))):
        for arm in ("B", "F", "FB"):
            assert os.path.isfile(os.path.join(root, "sft", arm, "sft_summary.json"))
            with open(os.path.join(root, "rl-6-9", arm, "config.yaml")) as f:
                config = f.read()
            assert f"init: {os.path.join(root, 'sft', arm)}\n" in config and f"\nseed: {k}\n" in config
        with open(os.path.join(root, "sft", "FB", "config.yaml")) as f:
            assert f"\nseed: {k}\n" in f.read()
    with open(os.path.join(out, REPORT_DATA)) as f:
        data = json.load(f)
    assert data["seeds"] == [0, 1]
    cells = {(c["table"], c["row"], c["column"]): c for c in data["cells"]}
    for arm in ("B", "F", "FB"):
        finals = []
        for root in (out, os.path.join(out, "seed-1")):
            evals = _evals(os.path.join(root, "rl-6-9", arm))
            finals.append(evals[max(evals)]["eval_6-9/accuracy"])
        cell = cells[("eval_6-9", arm, "after RL on 6-9: all")]
        assert cell["values"] == finals and cell["mean"] == pytest.approx(sum(finals) / 2)
        assert cell["sd"] == pytest.approx(abs(finals[0] - finals[1]) / math.sqrt(2))
    report = open(os.path.join(out, "report.md")).read()
    assert "mean ± sd over 2 seeds (0, 1)" in report and "| FB | " in report
    for claim in data["claims"]:
        assert len(claim["verdicts"]) == 2 and claim["holds_in"] == claim["verdicts"].count(HOLDS)
        assert f"{claim['holds_in']} of 2 |" in report


def test_more_seeds_add_replicas_beside_the_finished_ones(tmp_path, monkeypatch, capsys):
    from baselines.stages import SFTStage

    ran = []

    def run(self):
        ran.append(self.name)
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, self.summary_file), "w") as f:
            f.write("{}")

    for cls in (SFTStage, RLStage, EvalStage):
        monkeypatch.setattr(cls, "run", run)
    out = str(tmp_path / "amp")
    assert main(["reproduce", "amplification", "--preset", "micro", "--out", out]) == 0
    first = list(ran)
    assert first and not any(name.startswith("seed-") for name in first)
    ran.clear()
    assert main(["reproduce", "amplification", "--preset", "micro", "--out", out, "--seeds", "0", "2"]) == 0
    assert ran == [f"seed-2/{name}" for name in first]  # replica 0 was done: only replica 2 ran
    with open(os.path.join(out, MANIFEST)) as f:
        assert json.load(f)["seeds"] == [0, 2]
    assert main(["report", out]) == 0
    with open(os.path.join(out, REPORT_DATA)) as f:
        assert json.load(f)["seeds"] == [0, 2]
    assert main(["reproduce", "amplification", "--preset", "micro", "--out", str(tmp_path / "n"), "--eval-n", "7"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):  # a rerun with other validation sets is refused
        main(["reproduce", "amplification", "--preset", "micro", "--out", str(tmp_path / "n")])
    assert "holds amplification --preset micro --algo grpo --eval-n 7" in capsys.readouterr().err

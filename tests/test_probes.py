"""The strategy probes (trainers/probes.py) against hand computations."""

import json
import math
import os

import pytest
import torch

from ffreason_env import ProblemConfig, ProblemSet, render_prompt, write_trace
from trainers.probes import group_signal, pass_at_k_table, preference, trace_logprobs, transitions
from trainers.sft import sft_example


def _problems(**kw):
    return list(ProblemSet(ProblemConfig(p=11, **kw), seed=5, size=3))


@pytest.mark.parametrize("coupled", [False, True])
def test_the_log_probability_of_a_reference_trace_is_the_sum_over_its_labelled_tokens(tmp_path, coupled):
    from trainers.models import build_tiny_model

    model, tok = build_tiny_model("micro", str(tmp_path), coupled=coupled)
    problems = _problems(min_steps=2, max_steps=6)  # traces of different lengths share a right-padded batch
    found = trace_logprobs(model, tok, problems, batch_size=4)
    for p, lp in zip(problems, found):
        assert set(lp) == {("forward",), ("backward",)}
        for (s,), (total, n) in lp.items():
            ex = sft_example(tok, render_prompt(p), write_trace(p, s))
            ids = torch.tensor([ex["input_ids"]])
            with torch.no_grad():  # one unpadded sequence, token by token
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            want = [logp[t - 1, ex["input_ids"][t]].item() for t in range(1, len(ex["input_ids"]))
                    if ex["labels"][t] != -100]
            assert n == len(want) and total == pytest.approx(sum(want), abs=1e-3)


def test_composition_preference_flips_one_part_at_a_time(micro_dir):
    from trainers.models import load_model

    model, tok = load_model(micro_dir)
    problems = _problems(min_steps=2, max_steps=3, problem_types=["composition"], min_parts=2, max_parts=3)
    found = trace_logprobs(model, tok, problems)
    for p, lp in zip(problems, found):
        assert len(lp) == 1 + len(p.parts)  # the all-aligned trace, then each part flipped
    metrics = preference(problems, found, "probe")
    parts = max(len(p.parts) for p in problems)
    assert {k.split("/")[2] for k in metrics} == {f"part_{j}" for j in range(1, parts + 1)}


def test_preference_counts_the_aligned_trace_more_probable_per_kind():
    ev, inv = _problems(problem_types=["evaluation"])[0], _problems(problem_types=["inversion"])[0]
    lps = [{("forward",): (-2.0, 4), ("backward",): (-6.0, 3)},  # evaluation: aligned forward more probable
           {("forward",): (-1.0, 2), ("backward",): (-3.0, 6)}]  # inversion: aligned backward less probable
    m = preference([ev, inv], lps, "p")
    assert m["p/evaluation/prefers_aligned"] == 1.0 and m["p/inversion/prefers_aligned"] == 0.0
    assert m["p/evaluation/log_ratio"] == 4.0 and m["p/inversion/log_ratio"] == -2.0
    assert m["p/evaluation/log_ratio_per_token"] == pytest.approx(-0.5 + 2.0)
    assert m["p/inversion/log_ratio_per_token"] == pytest.approx(-0.5 + 0.5)


def _prof(kind, **strategies):
    n = sum(v[0] for v in strategies.values())
    return {"kind": kind, "num_steps": 6, "n": n, "strategies": {s: list(v) for s, v in strategies.items()}}


def test_selection_and_improvement_add_up_to_the_accuracy_change():
    before = [_prof("inversion", forward=(6, 0), backward=(2, 2)),  # switches to backward, which was accurate
              _prof("inversion", backward=(8, 4)),                 # stays backward, gets better
              _prof("evaluation", backward=(8, 0)),                # moves to forward, never used at 0 on evaluation
              _prof("evaluation", forward=(4, 4), backward=(4, 0))]
    after = [_prof("inversion", backward=(8, 8)),
             _prof("inversion", backward=(8, 8)),
             _prof("evaluation", forward=(8, 8)),
             _prof("evaluation", forward=(8, 8))]
    t = transitions(before, after)
    # problem 0: selection (1 - 0.25) * 1 - 0.75 * 0 = 0.75, improvement 0; problem 1: 0 and 0.5
    assert t["inversion"]["selection"] == pytest.approx((0.75 + 0) / 2)
    assert t["inversion"]["improvement"] == pytest.approx((0 + 0.5) / 2)
    # problem 2: forward unseen on it, pooled over evaluation at 0: 4 of 4 right -> all selection; problem 3:
    # selection 0.5 * 1 - 0.5 * 0 = 0.5
    assert t["evaluation"]["selection"] == pytest.approx((1.0 + 0.5) / 2)
    assert t["evaluation"]["improvement"] == pytest.approx(0.0)
    for group in ("inversion", "evaluation", "all"):
        g = t[group]
        assert g["selection"] + g["improvement"] == pytest.approx(g["after"] - g["before"])
    assert t["inversion"]["matrix"] == {"forward": {"backward": 1}, "backward": {"backward": 1}}
    assert t["inversion"]["switched"] == 0.5 and t["all"]["switched"] == 0.5
    with pytest.raises(ValueError, match="different problems"):
        transitions(before, [*after[:3], _prof("inversion", backward=(8, 8))])


def test_pass_at_k_per_strategy_counts_correct_samples_of_that_strategy():
    profs = [_prof("inversion", forward=(3, 1), backward=(1, 1))]
    t = pass_at_k_table(profs, ks=(1, 2, 4, 8))
    assert set(t["inversion"]["any"]) == {"1", "2", "4"}  # 4 samples: k up to 4
    assert t["inversion"]["any"]["1"] == pytest.approx(0.5)
    assert t["inversion"]["any"]["2"] == pytest.approx(1 - math.comb(2, 2) / math.comb(4, 2))
    assert t["inversion"]["backward"]["1"] == pytest.approx(0.25)
    assert t["inversion"]["forward"]["2"] == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))
    assert t["all"] == t["inversion"] and t["inversion"]["unknown"]["4"] == 0.0


def test_group_signal_computes_grpo_advantages_as_trl_does():
    from trl.trainer.utils import nanstd

    rewards = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # the second group has no signal
    kinds = ["inversion"] * 4 + ["evaluation"] * 4
    strategies = ["backward", "forward", "forward", "unknown", "forward", "forward", "backward", "forward"]
    m = group_signal(kinds, strategies, rewards, group_size=4)
    r = torch.tensor(rewards).view(-1, 4)
    adv = ((r - r.mean(1, keepdim=True)) / (nanstd(r, dim=1, keepdim=True) + 1e-4)).flatten().tolist()
    assert m["train/zero_std_groups"] == 0.5
    assert m["train/inversion/advantage/backward/positive"] == pytest.approx(adv[0] / 8)
    assert m["train/inversion/advantage/forward/negative"] == pytest.approx((adv[1] + adv[2]) / 8)
    assert m["train/inversion/advantage/unknown/negative"] == pytest.approx(adv[3] / 8)
    assert m["train/evaluation/advantage/forward/positive"] == 0.0  # a group without signal moves nothing
    assert "train/inversion/advantage/backward/negative" in m and "train/inversion/advantage/mixed/positive" not in m
    plain = group_signal(kinds, strategies, rewards, group_size=4, scale="none")
    assert plain["train/inversion/advantage/backward/positive"] == pytest.approx(0.75 / 8)
    given = group_signal(kinds, strategies, rewards, advantages=[0.5, -0.25, 0, 0, 0, 0, 0, 0])  # PPO's, no groups
    assert "train/zero_std_groups" not in given and given["train/inversion/advantage/backward/positive"] == 0.5 / 8
    with pytest.raises(ValueError, match="do not divide"):
        group_signal(kinds, strategies, rewards, group_size=3)
    with pytest.raises(ValueError, match="one each per response"):
        group_signal(kinds, strategies[:7], rewards, group_size=4)


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_an_rl_run_logs_every_probe_and_samples_for_training_what_it_would_without_them(micro_dir, tmp_path, algo):
    from configs import rl_config
    from trainers.rl import make_trainer

    common = {"max_steps": 2, "eval_every": 1, "eval_ranges": [[2, 3]], "eval_n": 3, "probe_samples": 3}
    make_trainer(rl_config(micro_dir, tmp_path / "on", algo, probe_n=4, **common)).train()
    make_trainer(rl_config(micro_dir, tmp_path / "off", algo, probe_n=0, eval_teacher_forced=False,
                           **common)).train()
    on, off = (_lines(tmp_path / d / "completions.jsonl") for d in ("on", "off"))
    assert [r["completion"] for r in on] == [r["completion"] for r in off]  # probes draw from a random state of their own
    assert not os.path.exists(tmp_path / "off" / "probes.jsonl")
    probes = _lines(tmp_path / "on" / "probes.jsonl")
    assert [r["step"] for r in probes] == [0, 1, 2]
    assert all(len(r["profiles"]) == 4 and all(p["n"] == 3 for p in r["profiles"]) for r in probes)
    evals = [m for m in _lines(tmp_path / "on" / "metrics.jsonl") if m["phase"] == "eval"]
    for m, probe in zip(evals, probes):
        profs = probe["profiles"]
        assert m["probe/all/accuracy"] == pytest.approx(
            sum(c for p in profs for _, c in p["strategies"].values()) / (3 * 4))
        change = m["probe/all/selection"] + m["probe/all/improvement"]
        assert change == pytest.approx(m["probe/all/accuracy"] - evals[0]["probe/all/accuracy"])
        kinds = {p["kind"] for p in profs}
        assert {k for k in m if "/teacher_forced/" in k} == {
            f"probe/teacher_forced/{kind}/{x}" for kind in kinds
            for x in ("prefers_aligned", "log_ratio", "log_ratio_per_token")}
    assert evals[0]["probe/all/selection"] == 0 and evals[0]["probe/all/switched"] == 0
    train = [m for m in _lines(tmp_path / "on" / "metrics.jsonl") if m["phase"] == "train" and "train/accuracy" in m]
    assert len(train) == 2
    for m in train:
        rows = sorted((r for r in on if r["step"] == m["step"]), key=lambda r: r["slot"])
        rewards = [r["reward"] for r in rows]
        groups = [rewards[i:i + 4] for i in range(0, len(rewards), 4)]
        assert m["train/zero_std_groups"] == sum(max(g) == min(g) for g in groups) / len(groups)
        mass = {k: v for k, v in m.items() if "/advantage/" in k and not k.startswith("train/first_token/")}
        assert mass and {k.split("/")[3] for k in mass} <= {"forward", "backward", "mixed", "unknown"}
        if algo == "ppo":  # and what reaches each response's first token, where it commits to a strategy
            first = {k.replace("train/first_token/", "train/"): v for k, v in m.items()
                     if k.startswith("train/first_token/")}
            assert set(first) == set(mass) and "advantage/first_token_abs" in m
        if algo == "grpo":  # TRL's advantages follow from the logged rewards
            want = group_signal([r["kind"] for r in rows], [r["strategy"] for r in rows], rewards, group_size=4)
            assert mass == pytest.approx({k: v for k, v in want.items() if "/advantage/" in k})


def _row(section, *first):
    line = next(line for line in section.splitlines() if line.startswith("| " + " | ".join(first) + " |"))
    return [c.strip() for c in line.strip("|").split("|")]


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def test_analyze_probes_every_checkpoint_and_the_report_shows_what_it_wrote(tmp_path):
    from baselines.cli import main

    out = str(tmp_path / "selection")
    assert main(["reproduce", "selection", "--preset", "micro", "--out", out]) == 0
    assert main(["analyze", out, "--probe-n", "3", "--samples", "2", "--pass-n", "2", "--pass-samples", "4",
                 "--batch-size", "16"]) == 0
    run = os.path.join(out, "rl-6-9", "FB")
    analysis = json.load(open(os.path.join(run, "analysis.json")))
    steps = [c["step"] for c in analysis["checkpoints"]]
    assert steps == [0, 1]  # the SFT model, then the final model of the one-step run
    assert analysis["checkpoints"][0]["model"].endswith(os.path.join("sft", "FB", "model"))
    assert all(len(c["profiles"]) == 3 and {p["n"] for p in c["profiles"]} == {2} for c in analysis["checkpoints"])
    assert set(analysis["checkpoints"][0]["pass_at_k"]["all"]["any"]) == {"1", "2", "4"}
    section = open(os.path.join(out, "report.md")).read().split("## Strategy probes")[1].split("\n## ")[0]
    t = analysis["transitions"]["all"]
    assert _row(section, "FB", "6-9", "all")[3:8] == [_pct(t["before"]), _pct(t["after"]), f"{100 * t['selection']:+.1f}",
                                                      f"{100 * t['improvement']:+.1f}", _pct(t["switched"])]
    before, after = analysis["checkpoints"][0]["pass_at_k"], analysis["checkpoints"][-1]["pass_at_k"]
    passk = section.split("### pass@k")[1]
    assert _row(passk, "FB", "6-9", "all")[3:5] == [f"{_pct(before['all']['any']['1'])} -> {_pct(after['all']['any']['1'])}",
                                                    f"{_pct(before['all']['any']['4'])} -> {_pct(after['all']['any']['4'])}"]
    evals = [m for m in _lines(os.path.join(run, "metrics.jsonl")) if m["phase"] == "eval"]  # logged during RL
    key = "probe/teacher_forced/{}/prefers_aligned"
    pref = section.split("### Teacher-forced")[1].split("###")[0]
    assert _row(pref, "FB", "6-9")[2:4] == [f"{_pct(evals[0].get(key.format(k)))} -> {_pct(evals[-1].get(key.format(k)))}"
                                            for k in ("evaluation", "inversion")]
    assert os.path.isfile(os.path.join(out, "plots", "strategy_probes.png")) and "plots/strategy_probes.png" in open(
        os.path.join(out, "report.md")).read()
    mtime = os.path.getmtime(os.path.join(run, "analysis.json"))
    assert main(["analyze", run]) == 0 and os.path.getmtime(os.path.join(run, "analysis.json")) == mtime  # done: kept

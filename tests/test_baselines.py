"""baselines: an experiment end to end at micro scale, resuming and redoing stages, the report, the presets."""

import io
import json
import os
import re
import shutil
from collections import defaultdict
from importlib.metadata import entry_points

import pytest
import yaml

pytest.importorskip("torch")

from baselines.cli import main
from baselines.experiments import EXPERIMENTS, plan
from baselines.stages import MANIFEST, EvalStage, RLStage, SFTStage
from ffreason_env import read_jsonl
from trainers import presets
from trainers.models import STUDY_LORA
from trainers.settings import to_dict


@pytest.fixture(scope="module")
def selection_run(tmp_path_factory):
    """``ffreason reproduce selection --preset micro``: 3 SFT arms, 6 RL runs of one step, the report (~25 s)."""
    out = str(tmp_path_factory.mktemp("selection"))
    assert main(["reproduce", "selection", "--preset", "micro", "--out", out]) == 0
    return out


def _stage_log(run_dir):
    return read_jsonl(os.path.join(run_dir, "stages.jsonl"))


def _summaries(run_dir):
    return {s.name: os.path.join(s.out, s.summary_file) for s in plan("selection", "micro", run_dir)}


def test_selection_runs_every_stage_and_writes_table1_beside_the_studys_numbers(selection_run):
    summaries = _summaries(selection_run)
    assert set(summaries) == {f"{s}/{a}" for s in ("sft", "rl-2-5", "rl-6-9", "eval/sft") for a in ("B", "F", "FB")}
    assert all(os.path.isfile(p) for p in summaries.values())
    report = open(os.path.join(selection_run, "report.md")).read()
    table1 = report.split("## Table 1")[1].split("##")[0]
    for arm, published in (("B", "24.5 / 38.9 / 11.9"), ("F", "57.0 / 10.7 / 97.1"), ("FB", "95.7 / 94.1 / 97.1")):
        row = next(line for line in table1.splitlines() if line.startswith(f"| {arm} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert published in cells  # the study's numbers, in their own columns
        for ours in (cells[1], cells[3], cells[5]):  # after SFT, after RL on 2-5, after RL on 6-9
            assert re.fullmatch(r"\d+\.\d / [-\d.]+ / [-\d.]+", ours), row
    assert "study" in table1 and "pass@1" in table1
    for name in ("accuracy_vs_steps", "accuracy_vs_rl_step", "strategy_vs_rl_step"):
        with open(os.path.join(selection_run, "plots", f"{name}.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert f"(plots/{name}.png)" in report


def _evals(stage_dir):
    """A run's eval lines by step, lines of one step merged (a resumed run evaluates its first step again)."""
    by_step = defaultdict(dict)
    for r in read_jsonl(os.path.join(stage_dir, "metrics.jsonl")):
        if r["phase"] == "eval":
            by_step[r["step"]].update(r)
    return by_step


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def _cells(section, *first):
    """The cells of the markdown table row that starts with ``first``."""
    line = next(line for line in section.splitlines() if line.startswith("| " + " | ".join(first) + " |"))
    return [c.strip() for c in line.strip("|").split("|")]


def _triple(m, eval_set):
    return " / ".join(_pct(m.get(f"{eval_set}/{k}")) for k in ("accuracy", "inversion/accuracy", "evaluation/accuracy"))


def _assert_table1_quotes_the_metrics(run_dir, with_study):
    """Table 1's cells are the step-0 (after SFT) and last (after RL) evaluations in the RL runs' metrics.jsonl."""
    report = open(os.path.join(run_dir, "report.md")).read()
    for eval_set, title in (("eval_6-9", "## Table 1"), ("eval_2-5", "## The same on 2-5")):
        section = report.split(title)[1].split("\n## ")[0]
        for arm in ("B", "F", "FB"):
            cells = _cells(section, arm)
            easy, hard = _evals(os.path.join(run_dir, "rl-2-5", arm)), _evals(os.path.join(run_dir, "rl-6-9", arm))
            step = 2 if with_study and eval_set == "eval_6-9" else 1  # a "study" column after each of ours
            assert cells[1] == _triple(easy[0], eval_set)
            assert cells[1 + step] == _triple(easy[max(easy)], eval_set)
            assert cells[1 + 2 * step] == _triple(hard[max(hard)], eval_set)


def _assert_plots_exist(run_dir):
    report = open(os.path.join(run_dir, "report.md")).read()
    plots = re.findall(r"\]\((plots/[\w.]+\.png)\)", report)
    assert plots
    for plot in plots:
        with open(os.path.join(run_dir, plot), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _first_last_tenth(rows):
    steps = sorted({r["step"] for r in rows})
    width = max(1, len(steps) // 10)
    return [[r for r in rows if r["step"] in set(part)] for part in (steps[:width], steps[-width:])]


def test_selection_report_quotes_the_logged_metrics(selection_run):
    _assert_table1_quotes_the_metrics(selection_run, with_study=True)
    section = open(os.path.join(selection_run, "report.md")).read().split("## Strategy selection")[1].split("\n## ")[0]
    for data in ("2-5", "6-9"):
        for arm in ("B", "F", "FB"):
            windows = _first_last_tenth(read_jsonl(os.path.join(selection_run, f"rl-{data}", arm, "completions.jsonl")))
            for cell, kind, aligned in zip(_cells(section, arm, data)[2:], ("evaluation", "inversion"),
                                           ("forward", "backward")):
                shares = []
                for w in windows:
                    of_kind = [r for r in w if r["kind"] == kind]
                    shares.append(_pct(sum(r["strategy"] == aligned for r in of_kind) / len(of_kind))
                                  if of_kind else "-")
                assert cell == " -> ".join(shares), (arm, data, kind)


def test_guessing_table_counts_the_samples_that_show_no_work(selection_run):
    section = open(os.path.join(selection_run, "report.md")).read().split("## Guessing")[1].split("\n## ")[0]
    for data in ("2-5", "6-9"):
        for arm in ("B", "F", "FB"):
            windows = _first_last_tenth(read_jsonl(os.path.join(selection_run, f"rl-{data}", arm, "completions.jsonl")))
            shares = [_pct(sum(not any(re.match(r"(step|try) .*\b(add|sub|mul|div)\b", line)
                                       for line in r["completion"].splitlines()) for r in w) / len(w))
                      for w in windows]
            assert _cells(section, arm, data)[2:] == shares, (arm, data)


@pytest.mark.parametrize("experiment", ["improvement", "composition", "gf13", "robustness"])
def test_experiment_runs_end_to_end_and_its_report_quotes_the_logged_numbers(tmp_path, experiment):
    out = str(tmp_path / experiment)
    assert main(["reproduce", experiment, "--preset", "micro", "--out", out]) == 0
    assert all(s.done() for s in plan(experiment, "micro", out))
    _assert_plots_exist(out)
    report = open(os.path.join(out, "report.md")).read()
    if experiment == "gf13":
        _assert_table1_quotes_the_metrics(out, with_study=False)
        assert "GF(13)" in report
    elif experiment == "robustness":
        section = report.split("per hyper-parameter variant")[1].split("\n## ")[0]
        for variant, data in (("default", "6-9"), ("beta 0.1", "6-9-beta0.1"), ("group 16", "6-9-group16"),
                              ("lr x5", "6-9-lr5x")):
            cells = _cells(section, variant)
            for arm, cell in zip(("B", "F", "FB"), cells[1:4]):
                evals = _evals(os.path.join(out, f"rl-{data}", arm))
                assert cell == _pct(evals[max(evals)]["eval_6-9/accuracy"]), (variant, arm)
        with open(os.path.join(out, "rl-6-9-group16", "FB", "config.yaml")) as f:
            config = f.read()
        assert "\nnum_generations: 16\n" in config and "\nbeta: 0.0\n" in config
        with open(os.path.join(out, "rl-6-9-beta0.1", "FB", "config.yaml")) as f:
            assert "\nbeta: 0.1\n" in f.read()
    elif experiment == "improvement":
        section = report.split("## Greedy accuracy (%) per number of steps")[1].split("\n## ")[0]
        header = _cells(section, "arm")
        assert max(map(int, header[2:])) >= 10  # micro's few problems per set hold some step counts of 2..15
        for arm in ("B", "F", "FB"):
            hard = _evals(os.path.join(out, "rl-6-15", arm))
            budget = yaml.safe_load(open(os.path.join(out, "rl-6-15", arm, "config.yaml")))["max_completion_length"]
            sft = {**hard[0], **_evals(os.path.join(out, "rl-2-5", arm))[0]}  # 2-9 steps as RL on 2-5 saw them
            for data in ("2-5", "6-9", "6-15"):
                evals = _evals(os.path.join(out, f"rl-{data}", arm))
                after = dict(evals[max(evals)])
                if data != "6-15":  # 10-15 steps from the evaluation of the trained model, under 6-15's budget
                    sets = json.load(open(os.path.join(out, f"eval/rl-{data}", arm, "eval_summary.json")))["sets"]
                    assert list(sets) == ["eval_10-15"] and sets["eval_10-15"]["max_new_tokens"] == budget
                    after.update({f"eval_10-15/steps/{k}/accuracy": b["accuracy"]
                                  for k, b in sets["eval_10-15"]["greedy"]["per_steps"].items()})
                for label, m in (("after SFT", sft), (f"after RL on {data}", after)):
                    cells = _cells(section, arm, label)
                    for k, cell in zip(header[2:], cells[2:]):
                        found = [v for key, v in m.items() if re.fullmatch(rf"eval_[\d-]+/steps/{k}/accuracy", key)]
                        assert cell == (_pct(found[0]) if found else "-"), (arm, label, k)
    else:
        section = report.split("per number of parts")[1].split("\n## ")[0]
        for sft in ("with-2part", "without-2part"):
            for label, stage in (("after SFT", f"eval/sft/{sft}"), ("after RL on 3-5 parts", f"eval/rl-parts-3-5/{sft}")):
                sets = json.load(open(os.path.join(out, stage, "eval_summary.json")))["sets"]
                cells = _cells(section, sft, label)
                assert cells[2:] == [_pct(sets[f"parts-{k}"]["greedy"]["accuracy"]) for k in range(2, 7)]


def test_strategy_selection_table_reads_the_first_and_last_tenth_of_the_samples(selection_run, tmp_path):
    copy = str(tmp_path / "run")
    shutil.copytree(selection_run, copy, ignore=shutil.ignore_patterns("model", "init", "checkpoints", "tb"))
    rows = [(1, "evaluation", "forward"), (1, "evaluation", "backward"), (1, "inversion", "forward"),
            (1, "inversion", "unknown"), *[(s, "evaluation", "backward") for s in range(2, 10)],
            (10, "evaluation", "forward"), (10, "inversion", "backward"), (10, "inversion", "backward")]
    with open(os.path.join(copy, "rl-6-9", "FB", "completions.jsonl"), "w") as f:
        for step, kind, strategy in rows:
            f.write(json.dumps({"step": step, "kind": kind, "strategy": strategy, "completion": "answer e1"}) + "\n")
    assert main(["report", copy]) == 0
    section = open(os.path.join(copy, "report.md")).read().split("## Strategy selection")[1]
    assert _cells(section, "FB", "6-9") == ["FB", "6-9", "50.0 -> 100.0", "0.0 -> 100.0"]


def test_rl_on_2_5_and_6_9_start_from_the_same_sft_model(selection_run):
    def first_eval(stage):
        return next(r for r in read_jsonl(os.path.join(selection_run, stage, "metrics.jsonl")) if r["phase"] == "eval")

    for arm in ("B", "F", "FB"):
        easy, hard = first_eval(f"rl-2-5/{arm}"), first_eval(f"rl-6-9/{arm}")
        assert easy["step"] == hard["step"] == 0
        assert {k: v for k, v in easy.items() if k.startswith("eval_")} == \
               {k: v for k, v in hard.items() if k.startswith("eval_")}
        for stage in (f"rl-2-5/{arm}", f"rl-6-9/{arm}"):
            with open(os.path.join(selection_run, stage, "config.yaml")) as f:
                assert f"init: {os.path.join(selection_run, 'sft', arm)}\n" in f.read()


def test_rerun_skips_finished_stages(selection_run, capsys):
    summaries = _summaries(selection_run)
    before = {name: os.path.getmtime(p) for name, p in summaries.items()}
    n_lines = len(_stage_log(selection_run))
    assert main(["reproduce", "selection", "--preset", "micro", "--out", selection_run]) == 0
    new = _stage_log(selection_run)[n_lines:]
    assert [r["stage"] for r in new] == list(summaries) and {r["status"] for r in new} == {"skipped"}
    assert {name: os.path.getmtime(p) for name, p in summaries.items()} == before
    out = capsys.readouterr().out
    assert "| FB |" in out and f"report: {os.path.join(selection_run, 'report.md')}" in out


def test_report_is_rebuilt_from_the_logged_metrics_alone(selection_run, tmp_path, capsys):
    copy = str(tmp_path / "run")
    shutil.copytree(selection_run, copy, ignore=shutil.ignore_patterns("model", "init", "checkpoints", "tb", "plots",
                                                                       "report.md"))
    assert main(["report", copy]) == 0
    with open(os.path.join(selection_run, "report.md")) as f:
        original = f.read().replace(selection_run, copy)
    with open(os.path.join(copy, "report.md")) as f:
        assert f.read() == original
    plots = sorted(os.listdir(os.path.join(copy, "plots")))
    assert plots == sorted(os.listdir(os.path.join(selection_run, "plots"))) and "strategy_probes.png" in plots
    assert "| B |" in capsys.readouterr().out


@pytest.fixture
def fake_stages(monkeypatch):
    """Stages that only write their summary file and record that they ran (the runner's logic, in milliseconds)."""
    ran = []

    def run(self):
        ran.append((self.name, getattr(getattr(self, "config", None), "resume", False)))
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, self.summary_file), "w") as f:
            f.write("{}")

    for cls in (SFTStage, RLStage, EvalStage):
        monkeypatch.setattr(cls, "run", run)
    return ran


def test_interrupted_stages_restart_or_resume_and_force_redoes_all(tmp_path, fake_stages):
    out = str(tmp_path / "amp")
    args = ["reproduce", "amplification", "--preset", "micro", "--out", out]
    names = [s.name for s in plan("amplification", "micro", out)]
    assert main(args) == 0 and [n for n, _ in fake_stages] == names
    # interrupted: an RL run with a checkpoint resumes from it; one without restarts in an emptied directory
    os.remove(os.path.join(out, "rl-eval75/FB/rl_summary.json"))
    checkpoint = os.path.join(out, "rl-eval75/FB/checkpoints/checkpoint-1")
    os.makedirs(checkpoint)
    with open(os.path.join(checkpoint, "trainer_state.json"), "w") as f:  # complete: the trainers write it last
        f.write('{"global_step": 1}')
    os.remove(os.path.join(out, "rl-eval90/FB/rl_summary.json"))
    with open(os.path.join(out, "rl-eval90/FB/metrics.jsonl"), "w") as f:
        f.write("{}\n")
    fake_stages.clear()
    assert main(args) == 0
    assert fake_stages == [("rl-eval75/FB", True), ("rl-eval90/FB", False)]
    assert not os.path.exists(os.path.join(out, "rl-eval90/FB/metrics.jsonl"))
    starts = {r["stage"]: r.get("start") for r in _stage_log(out)[-len(names):] if r["status"] == "ran"}
    assert starts == {"rl-eval75/FB": "resumed", "rl-eval90/FB": "restarted"}
    fake_stages.clear()
    assert main(args + ["--force"]) == 0
    assert fake_stages == [(n, False) for n in names]
    assert not os.path.exists(os.path.join(out, "rl-eval75/FB/checkpoints"))


def test_study_runs_every_experiment_once_sharing_common_stages(tmp_path, fake_stages):
    from baselines.experiments import experiment_stages

    out = str(tmp_path / "study")
    by_experiment = experiment_stages("study", "micro", out)
    assert list(by_experiment) == list(EXPERIMENTS)
    names = [s.name for s in plan("study", "micro", out)]
    assert len(names) == len(set(names))
    for name in ("improvement", "amplification", "robustness"):  # selection's arms serve them
        sft = {s.arm: s for s in by_experiment[name] if isinstance(s, SFTStage)}
        assert {s.name for s in sft.values()} <= {f"selection/sft/{a}" for a in ("B", "F", "FB")}
        for stage in [s for s in by_experiment[name] if isinstance(s, RLStage)]:
            assert stage.config.init == os.path.join(out, "selection", "sft", stage.arm)
    for data in ("2-5", "6-9"):  # improvement's easier RL runs are selection's
        assert {s.name for s in by_experiment["improvement"] if isinstance(s, RLStage) and s.data == data} == {
            f"selection/rl-{data}/{a}" for a in ("B", "F", "FB")}
    amplification = {s.data: s.name for s in by_experiment["amplification"] if isinstance(s, RLStage)}
    assert amplification == {"eval50": "selection/rl-2-5/FB", "eval75": "amplification/rl-eval75/FB",
                             "eval90": "amplification/rl-eval90/FB"}  # 50/50 is the default mix: RL on 2-5
    robust = {s.name for s in by_experiment["robustness"] if isinstance(s, RLStage) and s.data == "6-9"}
    assert robust == {f"selection/rl-6-9/{a}" for a in ("B", "F", "FB")}  # its default is selection's own run
    without = next(s for s in by_experiment["composition"] if isinstance(s, SFTStage) and s.arm == "without-2part")
    assert without.name == "selection/sft/FB"  # the same SFT data and seed: the same model, labelled as composition's
    assert {s.name for s in by_experiment["gf13"] if isinstance(s, SFTStage)} == {f"gf13/sft/{a}" for a in ("B", "F", "FB")}
    assert main(["reproduce", "study", "--preset", "micro", "--out", out]) == 0
    assert sorted(name for name, _ in fake_stages) == sorted(names)  # every stage once
    report = open(os.path.join(out, "report.md")).read()
    data = json.load(open(os.path.join(out, "report.json")))
    for name, experiment in EXPERIMENTS.items():
        assert f"## [{name}]({name}/report.md)" in report and os.path.isfile(os.path.join(out, name, "report.md"))
        assert [c["claim"] for c in data["claims"][name]] == [c.text for c in experiment.claims]
        assert all(c["verdicts"] == ["inconclusive"] for c in data["claims"][name])  # the fakes log no metrics
        assert f"Regenerate with `ffreason report {out}`" in open(os.path.join(out, name, "report.md")).read()
    # a replica whose selection stages have all run (and nothing else of it) joins selection's report alone; a
    # replica begun only does not
    for stage in plan("study", "micro", out, replicas=[1, 2]):
        if stage.name.startswith("seed-1/selection/") or stage.name == "seed-2/selection/sft/B":
            stage.run()
    assert main(["report", out]) == 0
    data = json.load(open(os.path.join(out, "report.json")))
    assert data["seeds"] == {name: [0, 1] if name == "selection" else [0] for name in EXPERIMENTS}
    assert {name: {len(c["verdicts"]) for c in claims} for name, claims in data["claims"].items()} == {
        name: {2 if name == "selection" else 1} for name in EXPERIMENTS}
    assert "seeds selection 0, 1; improvement 0;" in open(os.path.join(out, "report.md")).read()
    assert json.load(open(os.path.join(out, "selection", "report.json")))["seeds"] == [0, 1]
    shutil.rmtree(os.path.join(out, "seed-1"))
    shutil.rmtree(os.path.join(out, "seed-2"))
    fake_stages.clear()
    assert main(["reproduce", "study", "--preset", "micro", "--out", out, "--seeds", "2"]) == 0
    assert fake_stages and all(name.startswith("seed-1/") for name, _ in fake_stages)


def test_jobs_run_ready_stages_at_once_and_dependents_after_their_inputs(tmp_path):
    from baselines.runner import _run_concurrently
    from stage_fakes import SleepStage

    stages = [SleepStage("a", str(tmp_path / "a"), 3), SleepStage("b", str(tmp_path / "b"), 0.5, ["a"]),
              SleepStage("c", str(tmp_path / "c"), 3), SleepStage("d", str(tmp_path / "d"), 0.5, ["c", "b"])]
    lines = []
    _run_concurrently(str(tmp_path), stages, False, 2, {s.name: s.name for s in stages}, lines.append)
    ran = {s.name: json.load(open(os.path.join(s.out, s.summary_file))) for s in stages}
    assert ran["a"]["start"] < ran["c"]["end"] and ran["c"]["start"] < ran["a"]["end"]  # the two ready ones overlap
    assert ran["b"]["start"] >= ran["a"]["end"] and ran["d"]["start"] >= max(ran["b"]["end"], ran["c"]["end"])
    assert len({r["pid"] for r in ran.values()}) == 4  # a fresh process each
    assert open(tmp_path / "b" / "stage.log").read().startswith("b in process")
    assert sorted(r["stage"] for r in _stage_log(str(tmp_path)) if r["status"] == "ran") == ["a", "b", "c", "d"]


def test_each_running_stage_has_a_progress_bar_at_its_logged_step(tmp_path):
    from baselines.runner import StageBars, _run_concurrently
    from stage_fakes import SleepStage

    screen = io.StringIO()
    stages = [SleepStage("a", str(tmp_path / "a"), 1.5, steps=3), SleepStage("b", str(tmp_path / "b"), 0.2)]
    bars = StageBars(file=screen, disable=False, mininterval=0, ncols=80)
    _run_concurrently(str(tmp_path), stages, False, 2, {"a": "[1/2] a", "b": "[2/2] b"}, print, bars=bars)
    shown = screen.getvalue()
    assert "[1/2] a: 100%" in shown and "3/3" in shown  # the bar followed a's metrics.jsonl to its last step
    assert "[2/2] b: " in shown  # a stage that logs no steps counts time only
    assert not bars.bars  # all closed


def test_a_failing_stage_stops_the_run_before_the_stages_that_need_it(tmp_path):
    from baselines.runner import _run_concurrently
    from stage_fakes import SleepStage

    stages = [SleepStage("a", str(tmp_path / "a"), 0.1, fail=True), SleepStage("b", str(tmp_path / "b"), 0.1, ["a"])]
    with pytest.raises(RuntimeError, match="a failed on purpose"):
        _run_concurrently(str(tmp_path), stages, False, 2, {"a": "a", "b": "b"}, print)
    assert not os.path.exists(tmp_path / "b")
    assert "a failed on purpose" in open(tmp_path / "a" / "stage.log").read()


def test_reproduce_with_jobs_runs_real_stages_in_worker_processes(tmp_path):
    out = str(tmp_path / "amp")
    assert main(["reproduce", "amplification", "--preset", "micro", "--out", out, "--jobs", "2"]) == 0
    stages = plan("amplification", "micro", out)
    assert all(s.done() and os.path.getsize(os.path.join(s.out, "stage.log")) > 0 for s in stages)
    assert sorted(r["stage"] for r in _stage_log(out) if r["status"] == "ran") == sorted(s.name for s in stages)
    report = open(os.path.join(out, "report.md")).read()
    for share in (50, 75, 90):  # forward fraction of the run's own samples, first and last tenth of its steps
        window = _first_last_tenth(read_jsonl(os.path.join(out, f"rl-eval{share}/FB/completions.jsonl")))
        forward = [sum(r["strategy"] == "forward" for r in w) / len(w) for w in window]
        assert _cells(report, f"{share} / {100 - share}")[1] == f"{_pct(forward[0])} -> {_pct(forward[1])}"


@pytest.mark.parametrize("experiment", ["improvement", "composition"])  # the others' reports run in tests above
def test_report_of_an_unfinished_run_marks_missing_results(tmp_path, experiment):
    out = tmp_path / experiment
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"experiment": experiment, "preset": "micro", "algo": "grpo"}))
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert report.count("| not run |") == len(plan(experiment, "micro", str(out)))
    assert "| - |" in report or "| - / " in report or "-> -" in report


def test_qwen_preset_holds_the_studys_hyperparameters_and_builds_every_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # plan() validates configs; nothing may be fetched
    assert (STUDY_LORA.r, STUDY_LORA.alpha, STUDY_LORA.dropout) == (64, 128, 0.05)
    for experiment in EXPERIMENTS:
        for stage in plan(experiment, "qwen1.5b", str(tmp_path)):
            if isinstance(stage, SFTStage):
                c = stage.config
                assert (c.model_name_or_path, c.lora, c.num_train_epochs, c.learning_rate,
                        c.per_device_train_batch_size, c.examples, c.problem.min_steps, c.problem.max_steps) == \
                       ("Qwen/Qwen2.5-1.5B-Instruct", True, 20, 2e-4, 16, 2048, 2, 5)
            elif isinstance(stage, RLStage) and stage.data.startswith("6-9-"):  # robustness's own variants
                c = stage.config
                changed = {"6-9-beta0.1": (0.1, 8, 32, 1e-5), "6-9-group16": (0.05, 16, 64, 1e-5),
                           "6-9-lr5x": (0.05, 8, 32, 5e-5)}[stage.data]  # the study's variants exactly
                assert (c.beta, c.num_generations, c.batch(1), c.learning_rate) == pytest.approx(changed), stage.name
            elif isinstance(stage, RLStage):
                c = stage.config
                assert c.init == os.path.join(str(tmp_path), stage.init) and c.algo == "grpo"
                assert (c.lora, c.batch(1), c.num_generations, c.beta, c.temperature,
                        c.learning_rate, c.max_steps, c.save_steps, c.use_vllm, c.vllm_mode, c.prompts) == \
                       (True, 32, 8, 0.05, 0.7, 1e-5, 500, 25, True, "colocate", 1024)
                assert (c.per_device_train_batch_size, c.gradient_accumulation_steps, c.budget_ratio) == (8, 4, 1.15)
    assert {s.config.problem.p for s in plan("gf13", "qwen1.5b", str(tmp_path)) if isinstance(s, RLStage)} == {13}


def test_tiny_arms_train_coupled_models_from_scratch(tmp_path):
    stages = plan("selection", "tiny", str(tmp_path))
    sft = [s for s in stages if isinstance(s, SFTStage)]
    assert [s.name for s in sft] == ["sft/B", "sft/F", "sft/FB"]
    for stage in sft:
        c = stage.config
        # built here with coupled positions, 600 steps of 2-5-step problems with labels up to 9; no evaluation of
        # its own (the RL runs' step 0 evaluates the same model)
        assert (c.model_name_or_path, c.position_coupling) == (None, True)
        assert (c.problem.min_steps, c.problem.max_steps, c.problem.max_label_offset) == (2, 5, 4)
        assert (c.optimizer_steps, c.eval_n, c.data_seed) == (600, 0, 2)
        assert stage.total_steps() == 600
    rl = [s.config for s in stages if isinstance(s, RLStage)]
    assert {(c.per_device_train_batch_size, c.num_generations, c.max_steps, c.max_completion_length) for c in rl} \
        == {(64, 8, 100, 96)}  # 8 problems x 8 samples per step; the budget a search of 6-9 steps cannot meet
    assert {s.total_steps() for s in stages if isinstance(s, RLStage)} == {100}


@pytest.mark.parametrize("preset", presets.names())
@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_a_reproduction_stage_is_the_run_the_commands_make_with_the_same_preset(tmp_path, monkeypatch, preset, algo):
    """``ffreason sft --preset P`` and ``ffreason rl --preset P`` build exactly the configs of the reproduction's
    stages, given the stage's own settings (arm, output, init, RL data)."""
    from trainers.cli import rl_config, sft_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stages = [s for s in plan("selection", preset, str(tmp_path), algo) if not isinstance(s, EvalStage)]
    for stage in stages:
        c = stage.config
        if isinstance(stage, SFTStage):
            made = sft_config(["--preset", preset, "--arm", c.arm, "--out", c.out])
        else:
            made = rl_config(["--preset", preset, "--algo", algo, "--init", c.init, "--out", c.out,
                              "--problem.min-steps", str(c.problem.min_steps),
                              "--problem.max-steps", str(c.problem.max_steps),
                              "--eval-n", str(presets.load(preset)["reproduce"].get("eval_n", c.eval_n))])
        assert type(made) is type(c) and to_dict(made) == to_dict(c), stage.name
    assert {type(s.config).algo for s in stages if isinstance(s, RLStage)} == {algo}


def test_unbudgeted_evaluation_of_an_sft_model_uses_the_rl_runs_validation_sets(selection_run):
    from trainers.envbridge import make_env
    from trainers.evaluation import eval_set_name, validation_set

    stages = plan("selection", "micro", selection_run)
    for stage in [s for s in stages if isinstance(s, EvalStage)]:
        for run in [s for s in stages if isinstance(s, RLStage) and s.init == stage.model.name]:
            base = make_env(run.config).unwrapped.config.replace(max_label_offset=0)  # as the RL run builds them
            for lo, hi in run.config.eval_ranges:
                name = eval_set_name(lo, hi)
                assert validation_set(stage.sets[name], stage.n) == \
                    validation_set(base.replace(min_steps=lo, max_steps=hi), run.config.eval_n)
        summary = json.load(open(os.path.join(stage.out, "eval_summary.json")))
        assert set(summary["sets"]) == {"eval_2-5", "eval_6-9"} and summary["model"] == stage.model.name


def test_algo_ppo_reaches_every_rl_stage_and_has_no_vllm_knob(tmp_path):
    stages = [s for s in plan("selection", "qwen1.5b", str(tmp_path), algo="ppo") if isinstance(s, RLStage)]
    assert {s.config.algo for s in stages} == {"ppo"}
    assert not any(hasattr(s.config, "use_vllm") for s in stages)  # PPO generates with transformers only


def test_bad_names_and_a_run_dir_of_another_experiment_are_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "selektion", "--out", str(tmp_path / "x")])
    assert "selektion" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "selection", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert "huge" in capsys.readouterr().err
    with pytest.raises(ValueError, match="experiment: 'selektion' is not one of selection, improvement"):
        plan("selektion", "micro", str(tmp_path))
    with pytest.raises(ValueError, match="preset: 'huge' is not one of micro, tiny, qwen1.5b"):
        plan("selection", "huge", str(tmp_path))
    (tmp_path / MANIFEST).write_text(json.dumps({"experiment": "gf13", "preset": "tiny", "algo": "grpo"}))
    with pytest.raises(SystemExit):
        main(["reproduce", "selection", "--preset", "micro", "--out", str(tmp_path)])
    assert "holds gf13 --preset tiny --algo grpo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path / "empty")])
    assert "holds no experiment.json" in capsys.readouterr().err


def test_console_script_has_the_trainers_commands_and_reproduce(capsys):
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "ffreason"]
    assert script.value == "baselines.cli:main"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("sft", "rl", "eval", "reproduce", "report"):
        assert f"  {command} " in out
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS) and "--force" in out and "qwen1.5b" in out
    assert presets.names() == ["micro", "tiny", "qwen1.5b"]


def test_an_experiment_is_registered_once_with_its_stages_section_and_claims(tmp_path):
    from baselines import report

    for name, e in EXPERIMENTS.items():
        assert e.name == name and e.claims and callable(e.stages) and e.section.__module__ == report.__name__
    assert EXPERIMENTS["selection"].published is not None and EXPERIMENTS["gf13"].published is None


def test_an_edited_copy_of_a_preset_is_a_preset_for_every_command(tmp_path):
    import yaml

    from trainers.cli import sft_config

    data = yaml.safe_load(open(os.path.join(presets.PRESET_DIR, "tiny.yaml")))
    data["sft"]["examples"] = 9600
    data["rl"]["max_steps"] = 50
    mine = tmp_path / "my_tiny.yaml"
    mine.write_text(yaml.safe_dump(data))
    stages = plan("selection", str(mine), str(tmp_path / "run"))
    assert {s.config.optimizer_steps for s in stages if isinstance(s, SFTStage)} == {300}
    assert {s.config.max_steps for s in stages if isinstance(s, RLStage)} == {50}
    made = sft_config(["--preset", str(mine), "--arm", "B", "--out", stages[0].config.out])
    assert to_dict(made) == to_dict(stages[0].config)
    with pytest.raises(FileNotFoundError, match="preset: no such file"):
        presets.load(str(tmp_path / "nope.yaml"))

"""The peers' interfaces: the TRL reward function (and the docs' example run as written)."""

import os
import re
import subprocess
import sys

import pytest

import ffreason_env as fe
from ffreason_env.trl import completion_text, ffreason_reward, make_reward_function

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(n=4):
    return list(fe.rl_records(fe.ProblemConfig(), seed=2, size=n))


def test_the_reward_scores_chat_and_plain_completions_one_per_completion():
    rows = _rows()
    problems = [fe.Problem.from_json(r["problem"]) for r in rows]
    right = [fe.write_trace(p, fe.ALIGNED[p.kind]) for p in problems]
    completions = [[{"role": "assistant", "content": right[0]}], right[1], "answer e0 is my guess", right[3] + "."]
    rewards = ffreason_reward([r["prompt"] for r in rows], completions, problem=[r["problem"] for r in rows])
    verdicts = [fe.verify(p, completion_text(c)) for p, c in zip(problems, completions)]
    assert rewards == [1.0 if v.correct else 0.0 for v in verdicts] and rewards[:2] == [1.0, 1.0]
    assert rewards[3] == 0.0  # the strict grammar: a trailing period is wrong (docs/environments.md)
    with pytest.raises(ValueError, match="'problem' column"):
        ffreason_reward(["p"], ["answer e1"], problem=[])
    with pytest.raises(TypeError, match="completion"):
        completion_text(3)


def test_the_lenient_reward_reads_what_other_models_write_around_a_trace():
    rows = _rows(2)
    problems = [fe.Problem.from_json(r["problem"]) for r in rows]
    wrapped = ["```\n" + fe.write_trace(p, fe.ALIGNED[p.kind]).replace("answer ", "Answer: ") + "\n```" for p in problems]
    args = ([r["prompt"] for r in rows], wrapped)
    assert ffreason_reward(*args, problem=[r["problem"] for r in rows]) == [0.0, 0.0]
    assert make_reward_function(answer_mode="lenient")(*args, problem=[r["problem"] for r in rows]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="answer_mode"):
        make_reward_function(answer_mode="loose")
    styled = next(fe.rl_records(fe.ProblemConfig(), seed=2, size=1, style="instructed"))
    assert styled["problem"] == rows[0]["problem"] and styled["prompt"][0]["content"].endswith(
        rows[0]["prompt"][0]["content"])


def test_the_reward_logs_strategy_and_correctness_through_trls_hooks():
    rows = _rows(2)
    problems = [fe.Problem.from_json(r["problem"]) for r in rows]
    completions = [fe.write_trace(problems[0], "forward"), fe.write_trace(problems[1], "backward")]
    extra, metrics = {}, {}
    shaped = make_reward_function(format_penalty=0.5)
    rewards = shaped([r["prompt"] for r in rows], completions + [], problem=[r["problem"] for r in rows],
                     trainer_state=None, log_extra=extra.__setitem__, log_metric=metrics.__setitem__, index=[0, 1])
    verdicts = [fe.verify(p, c) for p, c in zip(problems, completions)]
    assert extra == {"strategy": [v.strategy for v in verdicts], "correct": [v.correct for v in verdicts]}
    assert metrics["ffreason/accuracy"] == sum(v.correct for v in verdicts) / 2
    assert metrics["ffreason/aligned"] == sum(v.aligned for v in verdicts) / 2
    kinds = {p.kind for p in problems}
    assert {k.split("/")[1] for k in metrics if "/strategy/" in k} == kinds
    assert rewards == [1.0, 1.0] and shaped(["p"], ["free text"], problem=[rows[0]["problem"]]) == [-0.5]


def test_the_reward_module_imports_no_torch():
    code = "import sys, ffreason_env.trl; print(any(m in sys.modules for m in ('torch', 'transformers', 'trl')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout.strip() == "False"


def test_the_docs_trl_example_runs_as_written(tmp_path, monkeypatch):
    text = open(os.path.join(ROOT, "docs", "ecosystem.md")).read()
    code = re.search(r"A complete GRPO run.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "docs/ecosystem.md", "exec"), scope)
    logged = [h for h in scope["trainer"].state.log_history if "ffreason/accuracy" in h]
    assert len(logged) == 2 and all(0.0 <= h["ffreason/aligned"] <= 1.0 for h in logged)
    assert scope["trainer"].state.global_step == 2

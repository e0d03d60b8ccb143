"""verl export and compute_score: rows read back from parquet score exactly as env.step does."""

import pytest

import ffreason_env as fe
from ffreason_env.verl import SCORE_KEYS, compute_score, verl_records, write_parquet

pq = pytest.importorskip("pyarrow.parquet")


def test_exported_rows_score_as_env_step(tmp_path):
    config = fe.ProblemConfig(min_steps=2, max_steps=6)
    path = tmp_path / "train.parquet"
    assert write_parquet(verl_records(config, seed=3, size=40), path) == 40
    rows = pq.read_table(path).to_pylist()
    env = fe.MixedEnv(min_steps=2, max_steps=6, problem_seed=3)
    for i, row in enumerate(rows):
        prompt, info = env.reset(options={"index": i})
        assert row["prompt"] == [{"role": "user", "content": prompt}]
        problem = fe.Problem.from_json(row["extra_info"]["problem"])
        wrong = problem.symbol((problem.answer + 1) % problem.p)
        for response in (fe.write_trace(problem, "forward"), fe.write_trace(problem, "backward"),
                         f"answer {wrong}", "", "answer"):
            # verl's call: keyword arguments, ground truth from reward_model
            score = compute_score(data_source=row["data_source"], solution_str=response,
                                  ground_truth=row["reward_model"]["ground_truth"], extra_info=row["extra_info"])
            env.reset(options={"problem": problem})
            _, reward, _, _, info = env.step(response)
            verdict = fe.verify(problem, response)
            assert tuple(score) == SCORE_KEYS and score["score"] == reward and score["ffreason"] == 1.0
            assert score["acc"] == float(verdict.correct) and score["aligned"] == float(verdict.aligned)
            assert score["pred"] == ("" if verdict.answer is None else problem.symbol(verdict.answer))
            assert [k for k in SCORE_KEYS if k.startswith("strategy_") and score[k] == 1.0] == [
                f"strategy_{verdict.strategy}"]
            assert score["process"] == fe.process_score(verdict) and score["well_formed"] == float(verdict.well_formed)
    shaped = compute_score(rows[0]["data_source"], "answer e0 e1", rows[0]["reward_model"]["ground_truth"],
                           rows[0]["extra_info"], format_penalty=0.5)
    assert shaped["score"] == -0.5 and shaped["pred"] == ""  # wrong and outside the grammar


def test_a_foreign_row_is_handed_to_verls_default_score_under_the_same_keys(monkeypatch):
    import sys
    import types

    row = next(verl_records(fe.ProblemConfig(), size=1))
    calls = []

    def default_compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):
        calls.append((data_source, solution_str, ground_truth, extra_info, kw))
        return {"score": 0.5, "acc": True, "pred": "42"} if data_source == "math_dapo" else 1.0

    fake = types.ModuleType("verl.utils.reward_score")
    fake.default_compute_score = default_compute_score
    for name in ("verl", "verl.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "verl.utils.reward_score", fake)
    ours = compute_score(row["data_source"], "answer e1", row["reward_model"]["ground_truth"], row["extra_info"])
    dapo = compute_score("math_dapo", "42", "42", {"index": 3})
    gsm = compute_score("openai/gsm8k", "#### 7", "7", None)
    assert tuple(ours) == tuple(dapo) == tuple(gsm) == SCORE_KEYS  # one list per key over a mixed batch
    assert (dapo["score"], dapo["acc"], dapo["pred"], dapo["ffreason"]) == (0.5, True, "42", 0.0)
    assert (gsm["score"], gsm["acc"], gsm["pred"], gsm["strategy_unknown"]) == (1.0, 1.0, "", 0.0)
    assert calls[0] == ("math_dapo", "42", "42", {"index": 3}, {})


def test_compute_score_refuses_rows_it_cannot_check(monkeypatch):
    import sys

    row = next(verl_records(fe.ProblemConfig(), size=1))
    monkeypatch.setitem(sys.modules, "verl.utils.reward_score", None)  # as where verl is not installed
    with pytest.raises(ValueError, match="verl is not installed"):
        compute_score("gsm8k", "answer e1", row["reward_model"]["ground_truth"], row["extra_info"])
    with pytest.raises(ValueError, match="extra_info"):
        compute_score(row["data_source"], "answer e1", row["reward_model"]["ground_truth"], None)
    with pytest.raises(ValueError, match="ground_truth"):
        compute_score(row["data_source"], "answer e1", "e99", row["extra_info"])

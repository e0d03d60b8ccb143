"""verl export and compute_score: rows read back from parquet score exactly as env.step does."""

import pytest

import ffreason_env as fe
from ffreason_env.verl import compute_score, verl_records, write_parquet

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
            assert score == env.step(response)[1]
    shaped = compute_score(rows[0]["data_source"], "answer e0 e1", rows[0]["reward_model"]["ground_truth"],
                           rows[0]["extra_info"], format_penalty=0.5)
    assert shaped == -0.5  # wrong and outside the grammar


def test_compute_score_refuses_rows_it_cannot_check():
    row = next(verl_records(fe.ProblemConfig(), size=1))
    with pytest.raises(ValueError, match="data_source"):
        compute_score("gsm8k", "answer e1", row["reward_model"]["ground_truth"], row["extra_info"])
    with pytest.raises(ValueError, match="extra_info"):
        compute_score(row["data_source"], "answer e1", row["reward_model"]["ground_truth"], None)
    with pytest.raises(ValueError, match="ground_truth"):
        compute_score(row["data_source"], "answer e1", "e99", row["extra_info"])

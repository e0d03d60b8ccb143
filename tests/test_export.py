import json
import os
from collections import Counter

import pytest

from ffreason_env import (ARMS, Problem, ProblemConfig, read_jsonl, render_prompt, rl_records, sft_records, to_dataset,
                          verify, write_jsonl)

COLUMNS = {"prompt", "completion", "answer", "kind", "steps", "strategy", "part_strategies", "seed", "index", "problem"}


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_sft_arms_use_their_strategies(arm):
    config = ProblemConfig(min_steps=2, max_steps=5)
    records = list(sft_records(config, arm, seed=1, size=400))
    assert len(records) == 400 and all(set(r) == COLUMNS for r in records)
    counts = Counter()
    for r in records:
        problem = Problem.from_json(r["problem"])
        v = verify(problem, r["completion"])
        assert v.correct and v.well_formed and v.strategy == r["strategy"]
        assert r["answer"] == problem.symbol(problem.answer) and r["kind"] == problem.kind
        assert r["steps"] == problem.num_steps and 2 <= r["steps"] <= 5
        counts[(r["kind"], r["strategy"])] += 1
    if arm == "F":
        assert {s for _, s in counts} == {"forward"}
    elif arm == "B":
        assert {s for _, s in counts} == {"backward"}
    else:  # a fair coin per example: both strategies on both kinds
        for kind in ("evaluation", "inversion"):
            share = counts[(kind, "forward")] / (counts[(kind, "forward")] + counts[(kind, "backward")])
            assert 0.35 < share < 0.65


def test_arms_share_problems_and_are_deterministic():
    config = ProblemConfig()
    f = list(sft_records(config, "F", seed=2, size=50))
    b = list(sft_records(config, "B", seed=2, size=50))
    assert [r["prompt"] for r in f] == [r["prompt"] for r in b]
    assert list(sft_records(config, "FB", seed=2, size=50)) == list(sft_records(config, "FB", seed=2, size=50))
    with pytest.raises(ValueError, match="^arm: "):
        next(sft_records(config, "BF"))


def test_composition_fb_draws_a_coin_per_part():
    config = ProblemConfig(problem_types=["composition"], min_steps=1, max_steps=2, min_parts=3, max_parts=3)
    records = list(sft_records(config, "FB", size=60))
    assert any(r["strategy"] == "mixed" for r in records)
    for r in records:
        v = verify(Problem.from_json(r["problem"]), r["completion"])
        assert v.correct and list(v.part_strategies) == r["part_strategies"]


def test_rl_records_and_jsonl_round_trip(tmp_path):
    config = ProblemConfig(min_steps=6, max_steps=9)
    records = list(rl_records(config, seed=3, size=30))
    assert set(records[0]) == {"prompt", "answer", "kind", "steps", "seed", "index", "problem"}
    assert records[0]["prompt"] == [{"role": "user", "content": render_prompt(Problem.from_json(records[0]["problem"]))}]
    assert next(rl_records(config, seed=3, size=1, chat=False))["prompt"] == records[0]["prompt"][0]["content"]
    path = tmp_path / "sub" / "rl.jsonl"
    assert write_jsonl(records, path) == 30
    assert read_jsonl(path) == json.loads(json.dumps(records))
    assert os.listdir(tmp_path / "sub") == ["rl.jsonl"]  # no temporary file left behind


def test_hf_dataset_columns():
    ds = to_dataset(sft_records(ProblemConfig(), "FB", size=20))
    assert len(ds) == 20 and set(ds.column_names) == COLUMNS
    assert ds[3]["completion"].splitlines()[-1].startswith("answer ")

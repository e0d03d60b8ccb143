import json
import pickle
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gf_reference
from ffreason_env import Problem, ProblemConfig, ProblemSet, generate

ALL_KINDS = ProblemConfig(problem_types=["evaluation", "inversion", "composition"], ops=["add", "sub", "mul", "div"])


def test_same_item_in_a_fresh_process():
    code = (
        "import json, ffreason_env as f;"
        "c = f.ProblemConfig(problem_types=['evaluation','inversion','composition'], p=13);"
        "print(json.dumps([f.generate(c, 7, i).to_dict() for i in (0, 5, 123456789)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    c = ProblemConfig(problem_types=["evaluation", "inversion", "composition"], p=13)
    here = [generate(c, 7, i).to_dict() for i in (0, 5, 123456789)]
    assert json.loads(out) == here


def test_items_depend_only_on_config_seed_index():
    a = [generate(ALL_KINDS, 3, i) for i in range(50)]
    b = [generate(ALL_KINDS, 3, i) for i in reversed(range(50))][::-1]
    assert a == b
    assert len({p.to_json() for p in a}) == 50  # different indices differ
    assert generate(ALL_KINDS, 4, 0) != generate(ALL_KINDS, 3, 0)
    # (seed, index) streams do not overlap the way seed + index would
    assert generate(ALL_KINDS, 0, 1) != generate(ALL_KINDS, 1, 0)


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, "3", True, None])
def test_bad_seed_or_index(bad):
    with pytest.raises(ValueError, match="^seed: "):
        generate(ALL_KINDS, bad, 0)
    with pytest.raises(ValueError, match="^index: "):
        generate(ALL_KINDS, 0, bad)


@given(seed=st.integers(0, 2**32), index=st.integers(0, 2**40))
def test_answers_match_an_independent_computation(seed, index):
    problem = generate(ALL_KINDS, seed, index)
    assert problem.answer == gf_reference.answer(problem.to_dict())
    for part in problem.parts:
        assert part.answer == gf_reference.answer({**part.to_dict(), "p": problem.p})


def test_knobs_shape_the_stream():
    c = ProblemConfig(min_steps=6, max_steps=9, ops=["sub", "div"], type_weights=[9, 1], p=13)
    problems = list(ProblemSet(c, seed=1, size=2000))
    kinds = Counter(p.kind for p in problems)
    assert 0.87 < kinds["evaluation"] / 2000 < 0.93
    assert {len(p.ops) for p in problems} == {6, 7, 8, 9}
    assert {op for p in problems for op, _ in p.ops} == {"sub", "div"}
    assert all(0 < c_ < 13 for p in problems for _, c_ in p.ops)


def test_compositions_chain_their_parts():
    c = ProblemConfig(problem_types=["composition"], min_parts=3, max_parts=5, min_steps=1, max_steps=2)
    for problem in ProblemSet(c, size=200):
        assert 3 <= len(problem.parts) <= 5 and problem.ops == ()
        assert problem.given == problem.parts[0].given and problem.answer == problem.parts[-1].answer
        for a, b in zip(problem.parts, problem.parts[1:]):
            assert b.given == a.answer
        assert problem.num_steps == sum(len(p.ops) for p in problem.parts)


def test_round_trips_json_and_pickle():
    for problem in [*ProblemSet(ALL_KINDS, seed=2, size=100), *ProblemSet(ALL_KINDS.replace(max_label_offset=9, max_part_offset=3), size=50)]:
        assert Problem.from_json(problem.to_json()) == problem
        assert Problem.from_dict(json.loads(json.dumps(problem.to_dict()))) == problem
        assert pickle.loads(pickle.dumps(problem)) == problem
        for v in range(problem.p):
            assert problem.value(problem.symbol(v)) == v


def test_from_dict_rejects_inconsistent_problems():
    d = generate(ProblemConfig(), 0, 0).to_dict()
    with pytest.raises(ValueError, match="^answer: "):
        Problem.from_dict({**d, "answer": (d["answer"] + 1) % 11})
    with pytest.raises(ValueError, match="^ops: "):
        Problem.from_dict({**d, "ops": [["pow", 2]]})
    with pytest.raises(ValueError, match="^kind: "):
        Problem.from_dict({**d, "kind": "riddle"})
    composition = generate(ALL_KINDS.replace(problem_types=["composition"]), 0, 0).to_dict()
    with pytest.raises(ValueError, match="^label_offset: "):
        Problem.from_dict({**composition, "label_offset": -1})
    with pytest.raises(ValueError, match="^problem: malformed"):
        Problem.from_dict({"kind": "evaluation"})


def test_problem_set_is_a_sequence():
    ps = ProblemSet(ALL_KINDS, seed=9, size=10)
    assert len(ps) == 10 and ps[3] == generate(ALL_KINDS, 9, 3) and ps[-1] == ps[9]
    assert ps[2:4] == [ps[2], ps[3]] and list(ps) == [ps[i] for i in range(10)]
    with pytest.raises(IndexError):
        ps[10]
    with pytest.raises(ValueError, match="^size: "):
        ProblemSet(ALL_KINDS, size=-1)

"""ffreason_env.rg against reasoning-gym itself: its registry, its dataset protocol, its curriculum."""

import sys

import pytest

import ffreason_env as fe

reasoning_gym = pytest.importorskip("reasoning_gym", reason="the dev extra installs reasoning-gym")

from reasoning_gym.factory import create_curriculum, create_dataset  # noqa: E402

from ffreason_env.rg import KIND_LEVELS, STEP_LEVELS, register  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered():
    register()
    register()  # a second call is harmless


def test_items_are_ffreasons_problems_and_score_the_whole_response_with_verify():
    config = fe.ProblemConfig(min_steps=3, max_steps=4)
    data = create_dataset("ffreason", min_steps=3, max_steps=4, seed=5, size=6, prompt_style="bare")
    assert len(data) == 6
    for i, entry in enumerate(data):
        problem = fe.generate(config, 5, i)  # item i is generate(config, seed, i)
        assert fe.Problem.from_json(entry["metadata"]["problem"]) == problem
        assert entry["question"] == fe.render_prompt(problem) and entry["answer"] == problem.symbol(problem.answer)
        assert entry["metadata"]["source_dataset"] == "ffreason" and entry["metadata"]["source_index"] == i
        for s in ("forward", "backward"):
            assert data.score_answer(fe.write_trace(problem, s), entry) == 1.0
        assert data.score_answer(entry["answer"], entry) == 0.0  # an extracted answer is not a response
        assert data.score_answer(None, entry) == 0.0
    assert data[3] == data[3]  # regenerable alone
    instructed = create_dataset("ffreason", min_steps=3, max_steps=4, seed=5, size=1)
    assert instructed[0]["question"] == fe.render_prompt(fe.generate(config, 5, 0), "instructed")


def test_the_answer_mode_and_reward_options_reach_the_score():
    entry_of = lambda d: d[0]  # noqa: E731
    strict = create_dataset("ffreason", seed=2, size=1, prompt_style="bare")
    lenient = create_dataset("ffreason", seed=2, size=1, prompt_style="bare", answer_mode="lenient")
    shaped = create_dataset("ffreason", seed=2, size=1, prompt_style="bare", process_weight=0.5)
    entry = entry_of(strict)
    problem = fe.Problem.from_json(entry["metadata"]["problem"])
    loose = "```\n" + fe.write_trace(problem, fe.ALIGNED[problem.kind]) + "\n```"
    assert (strict.score_answer(loose, entry), lenient.score_answer(loose, entry)) == (0.0, 1.0)
    assert shaped.score_answer(fe.write_trace(problem, "forward"), entry) == 1.5
    with pytest.raises(ValueError, match="answer_mode"):
        create_dataset("ffreason", answer_mode="loose")
    with pytest.raises(ValueError, match="max_steps"):
        create_dataset("ffreason", min_steps=5, max_steps=2)


def test_the_curriculum_moves_steps_kinds_and_p():
    curriculum = create_curriculum("ffreason")
    cfg = curriculum.generate_configuration({"seed": 1, "size": 4})
    assert (cfg.min_steps, cfg.max_steps, cfg.problem_types, cfg.p) == (2, 5, ("evaluation", "inversion"), 11)
    curriculum.increment_attr_level("steps")
    curriculum.increment_attr_level("kinds")
    cfg = curriculum.generate_configuration({"seed": 1, "size": 40})
    assert (cfg.min_steps, cfg.max_steps) == STEP_LEVELS[2] and cfg.problem_types == KIND_LEVELS[2]
    data = reasoning_gym.factory.DATASETS["ffreason"][0](cfg)
    assert {e["metadata"]["kind"] for e in data} == set(KIND_LEVELS[2])


def test_the_adapter_says_what_to_install_when_reasoning_gym_is_missing(monkeypatch):
    import ffreason_env.rg as rg

    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(ImportError, match="pip install reasoning-gym"):
        rg.register()

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ffreason_env
from ffreason_env import ENV_IDS, Problem, generate, render_prompt, verify, write_trace


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_check_env_passes_without_warnings(env_id):
    env = gym.make(env_id, min_steps=1, max_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_reset_step_round_trip(env_id):
    env = gym.make(env_id, p=13, min_steps=2, max_steps=4)
    prompt, info = env.reset(seed=3)
    problem = Problem.from_dict(info["problem"])
    assert prompt == render_prompt(problem) and env.observation_space.contains(prompt)
    assert problem == generate(env.unwrapped.config, 0, info["index"])
    expected_kinds = {"ffreason/Evaluation-v0": {"evaluation"}, "ffreason/Inversion-v0": {"inversion"},
                      "ffreason/Composition-v0": {"composition"}}.get(env_id, {"evaluation", "inversion"})
    assert problem.kind in expected_kinds
    for s in ffreason_env.STRATEGIES:
        env.reset(seed=3)
        obs, reward, terminated, truncated, info = env.step(write_trace(problem, s))
        assert (reward, terminated, truncated) == (1.0, True, False)
        assert info["correct"] and info["strategy"] == s and info["well_formed"]
        assert info["steps_correct"] == info["steps_checked"]
        assert info["problem"] == problem.to_dict()


def test_seeding_is_reproducible_and_uses_np_random():
    env = gym.make("ffreason/Mixed-v0")
    a = [env.reset(seed=s)[0] for s in range(20)]
    b = [env.reset(seed=s)[0] for s in range(20)]
    assert a == b and len(set(a)) > 15
    env.reset(seed=5)
    follow = [env.reset()[0] for _ in range(5)]
    env.reset(seed=5)
    assert follow == [env.reset()[0] for _ in range(5)]


def test_options_choose_the_problem():
    env = gym.make("ffreason/Mixed-v0", problem_seed=4)
    prompt, info = env.reset(options={"index": 17})
    assert info["index"] == 17 and prompt == render_prompt(generate(env.unwrapped.config, 4, 17))
    fixed = generate(ffreason_env.ProblemConfig(p=13), 0, 2)
    prompt, info = env.reset(options={"problem": fixed.to_dict()})
    assert prompt == render_prompt(fixed) and info["index"] == -1
    _, reward, *_ = env.step(write_trace(fixed, "backward"))
    assert reward == 1.0
    with pytest.raises(ValueError, match="options: unknown key 'seed'"):
        env.reset(options={"seed": 1})


def test_any_unicode_response_is_a_valid_action():
    env = gym.make("ffreason/Inversion-v0")
    env.reset(seed=0)
    weird = "\u0435\U0001f600\ud800\x00 answer e1\n" * 1000
    assert env.action_space.contains(weird) and env.action_space.contains("")
    _, reward, terminated, _, info = env.step(weird)
    assert reward == 0.0 and terminated and not info["well_formed"]


def test_reward_options():
    env = gym.make("ffreason/Evaluation-v0", format_penalty=0.5, process_weight=0.25, min_steps=3, max_steps=3)
    _, info = env.reset(seed=0)
    problem = Problem.from_dict(info["problem"])
    assert env.step(write_trace(problem, "forward"))[1] == pytest.approx(1.25)
    env.reset(seed=0)
    assert env.step("gibberish")[1] == pytest.approx(-0.5)
    env.reset(seed=0)
    guess = f"answer {problem.symbol(problem.answer)}"
    assert env.step(guess)[1] == pytest.approx(1.0)  # outcome 1, process 0, well formed


def test_step_needs_a_fresh_episode():
    env = ffreason_env.MixedEnv()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("answer e1")
    env.reset(seed=0)
    env.step("answer e1")
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("answer e1")


def test_render_ansi():
    env = gym.make("ffreason/Evaluation-v0", render_mode="ansi")
    prompt, info = env.reset(seed=1)
    assert env.render() == prompt
    problem = Problem.from_dict(info["problem"])
    env.step(write_trace(problem, "backward"))
    text = env.render()
    assert text.startswith(prompt) and "correct=True strategy=backward" in text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"p": 9}, "^p: must be prime"),
        ({"max_step": 4}, "^max_step: not a ProblemConfig field"),
        ({"problem_types": ["inversion"]}, "^problem_types: EvaluationEnv is fixed"),
        ({"format_penalty": -1}, "^format_penalty: "),
        ({"problem_seed": -2}, "^problem_seed: "),
        ({"render_mode": "human"}, "^render_mode: "),
    ],
)
def test_bad_kwargs_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium's own warning about render_mode, before ours
        gym.make("ffreason/Evaluation-v0", **kwargs)


def test_make_vec_runs_a_batch():
    envs = gym.make_vec("ffreason/Mixed-v0", num_envs=8, min_steps=2, max_steps=3)
    prompts, infos = envs.reset(seed=0)
    assert len(prompts) == 8 and len(set(prompts)) > 1
    config = ffreason_env.ProblemConfig(min_steps=2, max_steps=3)
    problems = [generate(config, 0, int(i)) for i in infos["index"]]
    for problem, prompt in zip(problems, prompts):
        assert render_prompt(problem) == prompt
    responses = [write_trace(pr, "forward") if i % 2 else "answer e0" for i, pr in enumerate(problems)]
    _, rewards, terminated, truncated, infos = envs.step(responses)
    expected = [float(verify(pr, r).correct) for pr, r in zip(problems, responses)]
    assert rewards.tolist() == expected and rewards[1::2].tolist() == [1.0] * 4
    assert terminated.all() and not truncated.any()
    assert list(infos["strategy"][1::2]) == ["forward"] * 4
    envs.close()


def test_mixed_env_mix_weights():
    env = gym.make("ffreason/Mixed-v0", type_weights=[9, 1])
    kinds = [env.reset(seed=s)[1]["problem_kind"] for s in range(500)]
    share = np.mean([k == "evaluation" for k in kinds])
    assert 0.85 < share < 0.95

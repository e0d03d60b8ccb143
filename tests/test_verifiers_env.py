"""ffreason_env.verifiers_env against verifiers itself: its loaders, its taskset views, its Task scoring and its
``vf-validate`` command.

verifiers is an optional peer (``pip install 'ffreason[verifiers]'``); without it only the tests of what the
adapter says and does without it run.
"""

import asyncio
import json
import subprocess
import sys
import types

import pytest

import ffreason_env as fe
import ffreason_env.verifiers_env as fv


@pytest.fixture(scope="module")
def vf():
    return pytest.importorskip("verifiers.v1",
                               reason="verifiers is an optional peer: pip install 'ffreason[verifiers]'")


@pytest.fixture(scope="module")
def env(vf):
    return fv.load_environment(min_steps=3, max_steps=4, seed=5, size=6, prompt_style="bare")


def reply_trace(vf, task, reply):
    """The trace of a rollout whose model answered ``reply`` to the task's question (no model, no harness)."""
    return vf.Trace(task=vf.TraceTask(type=type(task).__name__, data=task.data, key=task.key, hash=task.hash),
                    agent=vf.AgentInfo(config=vf.AgentConfig()),
                    nodes=[vf.MessageNode(message=vf.UserMessage(content=task.data.prompt)),
                           vf.MessageNode(parent=0, message=vf.AssistantMessage(content=reply), sampled=True)])


def scored(vf, task, reply):
    """``reply`` scored the way a rollout scores it: verifiers' ``Task.score`` runs the task's rewards and metrics."""
    trace = reply_trace(vf, task, reply)
    asyncio.run(task.score(trace))
    return trace


def test_the_taskset_holds_ffreasons_problems_for_the_seed_and_index(vf, env):
    assert type(env).__name__ == "SingleAgentEnv" and isinstance(env.taskset, fv.FFReasonTaskset)
    tasks = list(env.taskset)
    assert len(tasks) == 6
    config = fe.ProblemConfig(min_steps=3, max_steps=4)
    for i, task in enumerate(tasks):
        problem = fe.generate(config, 5, i)  # task i is generate(config, seed, i)
        assert isinstance(task, fv.FFReasonTask) and task.data.idx == i and task.data.index == i
        assert fe.Problem.from_json(task.data.problem) == problem
        assert task.data.prompt == fe.render_prompt(problem) and task.data.answer == problem.symbol(problem.answer)
        assert (task.data.kind, task.data.steps, task.data.seed) == (problem.kind, problem.num_steps, 5)
    assert len({t.key for t in tasks}) == 6
    # verifiers' own views pick from the same stream
    assert [t.data.index for t in env.taskset.select(vf.SelectConfig(limit=2))] == [0, 1]
    assert [t.data.index for t in env.taskset.include(idx=["3:5"])] == [3, 4]
    # the default style is the instructed one (a verifiers user brings a model that never saw the grammar)
    instructed = fv.load_environment(min_steps=3, max_steps=4, seed=5, size=1)
    assert next(iter(instructed.taskset)).data.prompt == fe.render_prompt(fe.generate(config, 5, 0), "instructed")


def test_verifiers_scores_a_reference_trace_1_and_a_wrong_answer_0_with_the_strategy_as_metrics(vf, env):
    for task in env.taskset:
        problem = fe.Problem.from_json(task.data.problem)
        for strategy in ("forward", "backward"):
            trace = scored(vf, task, fe.write_trace(problem, strategy))
            assert trace.reward == 1.0 and trace.rewards["ffreason"].score == 1.0
            assert set(trace.metrics) == set(fv.METRIC_KEYS)
            assert trace.metrics[f"strategy_{strategy}"] == 1.0 and sum(
                trace.metrics[f"strategy_{s}"] for s in fe.LABELS) == 1.0
            assert trace.metrics["correct"] == trace.metrics["well_formed"] == trace.metrics["process"] == 1.0
            assert trace.metrics["aligned"] == float(strategy == fe.ALIGNED[problem.kind])
            assert trace.info["ffreason"]["strategy"] == strategy
            assert trace.info["ffreason"]["answer"] == task.data.answer
        wrong = problem.symbol((problem.answer + 1) % problem.p)
        slipped = fe.write_trace(problem, "forward").rsplit("\n", 1)[0] + f"\nanswer {wrong}"
        trace = scored(vf, task, slipped)
        assert trace.reward == 0.0 and trace.metrics["correct"] == 0.0 and trace.metrics["strategy_forward"] == 1.0
        assert 0.0 < trace.metrics["process"] < 1.0 and trace.info["ffreason"]["answer"] == wrong
        guess = scored(vf, task, f"answer {task.data.answer}")  # a bare right guess: rewarded, no strategy
        assert guess.reward == 1.0 and guess.metrics["strategy_unknown"] == 1.0 and guess.metrics["process"] < 1.0
        empty = scored(vf, task, "")
        assert empty.reward == 0.0 and empty.metrics["well_formed"] == 0.0 and empty.info["ffreason"]["answer"] is None


def test_a_composition_mixing_strategies_scores_mixed(vf):
    env = fv.load_environment(problem_types=["composition"], min_steps=2, max_steps=3, seed=2, size=1,
                              prompt_style="bare")
    (task,) = env.taskset
    problem = fe.Problem.from_json(task.data.problem)
    assert problem.kind == "composition" and task.data.prompt == fe.render_prompt(problem)
    strategies = ["forward", "backward"] + ["forward"] * (len(problem.parts) - 2)
    trace = scored(vf, task, fe.write_trace(problem, strategies))
    assert trace.reward == 1.0 and trace.metrics["strategy_mixed"] == 1.0
    assert trace.info["ffreason"]["part_strategies"] == strategies


def test_the_answer_mode_and_reward_options_reach_the_score(vf):
    kw = {"seed": 2, "size": 1, "prompt_style": "bare"}
    tasks = {name: next(iter(fv.load_environment(**kw, **opts).taskset)) for name, opts in
             {"strict": {}, "lenient": {"answer_mode": "lenient"}, "shaped": {"process_weight": 0.5},
              "penalized": {"format_penalty": 0.25}}.items()}
    problem = fe.Problem.from_json(tasks["strict"].data.problem)
    loose = "Sure.\n```\n" + fe.write_trace(problem, fe.ALIGNED[problem.kind]) + "\n```"
    assert scored(vf, tasks["strict"], loose).reward == 0.0
    lenient = scored(vf, tasks["lenient"], loose)
    assert lenient.reward == 1.0 and lenient.metrics["well_formed"] == 1.0
    assert scored(vf, tasks["shaped"], fe.write_trace(problem, "forward")).reward == 1.5
    assert scored(vf, tasks["penalized"], "no idea").reward == -0.25
    for bad, field in (({"answer_mode": "loose"}, "answer_mode"), ({"min_steps": 5, "max_steps": 2}, "max_steps"),
                       ({"prompt_style": "chatty"}, "prompt_style"), ({"size": 0}, "size"),
                       ({"process_weight": -1.0}, "process_weight"), ({"sizee": 3}, "sizee")):
        with pytest.raises(ValueError, match=field):
            fv.load_environment(**bad)


def test_verifiers_loaders_resolve_the_taskset_its_task_type_and_its_chat_harness_by_id(vf, env):
    assert vf.taskset_config_type(fv.TASKSET_ID) is fv.FFReasonTasksetConfig
    assert vf.task_type(fv.TASKSET_ID) is fv.FFReasonTask
    assert vf.environment_class(fv.TASKSET_ID) is vf.SingleAgentEnv
    assert vf.default_harness_id(fv.TASKSET_ID) == fv.TASKSET_ID  # the tool-less chat loop, not bash
    (harness,) = env._harnesses.values()
    assert isinstance(harness, fv.FFReasonHarness) and not harness.EXECUTES_CODE
    config = vf.resolve_env_config({"taskset": {"id": fv.TASKSET_ID, "size": 2, "p": 13,
                                                "task": {"answer_mode": "lenient"}}})
    taskset = vf.load_taskset(config.taskset)
    first = next(iter(taskset))
    assert first.config.answer_mode == "lenient"
    assert fe.Problem.from_json(first.data.problem) == fe.generate(fe.ProblemConfig(p=13), 0, 0)
    (stop,) = first.hooks("stop")
    assert asyncio.run(stop(reply_trace(vf, first, "answer e0"))) is True  # single turn


def test_vf_validate_checks_every_tasks_reference_answer(vf, tmp_path):
    out = subprocess.run([sys.executable, "-m", "ffreason_env.verifiers_env", "validate", "--taskset.size", "3",
                          "--taskset.min-steps", "2", "--taskset.max-steps", "3", "--runtime.type", "subprocess",
                          "--no-rich", "-o", str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (summary,) = tmp_path.glob("*/summary.json")
    got = json.loads(summary.read_text())
    assert got["total"] == 3 and got["outcomes"]["valid"] == 3 and got["checks"]["gold"]["valid"] == 3
    rows = [json.loads(line) for line in (summary.parent / "results.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == [0, 1, 2] and all(r["gold"]["valid"] for r in rows)
    assert all(r["noop"]["rewards"] == {"ffreason": 0.0} for r in rows)  # no reply scores 0


def test_vf_eval_takes_the_documented_command(vf, tmp_path):
    out = subprocess.run([sys.executable, "-m", "ffreason_env.verifiers_env", "eval", "-m", "some/model",
                          "--client.base-url", "http://localhost:8000/v1", "-n", "50", "--env.taskset.min-steps", "6",
                          "--env.taskset.max-steps", "9", "--env.taskset.task.answer-mode", "lenient",
                          "--env.agent.runtime.type", "subprocess", "--no-push", "--dry-run", "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (saved,) = tmp_path.glob("*/configs/resolved/eval.json")
    got = json.loads(saved.read_text())
    taskset = got["env"]["taskset"]
    assert (taskset["id"], taskset["min_steps"], taskset["max_steps"], taskset["prompt_style"]) == (
        fv.TASKSET_ID, 6, 9, "instructed")
    assert taskset["task"]["answer_mode"] == "lenient" and got["env"]["agent"]["runtime"]["type"] == "subprocess"
    assert got["select"]["limit"] == 50 and got["client"]["base_url"] == "http://localhost:8000/v1"
    assert saved.parents[2].name.startswith("ffreason--some--model--ffreason--")  # taskset, model, its harness


def test_importing_the_adapter_imports_no_verifiers_and_says_what_to_install_when_it_is_missing():
    code = ("import sys; sys.modules['verifiers'] = None\n"
            "import ffreason_env, ffreason_env.verifiers_env as fv\n"
            "print([m for m in ('verifiers', 'torch', 'transformers', 'trl') if sys.modules.get(m)])\n"
            "try:\n    fv.FFReasonTaskset\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", fv.INSTALL_HINT]
    code = ("import sys, ffreason_env.verifiers_env\n"
            "print(sorted(m for m in ('verifiers', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # where verifiers is installed too


def test_the_adapter_says_what_to_install_when_verifiers_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "verifiers", None)
    monkeypatch.setitem(sys.modules, "verifiers.v1", None)
    with pytest.raises(ImportError, match=r"pip install 'ffreason\[verifiers\]'"):
        fv.load_environment(size=2)
    with pytest.raises(ImportError, match=r"pip install 'ffreason\[verifiers\]'"):
        fv.main(["eval", "-n", "1"])
    with pytest.raises(SystemExit, match="usage"):
        fv.main(["train"])
    with pytest.raises(AttributeError):
        fv.NoSuchThing  # noqa: B018


def test_register_refuses_to_shadow_another_module(monkeypatch):
    monkeypatch.setitem(sys.modules, fv.TASKSET_ID, types.ModuleType(fv.TASKSET_ID))
    with pytest.raises(RuntimeError, match="already imported"):
        fv.register()
    monkeypatch.delitem(sys.modules, fv.TASKSET_ID)
    fv.register()
    fv.register()  # a second call is harmless
    assert sys.modules[fv.TASKSET_ID] is fv

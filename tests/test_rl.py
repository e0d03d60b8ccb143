"""RL: the environment bridge, GRPO through TRL, config errors, resume (tiny models built here)."""

import json
import os
import shutil
from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")

import ffreason_env as fe
from configs import rl_config
from trainers.cli import main
from trainers.models import load_model
from trainers.rl import make_trainer


def _cfg(init, out, algo="grpo", **kw):
    return rl_config(init, out, algo, **{"eval_every": 0, **kw})


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_reward_function_returns_what_verify_says(micro_dir, tmp_path):
    run = make_trainer(_cfg(micro_dir, tmp_path / "r", problem={"min_steps": 2, "max_steps": 3}))
    reward_func = run.trainer.reward_funcs[0]
    problems = run.train_problems.problems[:6]
    assert problems == [fe.generate(fe.ProblemConfig(min_steps=2, max_steps=3), 1, i) for i in range(6)]
    right = [fe.write_trace(p, s) for p in problems[:3] for s in ("forward",)] + \
            [fe.write_trace(problems[3], "backward")]
    wrong_answer = fe.write_trace(problems[4], "forward").rsplit("answer", 1)[0] + "answer " + \
        problems[4].symbol((problems[4].answer + 1) % problems[4].p)
    texts = right + [wrong_answer, "no idea"]
    extra, metrics = defaultdict(list), defaultdict(list)

    class State:
        global_step = 6

    rewards = reward_func(
        prompts=[[{"role": "user", "content": fe.render_prompt(p)}] for p in problems],
        completions=[[{"role": "assistant", "content": t}] for t in texts],
        completion_ids=[[0] * 5] * 6, index=list(range(6)), trainer_state=State(),
        log_extra=lambda k, v: extra[k].extend(v), log_metric=lambda k, v: metrics[k].append(v),
    )
    verdicts = [fe.verify(p, t) for p, t in zip(problems, texts)]
    assert rewards == [1.0 if v.correct else 0.0 for v in verdicts] == [1, 1, 1, 1, 0, 0]
    assert metrics["train/accuracy"] == [4 / 6]
    assert not extra  # TRL gathers log_extra across processes again: the completion log below has it all
    # the completion log holds the same verdicts, at the step these completions feed, written in one append
    rows = _lines(tmp_path / "r" / "completions.jsonl")
    assert [r["strategy"] for r in rows] == [v.strategy for v in verdicts] and {r["step"] for r in rows} == {7}
    assert [r["correct"] for r in rows] == [v.correct for v in verdicts]


def test_reward_options_reach_the_reward(micro_dir, tmp_path):
    run = make_trainer(_cfg(micro_dir, tmp_path / "r", problem={"min_steps": 2, "max_steps": 2}, process_weight=0.5,
                            format_penalty=0.25))
    p = run.train_problems.problems[0]
    rewards, verdicts, _ = run.score(1, [0, 0], [fe.write_trace(p, "forward"), "blah"], [1, 1])
    assert rewards == [1.0 + 0.5, 0.0 - 0.25]
    env = run.env.unwrapped  # the same numbers a user's own env loop gets
    assert [env.score(p, t)[0] for t in (fe.write_trace(p, "forward"), "blah")] == rewards


def test_grpo_steps_log_strategy_fractions_and_share_a_problem_per_group(one_step_run, tmp_path):
    init, _ = one_step_run
    out = tmp_path / "grpo"
    cfg = _cfg(init, out, env="ffreason/Mixed-v0", problem={"min_steps": 1, "max_steps": 1}, max_steps=3,
               eval_every=2, eval_ranges=[[1, 1]], eval_n=8, prompts=64)
    run = make_trainer(cfg)
    summary = run.train()
    assert summary["steps"] == 3 and os.path.isfile(out / "model" / "config.json")
    assert len(os.listdir(out / "tb")) == 1  # one event file: the final evaluation goes to the open writer
    # evaluations generate under the training budget, so a search that cannot finish in training fails there too
    assert [r["max_new_tokens"] for r in run.evaluate().values()] == [cfg.max_completion_length]
    train = [m for m in _lines(out / "metrics.jsonl") if m["phase"] == "train" and "train/accuracy" in m]
    assert [m["step"] for m in train] == [1, 2, 3]
    for m in train:
        for kind in ("evaluation", "inversion"):
            fracs = [m.get(f"train/{kind}/strategy/{s}") for s in ("forward", "backward", "unknown")]
            if fracs[0] is not None:
                assert sum(fracs) == pytest.approx(1.0)
    # the 1-step evaluation model writes the forward strategy on evaluation problems
    assert any(m.get("train/evaluation/strategy/forward", 0) > 0.5 for m in train)
    evals = [m for m in _lines(out / "metrics.jsonl") if m["phase"] == "eval"]
    assert [m["step"] for m in evals] == [0, 2, 3] and all("eval_1-1/accuracy" in m for m in evals)
    rows = _lines(out / "completions.jsonl")
    assert len(rows) == 3 * cfg.per_device_train_batch_size
    for step in (1, 2, 3):
        batch = sorted((r for r in rows if r["step"] == step), key=lambda r: r["slot"])
        groups = [batch[i:i + cfg.num_generations] for i in range(0, len(batch), cfg.num_generations)]
        assert len(groups) == cfg.per_device_train_batch_size // cfg.num_generations
        for g in groups:
            assert len({r["index"] for r in g}) == 1  # every member of a group saw the same problem


def test_an_rl_run_asks_in_its_prompt_style_and_reads_in_its_answer_mode(micro_dir, tmp_path):
    from ffreason_env.prompts import INSTRUCTIONS

    run = make_trainer(_cfg(micro_dir, tmp_path / "styled", prompt_style="instructed", answer_mode="lenient"))
    u = run.env.unwrapped
    assert (u.prompt_style.name, u.answer_mode) == ("instructed", "lenient")
    assert all(p.startswith(INSTRUCTIONS + "\n\n") for p in run.train_problems.prompts)
    assert run.trainer.train_dataset[0]["prompt"][0]["content"] == run.train_problems.prompts[0]
    problem = run.train_problems.problems[0]
    loose = fe.write_trace(problem, "forward").replace("answer ", "Answer: ")
    assert run.score(1, [0], [loose], [5])[0] == [1.0]  # lenient
    with pytest.raises(ValueError, match="prompt_style"):
        make_trainer(_cfg(micro_dir, tmp_path / "bad", prompt_style="chatty"))


def test_resume_continues_from_the_last_checkpoint_without_duplicate_lines(micro_dir, tmp_path, monkeypatch):
    out = tmp_path / "r"
    make_trainer(_cfg(micro_dir, out, max_steps=2, save_steps=2)).train()
    assert os.path.isdir(out / "checkpoints" / "checkpoint-2")
    # a killed run may have logged a step past its last checkpoint: resume drops it and redoes it
    with open(out / "completions.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "phase": "train", "index": -7}) + "\n")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(kw.get("weights_only")) or real_load(*a, **kw))
    summary = make_trainer(_cfg(micro_dir, out, max_steps=4, save_steps=2, resume=True)).train()
    assert summary["steps"] == 4
    assert loads and all(w is True for w in loads)  # optimizer, scheduler, RNG: never a full unpickle
    steps = [r["step"] for r in _lines(out / "completions.jsonl")]
    assert sorted(set(steps)) == [1, 2, 3, 4] and all(steps.count(s) == 8 for s in (1, 2, 3, 4))
    train = [m["step"] for m in _lines(out / "metrics.jsonl") if m["phase"] == "train" and "train/accuracy" in m]
    assert train == [1, 2, 3, 4]


def test_resume_refuses_changed_settings_but_may_run_longer(micro_dir, tmp_path):
    out = tmp_path / "r"
    make_trainer(_cfg(micro_dir, out, max_steps=1, save_steps=1)).train()
    with pytest.raises(ValueError, match=r"^resume: .* was run with learning_rate=.*; resume with the run's settings"):
        make_trainer(_cfg(micro_dir, out, max_steps=2, save_steps=1, resume=True, learning_rate=1e-3))
    with pytest.raises(ValueError, match=r"was run with problem=.* \(also changed: temperature\)"):
        make_trainer(_cfg(micro_dir, out, max_steps=2, save_steps=1, resume=True, temperature=0.5,
                          problem={"min_steps": 1, "max_steps": 2}))
    summary = make_trainer(_cfg(micro_dir, out, max_steps=2, save_steps=1, resume=True, threads=2)).train()
    assert summary["steps"] == 2
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    summary = make_trainer(_cfg(micro_dir, moved, max_steps=3, save_steps=1, resume=True)).train()
    assert summary["steps"] == 3


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_a_run_killed_after_its_last_checkpoint_resumes_without_training_more(micro_dir, tmp_path, algo):
    out = tmp_path / "r"
    make_trainer(_cfg(micro_dir, out, algo, max_steps=2, save_steps=2, eval_every=1, eval_n=2)).train()
    final = {k: v.clone() for k, v in load_model(str(out / "model"))[0].state_dict().items()}
    shutil.rmtree(out / "model")  # killed while saving or evaluating the final model
    (out / "rl_summary.json").unlink()
    summary = make_trainer(_cfg(micro_dir, out, algo, max_steps=2, save_steps=2, eval_every=1, eval_n=2,
                                resume=True)).train()
    assert summary["steps"] == 2 and "checkpoint-3" not in os.listdir(out / "checkpoints")
    assert [r["step"] for r in fe.read_jsonl(out / "metrics.jsonl") if r["phase"] == "train" and "reward" in r] == [1, 2]
    assert [r["step"] for r in fe.read_jsonl(out / "metrics.jsonl") if r["phase"] == "eval"] == [0, 1, 2]
    resumed = load_model(str(out / "model"))[0].state_dict()
    assert all(torch.equal(final[k], resumed[k]) for k in final)  # the checkpoint's weights, not one step more


@pytest.mark.parametrize(
    "change, message",
    [
        ({"env": "ffreason/Nope-v0"}, "env: unknown environment id"),
        ({"env": "ffreason/Evaluation-v0", "problem": {"problem_types": ["inversion"]}},
         r"problem: problem_types: EvaluationEnv is fixed to \('evaluation',\)"),
        ({"num_generations": 3}, "num_generations: 3 does not divide the batch of 8"),
        ({"problem": {"p": 17}}, r"init: the tokenizer of .* cannot encode task words \['GF\(17\)'"),
        ({"init": ""}, "init: the model to start from is required"),
        ({"eval_ranges": [[3, 2]]}, "eval_ranges:"),
        ({"format_penalty": -1.0}, "format_penalty: expected >= 0"),
    ],
)
def test_bad_config_fails_before_training_naming_the_problem(micro_dir, tmp_path, change, message):
    change = dict(change)
    with pytest.raises(ValueError, match=message):
        make_trainer(_cfg(change.pop("init", micro_dir), tmp_path / "r", **change))
    assert not (tmp_path / "r").exists()  # nothing written


@pytest.mark.parametrize("layer, message", [
    ({"problem": {"min_steps": 0}}, "problem.min_steps: must be in"),
    ({"problem": {"colour": "red"}}, "problem.colour: not a ProblemConfig field"),
    ({"vf_coef": 0.5}, r"vf_coef: a PPO knob; --algo grpo does not take it"),
    ({"num_mini_batches": 4}, r"num_mini_batches: a PPO knob"),
])
def test_a_bad_or_foreign_knob_is_refused_while_the_config_is_built(micro_dir, tmp_path, layer, message):
    with pytest.raises(ValueError, match=message):
        _cfg(micro_dir, tmp_path / "r", **layer)


def test_each_algorithm_refuses_the_others_knobs_by_name(micro_dir, tmp_path):
    from trainers.rl_config import PPORunConfig, own_knobs

    with pytest.raises(ValueError, match=r"^loss_type: a GRPO knob; --algo ppo does not take it"):
        _cfg(micro_dir, tmp_path / "r", "ppo", loss_type="dr_grpo")
    for knob in ("gradient_accumulation_steps", "scale_rewards", "num_iterations", "logging_steps", "use_vllm"):
        assert knob in own_knobs("grpo") and not hasattr(PPORunConfig(), knob)  # PPO cannot silently ignore it
    # PPO's mini-batches do not constrain GRPO: a batch of 9 (groups of 3) is not split in PPO's default 2
    _cfg(micro_dir, tmp_path / "r", per_device_train_batch_size=9, num_generations=3).validate()
    with pytest.raises(ValueError, match="num_mini_batches: 2 does not divide per_device_train_batch_size 9"):
        _cfg(micro_dir, tmp_path / "r", "ppo", per_device_train_batch_size=9, num_generations=3).validate()
    with pytest.raises(ValueError, match="num_mini_batches: 3 does not divide"):
        _cfg(micro_dir, tmp_path / "r", "ppo", num_mini_batches=3).validate()


def test_an_init_that_is_neither_a_directory_nor_on_the_hub_is_named(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
    with pytest.raises(FileNotFoundError, match="init: 'no-such-org/no-such-model' is not a local directory"):
        make_trainer(_cfg("no-such-org/no-such-model", tmp_path / "r"))


@pytest.mark.parametrize("variable, value", [("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3"), ("ACCELERATE_USE_FSDP", "true")])
def test_sharded_parameters_are_refused_before_loading(micro_dir, tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)  # what accelerate launch sets for a ZeRO-3 or FSDP config
    with pytest.raises(ValueError, match="accelerate: ZeRO-3 and FSDP shard the parameters"):
        make_trainer(_cfg(micro_dir, tmp_path / "r"))


def test_cli_rl_errors_and_yaml(micro_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["rl", "--preset", "micro", "--init", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert "init: no model in" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_generation: 4\n")
    with pytest.raises(SystemExit):
        main(["rl", "--init", micro_dir, "--config", str(bad), "--out", str(tmp_path / "r")])
    assert "num_generation: unknown option for GRPORunConfig" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--preset", "micro", "--init", micro_dir, "--vf-coef", "0.5", "--out", str(tmp_path / "r")])
    assert "vf_coef: a PPO knob; --algo grpo does not take it" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--preset", "micro", "--algo", "ppo", "--init", micro_dir, "--no-use-vllm", "--out",
              str(tmp_path / "r")])
    assert "use_vllm: a GRPO knob; --algo ppo does not take it" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("preset: micro\nmax_steps: 1\nlearning_rate: 0.001\nproblem: {min_steps: 1, max_steps: 2}\n")
    assert main(["rl", "--init", micro_dir, "--config", str(good), "--max-steps", "2", "--problem.max-steps", "1",
                 "--out", str(tmp_path / "ok")]) == 0
    import yaml

    saved = yaml.safe_load((tmp_path / "ok" / "config.yaml").read_text())
    assert (saved["command"], saved["algo"], saved["preset"]) == ("rl", "grpo", "micro")
    assert saved["max_steps"] == 2 and saved["learning_rate"] == 0.001  # flag > file > preset (micro: 1 step, 1e-4)
    assert (saved["problem"]["min_steps"], saved["problem"]["max_steps"]) == (1, 1)
    assert saved["num_generations"] == 4 and saved["threads"] == 1  # from the preset
    with pytest.raises(SystemExit):
        main(["rl", "--init", micro_dir, "--preset", "micro", "--out", str(tmp_path / "ok")])
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--init", micro_dir, "--preset", "micro", "--resume", "--out", str(tmp_path / "new")])
    assert "resume: no checkpoint in" in capsys.readouterr().err and not (tmp_path / "new").exists()
    # a run's own config.yaml is a valid --config: the same settings again
    assert main(["rl", "--config", str(tmp_path / "ok" / "config.yaml"), "--out", str(tmp_path / "again")]) == 0
    again = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    assert {k: v for k, v in again.items() if k != "out"} == {k: v for k, v in saved.items() if k != "out"}


def test_the_budget_in_task_terms_is_resolved_in_the_models_tokens(micro_dir, tmp_path):
    """``budget_ratio`` sets it and ``min_budget_ratio`` floors it, as multiples of the longest aligned trace of the
    RL data's longest chains; config.yaml records the tokens."""
    import yaml

    from trainers.budget import longest_aligned
    from trainers.rl import make_trainer
    from trainers.tokenizer import build_tokenizer

    longest = longest_aligned(build_tokenizer(), fe.ProblemConfig(min_steps=6, max_steps=15))
    floored = make_trainer(rl_config(micro_dir, str(tmp_path / "a"), min_budget_ratio=1.05, max_completion_length=96,
                                     problem={"min_steps": 6, "max_steps": 15}))
    assert floored.cfg.max_completion_length == -(-longest * 105 // 100) > 96  # every direct 15-step trace fits
    ratio = rl_config(micro_dir, str(tmp_path / "b"), budget_ratio=2.0, problem={"min_steps": 6, "max_steps": 15})
    run = make_trainer(ratio)
    assert run.cfg.max_completion_length == 2 * longest
    assert yaml.safe_load(open(tmp_path / "b" / "config.yaml"))["max_completion_length"] == 2 * longest
    with pytest.raises(ValueError, match="budget_ratio: below 1"):
        rl_config(micro_dir, str(tmp_path / "c"), budget_ratio=0.5).validate()

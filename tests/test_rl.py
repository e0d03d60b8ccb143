"""RL: the environment bridge, GRPO through TRL, config errors, resume (tiny models built here)."""

import json
import os
import shutil
from collections import defaultdict

import pytest

torch = pytest.importorskip("torch")

import ffreason_env as fe
from trainers.cli import main
from trainers.models import load_model
from trainers.rl import RL_PRESETS, RLRunConfig, make_trainer


def _cfg(init, out, **kw):
    base = {**RL_PRESETS["micro"], "init": init, "out": str(out), "threads": 1}
    base.update(kw)
    return RLRunConfig(**base)


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_reward_function_returns_what_verify_says(micro_dir, tmp_path):
    run = make_trainer("grpo", _cfg(micro_dir, tmp_path / "r", env_kwargs={"min_steps": 2, "max_steps": 3}))
    reward_func = run.trainer.reward_funcs[0]
    problems = [fe.generate(fe.ProblemConfig(min_steps=2, max_steps=3), 5, i) for i in range(6)]
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
        completion_ids=[[0] * 5] * 6, problem=[p.to_json() for p in problems], index=list(range(6)),
        kind=[p.kind for p in problems], trainer_state=State(),
        log_extra=lambda k, v: extra[k].extend(v), log_metric=lambda k, v: metrics[k].append(v),
    )
    verdicts = [fe.verify(p, t) for p, t in zip(problems, texts)]
    assert rewards == [1.0 if v.correct else 0.0 for v in verdicts] == [1, 1, 1, 1, 0, 0]
    assert extra["strategy"] == [v.strategy for v in verdicts]
    assert extra["correct"] == [v.correct for v in verdicts]
    assert metrics["train/accuracy"] == [4 / 6]
    # the completion log holds the same verdicts, at the step these completions feed
    rows = _lines(tmp_path / "r" / "completions.jsonl")
    assert [r["strategy"] for r in rows] == extra["strategy"] and {r["step"] for r in rows} == {7}


def test_reward_options_reach_the_reward(micro_dir, tmp_path):
    run = make_trainer("grpo", _cfg(micro_dir, tmp_path / "r", env_kwargs={"min_steps": 2, "max_steps": 2,
                                                                             "process_weight": 0.5,
                                                                             "format_penalty": 0.25}))
    p = fe.generate(fe.ProblemConfig(min_steps=2, max_steps=2), 0, 0)
    rewards, verdicts, _ = run.score(1, [p, p], [0, 0], [fe.write_trace(p, "forward"), "blah"], [1, 1])
    assert rewards == [1.0 + 0.5, 0.0 - 0.25]


def test_grpo_steps_log_strategy_fractions_and_share_a_problem_per_group(one_step_run, tmp_path):
    init, _ = one_step_run
    out = tmp_path / "grpo"
    cfg = _cfg(init, out, env="ffreason/Mixed-v0", env_kwargs={"min_steps": 1, "max_steps": 1}, max_steps=3,
               eval_every=2, eval_ranges=[[1, 1]], eval_n=8)
    run = make_trainer("grpo", cfg)
    summary = run.train()
    assert summary["steps"] == 3 and os.path.isfile(out / "model" / "config.json")
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


def test_resume_continues_from_the_last_checkpoint_without_duplicate_lines(micro_dir, tmp_path, monkeypatch):
    out = tmp_path / "r"
    make_trainer("grpo", _cfg(micro_dir, out, max_steps=2, save_steps=2)).train()
    assert os.path.isdir(out / "checkpoints" / "checkpoint-2")
    # a killed run may have logged a step past its last checkpoint: resume drops it and redoes it
    with open(out / "completions.jsonl", "a") as f:
        f.write(json.dumps({"step": 3, "phase": "train", "index": -7}) + "\n")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(kw.get("weights_only")) or real_load(*a, **kw))
    summary = make_trainer("grpo", _cfg(micro_dir, out, max_steps=4, save_steps=2, resume=True)).train()
    assert summary["steps"] == 4
    assert loads and all(w is True for w in loads)  # optimizer, scheduler, RNG: never a full unpickle
    steps = [r["step"] for r in _lines(out / "completions.jsonl")]
    assert sorted(set(steps)) == [1, 2, 3, 4] and all(steps.count(s) == 8 for s in (1, 2, 3, 4))
    train = [m["step"] for m in _lines(out / "metrics.jsonl") if m["phase"] == "train" and "train/accuracy" in m]
    assert train == [1, 2, 3, 4]


def test_resume_refuses_changed_settings_but_may_run_longer(micro_dir, tmp_path):
    out = tmp_path / "r"
    make_trainer("grpo", _cfg(micro_dir, out, max_steps=1, save_steps=1)).train()
    with pytest.raises(ValueError, match=r"^resume: .* was run with learning_rate=.*; resume with the run's settings"):
        make_trainer("grpo", _cfg(micro_dir, out, max_steps=2, save_steps=1, resume=True, learning_rate=1e-3))
    with pytest.raises(ValueError, match=r"was run with env_kwargs=.* \(also changed: temperature\)"):
        make_trainer("grpo", _cfg(micro_dir, out, max_steps=2, save_steps=1, resume=True, temperature=0.5,
                                  env_kwargs={"min_steps": 1, "max_steps": 2}))
    summary = make_trainer("grpo", _cfg(micro_dir, out, max_steps=2, save_steps=1, resume=True, threads=2)).train()
    assert summary["steps"] == 2
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    summary = make_trainer("grpo", _cfg(micro_dir, moved, max_steps=3, save_steps=1, resume=True)).train()
    assert summary["steps"] == 3


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_a_run_killed_after_its_last_checkpoint_resumes_without_training_more(micro_dir, tmp_path, algo):
    out = tmp_path / "r"
    make_trainer(algo, _cfg(micro_dir, out, max_steps=2, save_steps=2, eval_every=1, eval_n=2)).train()
    final = {k: v.clone() for k, v in load_model(str(out / "model"))[0].state_dict().items()}
    shutil.rmtree(out / "model")  # killed while saving or evaluating the final model
    (out / "rl_summary.json").unlink()
    summary = make_trainer(algo, _cfg(micro_dir, out, max_steps=2, save_steps=2, eval_every=1, eval_n=2,
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
        ({"env_kwargs": {"min_steps": 0}}, "min_steps"),
        ({"env_kwargs": {"colour": "red"}}, "env_kwargs:"),
        ({"num_generations": 3}, "num_generations: 3 does not divide the batch of 8"),
        ({"env_kwargs": {"p": 17}}, r"init: the tokenizer of .* cannot encode task words \['GF\(17\)'"),
        ({"init": ""}, "init: the model to start from is required"),
        ({"algo": "dqn"}, "algo: 'dqn' is not one of"),
        ({"eval_ranges": [[3, 2]]}, "eval_ranges:"),
    ],
)
def test_bad_config_fails_before_training_naming_the_problem(micro_dir, tmp_path, change, message):
    cfg = _cfg(micro_dir, tmp_path / "r")
    for key, value in change.items():
        setattr(cfg, key, value)
    with pytest.raises(ValueError, match=message):
        make_trainer(cfg.algo, cfg)
    assert not (tmp_path / "r").exists()  # nothing written


def test_an_init_that_is_neither_a_directory_nor_on_the_hub_is_named(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
    with pytest.raises(FileNotFoundError, match="init: 'no-such-org/no-such-model' is not a local directory"):
        make_trainer("grpo", _cfg("no-such-org/no-such-model", tmp_path / "r"))


@pytest.mark.parametrize("variable, value", [("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3"), ("ACCELERATE_USE_FSDP", "true")])
def test_sharded_parameters_are_refused_before_loading(micro_dir, tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)  # what accelerate launch sets for a ZeRO-3 or FSDP config
    with pytest.raises(ValueError, match="accelerate: ZeRO-3 and FSDP shard the parameters"):
        make_trainer("grpo", _cfg(micro_dir, tmp_path / "r"))


def test_cli_rl_errors_and_yaml(micro_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["rl", "--init", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert "init: no model in" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_generation: 4\n")
    with pytest.raises(SystemExit):
        main(["rl", "--init", micro_dir, "--config", str(bad), "--out", str(tmp_path / "r")])
    assert "num_generation: unknown option for RLRunConfig" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("preset: micro\nmax_steps: 1\nenv_kwargs: {min_steps: 1, max_steps: 2}\n")
    assert main(["rl", "--init", micro_dir, "--config", str(good), "--max-steps", "2", "--threads", "1",
                 "--env-kwargs", '{"max_steps": 1}', "--out", str(tmp_path / "ok")]) == 0
    import yaml

    saved = yaml.safe_load((tmp_path / "ok" / "config.yaml").read_text())
    assert saved["max_steps"] == 2 and saved["env_kwargs"] == {"min_steps": 1, "max_steps": 1}
    with pytest.raises(SystemExit):
        main(["rl", "--init", micro_dir, "--preset", "micro", "--out", str(tmp_path / "ok")])
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--init", micro_dir, "--preset", "micro", "--resume", "--out", str(tmp_path / "new")])
    assert "resume: no checkpoint in" in capsys.readouterr().err and not (tmp_path / "new").exists()

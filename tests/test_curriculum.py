"""The accuracy-driven RL curriculum: when it moves, what it draws, that both algorithms follow it and resume it."""

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from configs import rl_config
from trainers.curriculum import LEVEL, Curriculum, CurriculumSampler
from trainers.rl import make_trainer


def _curriculum(**kw):
    return Curriculum(**{"levels": ((1, 1), (2, 3), (4, 5)), "threshold": 0.5, "window": 2, "prompts": 10, **kw})


def test_it_moves_when_the_last_window_of_its_level_reaches_the_threshold():
    c = _curriculum()
    level0, level1 = [0, 1, 2], [10, 11]
    assert c.observe(1, level0, 0.9)[LEVEL] == 0 and c.level == 0  # one batch: the window is not full yet
    c.observe(2, level0, 0.05)
    assert c.level == 0  # mean 0.475 < 0.5
    c.observe(3, level0, 0.95)
    assert c.level == 1 and c.started == {0: 0, 1: 4}  # mean of the last two 0.5: level 1 from the next step on
    m = c.observe(4, level0, 1.0)  # drawn before the move: logged as level 0, and it does not count for level 1
    assert m == {LEVEL: 0, "train/curriculum/min_steps": 1, "train/curriculum/max_steps": 1} and c.level == 1
    c.observe(5, level1, 1.0)
    assert c.level == 1
    assert c.observe(6, level0 + level1, 1.0)[LEVEL] == pytest.approx(0.4)  # a mixed batch, not counted
    c.observe(7, level1, 0.5)
    assert c.level == 2 and c.offset() == 20
    for step in (8, 9, 10):
        c.observe(step, [20], 1.0)
    assert c.level == 2  # the last level stays
    assert c.summary() == {"levels": [[1, 1], [2, 3], [4, 5]], "final_level": 2,
                           "level_started_at_step": {"0": 0, "1": 4, "2": 8}}


def test_replaying_the_logged_rows_rebuilds_the_state():
    c, rows = _curriculum(), []
    for step, (indices, acc) in enumerate([([0], 0.6), ([0], 0.7), ([0], 0.2), ([10], 0.9), ([10], 0.05)], 1):
        rows.append({"step": step, "phase": "train", "train/accuracy": acc, **c.observe(step, indices, acc)})
    rows.insert(2, {"step": 2, "phase": "eval", "eval_1-1/accuracy": 1.0})
    replayed = _curriculum()
    replayed.replay(rows)
    assert (replayed.level, replayed.started, replayed._recent) == (c.level, c.started, c._recent) == \
        (1, {0: 0, 1: 3}, [0.9, 0.05])


def test_the_sampler_keeps_trls_repeat_order_and_switches_level_between_chunks():
    from trl.trainer.utils import RepeatSampler

    c = _curriculum(prompts=6)
    sampler = CurriculumSampler(c, mini_repeat_count=2, batch_size=3, repeat_count=2, seed=0)
    theirs = list(RepeatSampler(range(6), mini_repeat_count=2, batch_size=3, repeat_count=2, seed=0))
    ours = list(sampler)
    assert len(ours) == len(sampler) == len(theirs) == 24
    for seq in (ours, theirs):  # chunks of 3 distinct prompts, each twice, every chunk twice
        for chunk in (seq[0:12], seq[12:24]):
            assert chunk[:6] == chunk[6:] and chunk[0:6:2] == chunk[1:6:2] and len(set(chunk)) == 3
    assert sorted(set(ours)) == list(range(6))
    it = iter(sampler)  # the level is read as each chunk is drawn
    first = [next(it) for _ in range(12)]
    c.level = 2
    second = list(it)
    assert all(i < 6 for i in first) and all(12 <= i < 18 for i in second)
    assert list(CurriculumSampler(_curriculum(prompts=6), 2, 3, 2, seed=0)) == ours  # seeded: processes agree
    assert list(sampler) != ours  # the next epoch has another order (checked: 1 in 720 that it would not)


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_both_algorithms_train_on_the_current_level_and_log_it(one_step_run, tmp_path, algo):
    """The 1-step evaluation model solves most 1-step problems, so it leaves level 0 after ``window`` steps."""
    init, _ = one_step_run
    out = tmp_path / algo
    cfg = rl_config(init, out, algo, env="ffreason/Evaluation-v0", problem={"min_steps": 1, "max_steps": 3},
                    curriculum=[[1, 1], [2, 3]], curriculum_threshold=0.3, curriculum_window=2, max_steps=5,
                    prompts=32, eval_every=0, save_steps=5)
    run = make_trainer(cfg)
    assert len(run.train_problems.problems) == 64
    assert {p.num_steps for p in run.train_problems.problems[:32]} == {1}
    assert {p.num_steps for p in run.train_problems.problems[32:]} <= {2, 3}
    summary = run.train()
    train = [m for m in map(json.loads, open(out / "metrics.jsonl")) if m["phase"] == "train" and LEVEL in m]
    levels = [m[LEVEL] for m in train]
    assert levels[:2] == [0, 0] and levels[-1] == 1 and levels == sorted(levels), levels
    assert summary["curriculum"]["final_level"] == 1
    rows = [json.loads(line) for line in open(out / "completions.jsonl")]
    for m in train:  # what each step's samples were is what it logged
        steps = {r["num_steps"] for r in rows if r["step"] == m["step"]}
        assert steps == {1} if m[LEVEL] == 0 else steps <= {2, 3}, (m["step"], steps)


def test_a_resumed_run_continues_at_the_level_it_had_reached(one_step_run, tmp_path):
    init, _ = one_step_run
    kw = dict(env="ffreason/Evaluation-v0", problem={"min_steps": 1, "max_steps": 3}, curriculum=[[1, 1], [2, 3]],
              curriculum_threshold=0.3, curriculum_window=2, prompts=32, eval_every=0, save_steps=3)
    make_trainer(rl_config(init, tmp_path / "r", "ppo", max_steps=3, **kw)).train()
    run = make_trainer(rl_config(init, tmp_path / "r", "ppo", max_steps=4, resume=True, **kw))
    assert run.curriculum.level == 1 and run.curriculum.started == {0: 0, 1: 3}
    run.train()
    last = [m for m in map(json.loads, open(tmp_path / "r" / "metrics.jsonl")) if m["phase"] == "train"][-1]
    assert last["step"] == 4 and last[LEVEL] == 1


def test_bad_curricula_are_refused_by_name(micro_dir, tmp_path):
    with pytest.raises(ValueError, match="curriculum: each range"):
        rl_config(micro_dir, tmp_path / "a", curriculum=[[3, 2]]).validate()
    with pytest.raises(ValueError, match="curriculum_threshold"):
        rl_config(micro_dir, tmp_path / "b", curriculum=[[1, 2]], curriculum_threshold=0).validate()
    with pytest.raises(ValueError, match=r"curriculum: level \(1, 10000\)"):
        rl_config(micro_dir, tmp_path / "c", curriculum=[[1, 10_000]]).validate()


def test_the_documented_command_line_sets_the_levels():
    from trainers.cli import rl_config as parse

    cfg = parse(["--init", "runs/sft_fb", "--out", "runs/x", "--problem.min-steps", "6", "--problem.max-steps", "15",
                 "--curriculum", "6", "9", "6", "12", "6", "15", "--eval-ranges", "2", "5", "6", "9", "10", "15"])
    assert cfg.curriculum == ((6, 9), (6, 12), (6, 15)) and cfg.eval_ranges == ((2, 5), (6, 9), (10, 15))
    assert (cfg.curriculum_threshold, cfg.curriculum_window) == (0.5, 5)
    doc = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    assert "--curriculum 6 9 6 12 6 15 --eval-ranges 2 5 6 9 10 15" in doc

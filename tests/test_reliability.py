"""Crash safety: a real run killed with SIGKILL and resumed; torn JSONL lines; partial checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from trainers.runlog import MetricsLog, last_checkpoint, last_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _records(path):
    """The complete lines of a JSONL file another process may be appending to."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def test_a_run_killed_mid_training_resumes_without_losing_or_repeating_a_step(micro_dir, tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "trainers.cli", "rl", "--preset", "micro", "--init", micro_dir, "--out", str(out),
           "--max-steps", "8", "--save-steps", "2", "--eval-every", "3", "--eval-ranges", "1", "2", "--eval-n", "4",
           "--threads", "1"]
    with open(tmp_path / "killed.log", "w") as log:
        run = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        deadline = time.monotonic() + 180
        while True:  # kill once a checkpoint exists and the step after it has started logging
            assert run.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline
            checkpoint = last_checkpoint(str(out / "checkpoints"))
            done = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
            if done and any(r["step"] > done for r in _records(out / "completions.jsonl")):
                break
            time.sleep(0.01)
        run.send_signal(signal.SIGKILL)
        run.wait()
    resumed_from = int(last_checkpoint(str(out / "checkpoints")).rsplit("-", 1)[1])
    assert resumed_from < 8 and max(r["step"] for r in _records(out / "completions.jsonl")) > resumed_from
    with open(out / "completions.jsonl", "a") as f:  # as if the kill had landed in the middle of a write
        f.write('{"completion": "step 1 add e3 : e0 -> e3\\nans')

    again = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]

    metrics = _records(out / "metrics.jsonl")
    assert [m["step"] for m in metrics if "train/accuracy" in m] == list(range(1, 9))
    assert [m["step"] for m in metrics if m["phase"] == "eval"] == [0, 3, 6, 8]
    keys = [(m["step"], m["phase"], tuple(sorted(m))) for m in metrics]
    assert len(keys) == len(set(keys))  # no line twice
    rows = _records(out / "completions.jsonl")
    assert len(rows) == sum(1 for _ in open(out / "completions.jsonl"))  # the torn line is gone
    for step in range(1, 9):
        assert sorted(r["slot"] for r in rows if r["step"] == step) == list(range(8))
    assert json.load(open(out / "rl_summary.json"))["steps"] == 8


def test_truncation_drops_a_torn_last_line_and_refuses_a_corrupt_one(tmp_path):
    log = MetricsLog(str(tmp_path))
    for step in (1, 2, 3):
        log.write(step, "train", {"reward": step / 10})
    with open(log.path, "a") as f:
        f.write('{"phase": "train", "rew')
    assert [r["step"] for r in log.truncate_after(2)] == [1, 2]
    assert [json.loads(line)["step"] for line in open(log.path)] == [1, 2]
    log.write(3, "train", {"reward": 0.3})
    assert open(log.path).read().endswith('"step": 3}\n')  # appends go on after the kept lines

    with open(log.path, "a") as f:
        f.write("garbage\n")
    log.write(4, "train", {})
    with pytest.raises(ValueError, match=r"metrics.jsonl:4: not a JSON line"):
        log.truncate_after(4)


def test_last_step_reads_the_last_whole_line_of_a_file_still_being_written(tmp_path):
    log = MetricsLog(str(tmp_path))
    assert last_step(log.path) is None  # no file yet
    for step in (0, 10, 20):
        log.write(step, "train", {"loss": 1.0, "pad": "x" * 300})
    assert last_step(log.path) == 20
    with open(log.path, "a") as f:
        f.write('{"phase": "train", "step": 30, "lo')  # a write in progress
    assert last_step(log.path) == 20
    assert last_step(log.path, tail=400) == 20  # the tail starts inside the line of step 10
    assert last_step(log.path, tail=200) is None  # no whole line in it


def test_a_checkpoint_the_kill_left_half_written_is_skipped(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        path = tmp_path / f"checkpoint-{step}"
        path.mkdir()
        (path / "model.safetensors").write_bytes(b"")
        if complete:
            (path / "trainer_state.json").write_text("{}")
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")


def test_an_atomic_write_replaces_the_whole_file_or_nothing(tmp_path):
    from ffreason_env.atomic import atomic_path, atomic_write

    path = tmp_path / "config.yaml"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["config.yaml"]  # nothing left behind
    with atomic_path(path) as a, atomic_path(path) as b:  # two writers never share a temporary file
        assert a != b and os.path.dirname(a) == os.path.dirname(b) == str(tmp_path)
        open(a, "w").write("a\n")
        open(b, "w").write("b\n")
    assert path.read_text() == "a\n" and os.listdir(tmp_path) == ["config.yaml"]  # the writer done last wins


def test_every_file_a_run_writes_whole_goes_through_the_atomic_helper():
    """Outside the helper the packages open files for appending only (JSONL logs); a plain write would leave half a
    file where a kill lands."""
    import pathlib
    import re

    root = pathlib.Path(__file__).parent.parent
    plain = re.compile(r"""open\([^)]*["'](w|wb|x)["']|\.write_text\(|\.savefig\([^)]*os\.path""")
    found = [f"{p.relative_to(root)}:{n}" for pkg in ("ffreason_env", "trainers", "baselines")
             for p in sorted((root / pkg).rglob("*.py")) if p.name != "atomic.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if plain.search(line)]
    assert found == []

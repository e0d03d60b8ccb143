"""Data-parallel GRPO under ``accelerate launch``: two CPU processes (gloo), with docs/accelerate/cpu_2proc.yaml."""

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("accelerate")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_two_processes_sample_different_problems_and_the_main_one_logs_every_completion_once(micro_dir, tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "docs/accelerate/cpu_2proc.yaml",
           "--main_process_port", str(_free_port()), "-m", "trainers.cli", "rl", "--preset", "micro",
           "--init", micro_dir, "--max-steps", "2", "--prompts", "64", "--threads", "1", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run directory:") == 1  # the summary is printed by the main process only

    per_process, group, steps = 8, 4, 2  # the micro preset: 8 completions per process, groups of 4
    rows = _lines(out / "completions.jsonl")
    assert len(rows) == steps * 2 * per_process
    seen = {0: set(), 1: set()}
    for step in range(1, steps + 1):
        batch = sorted((r for r in rows if r["step"] == step), key=lambda r: r["slot"])
        assert [r["slot"] for r in batch] == list(range(2 * per_process))
        assert [r["rank"] for r in batch] == [0] * per_process + [1] * per_process
        for g in range(0, len(batch), group):
            assert len({r["index"] for r in batch[g:g + group]}) == 1  # a group shares one problem
        for rank in (0, 1):
            seen[rank] |= {r["index"] for r in batch if r["rank"] == rank}
    assert len(seen[0]) == len(seen[1]) == steps * per_process // group and not seen[0] & seen[1]

    metrics = _lines(out / "metrics.jsonl")
    assert [m["step"] for m in metrics if "train/accuracy" in m] == [1, 2]
    evals = [m for m in metrics if m["phase"] == "eval"]  # each process decoded its share; the main one logged all
    assert [m["step"] for m in evals] == [0, 1, 2] and all(m["eval_2-5/n"] == m["eval_6-9/n"] == 2 for m in evals)
    assert "grpo: 16 completions per optimizer step, 4 problems x 4 samples" in proc.stdout
    assert json.load(open(out / "rl_summary.json"))["steps"] == steps
    assert len(os.listdir(out / "tb")) == 1  # one TensorBoard writer
    # both processes trained: each saved its RNG state in the checkpoint
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(os.listdir(out / "checkpoints" / "checkpoint-2"))


def test_the_rl_command_leaves_the_process_group_before_exiting(micro_dir, tmp_path):
    """A process exiting with gloo's threads alive can abort (SIGABRT): it failed this file's 2-process test once."""
    import torch.distributed as dist

    from trainers.cli import main

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        assert main(["rl", "--preset", "micro", "--init", micro_dir, "--max-steps", "1", "--threads", "1",
                     "--out", str(tmp_path / "r")]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()

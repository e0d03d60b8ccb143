"""Seconds per RL step, and what the environment bridge costs next to plain TRL.

Arms, on the same model, prompts, batch and seed: ``bridge`` is
``ffreason rl --algo grpo`` (rewards from ``env.step``, strategy metrics,
completions.jsonl); ``plain`` is the same TRL ``GRPOTrainer`` (with the
project's rollout path, :func:`trainers.grpo.trainer_class`) given a reward
function that returns 0.0 for everything; ``ppo`` is our PPO. The learning rate is
1e-12, so every arm samples from the same, unchanging policy and only the
per-step work differs. The time spent inside the bridge's reward function is
also measured directly.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from .common import RESULTS, summary, write


def _step_times(trainer) -> list[float]:
    return [h["step_time"] for h in trainer.state.log_history if "step_time" in h]


def run(init: str | None, steps: int, repeats: int, threads: int, preset: str = "tiny") -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as work:
        return _run(work, init, steps, repeats, threads, preset)


def _run(work: str, init: str | None, steps: int, repeats: int, threads: int, preset: str) -> dict:
    import torch
    from datasets import Dataset

    from trainers.grpo import trainer_class
    from trainers.models import build_tiny_model
    from trainers import presets
    from trainers.rl import make_trainer
    from trainers.rl_config import RLRunConfig, from_layers

    torch.set_num_threads(threads)
    model = init
    if init is None:
        model = f"{work}/init"
        build_tiny_model(preset, model)

    def config(tag: str, algo: str) -> RLRunConfig:
        return from_layers(algo, *presets.section(preset, "rl", algo), {
            "preset": preset, "init": model, "out": f"{work}/{tag}", "max_steps": steps, "learning_rate": 1e-12,
            "eval_every": 0, "save_steps": 10**6, "threads": threads, "problem": {"min_steps": 2, "max_steps": 5}})

    arms = {"bridge": [], "plain": [], "ppo": []}
    reward_seconds = []
    for r in range(repeats):
        bridge = make_trainer(config(f"bridge{r}", "grpo"))
        func = bridge.trainer.reward_funcs[0]

        def timed(*a, _f=func, **kw):
            start = time.perf_counter()
            out = _f(*a, **kw)
            reward_seconds.append(time.perf_counter() - start)
            return out

        timed.__name__ = func.__name__
        bridge.trainer.reward_funcs[0] = timed
        bridge.trainer.train()
        arms["bridge"] += _step_times(bridge.trainer)[1:]  # the first step warms caches up

        plain_run = make_trainer(config(f"plain{r}", "grpo"))

        def zero_reward(completions, **_):
            return [0.0] * len(completions)

        plain = trainer_class()(model=plain_run.model, reward_funcs=[zero_reward], args=plain_run.trainer.args,
                            train_dataset=Dataset.from_list(plain_run.train_problems.rows()), processing_class=plain_run.tokenizer)
        plain.train()
        arms["plain"] += _step_times(plain)[1:]

        ppo = make_trainer(config(f"ppo{r}", "ppo"))
        ppo._train()
        with open(f"{work}/ppo{r}/metrics.jsonl") as f:
            arms["ppo"] += [m["step_time"] for m in map(json.loads, f) if "step_time" in m][1:]
    out = {name: summary(v) for name, v in arms.items()}
    out["reward_function_seconds"] = summary(reward_seconds[1:] or reward_seconds)
    out["ratio_bridge_over_plain"] = out["bridge"]["median"] / out["plain"]["median"]
    out["reward_share_of_bridge_step"] = out["reward_function_seconds"]["median"] / out["bridge"]["median"]
    out["settings"] = {"init": init or f"a fresh (untrained) {preset} model", "preset": preset, "steps": steps, "repeats": repeats, "threads": threads,
                       "completions_per_step": config("settings", "grpo").per_device_train_batch_size,
                       "max_completion_length": config("settings", "grpo").max_completion_length}
    return out


def table(res: dict) -> str:
    s = res["settings"]
    rows = [
        "| arm | seconds per step (median) | min | max |",
        "|---|---|---|---|",
    ]
    for name, label in (("plain", "TRL GRPOTrainer, trivial reward"), ("bridge", "ffreason GRPO (env bridge)"),
                        ("ppo", "ffreason PPO")):
        b = res[name]
        rows.append(f"| {label} | {b['median']:.3f} | {b['min']:.3f} | {b['max']:.3f} |")
    rows += [
        "",
        f"Bridge / plain step time: **{res['ratio_bridge_over_plain']:.3f}**. Time inside the bridge's reward "
        f"function (env.step for {s['completions_per_step']} completions + logging): "
        f"{res['reward_function_seconds']['median'] * 1000:.1f} ms per step, "
        f"{100 * res['reward_share_of_bridge_step']:.1f}% of a step.",
        f"{s['preset'].capitalize()} preset: {s['completions_per_step']} completions per step, budget {s['max_completion_length']} tokens, "
        f"2-5-step Mixed problems, model: {s['init']}, {s['steps']} steps x {s['repeats']} repeats, "
        f"{s['threads']} torch threads.",
    ]
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks trainer_overhead", description=__doc__)
    ap.add_argument("--init", help="model to sample from (default: a fresh tiny model)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more than one is slower on a busy machine)")
    ap.add_argument("--preset", choices=("micro", "tiny"), default="tiny", help="model size and RL step shape")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    res = run(args.init, args.steps, args.repeats, args.threads, args.preset)
    path = write("trainer_overhead", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

"""Tokens per second of the rollout path: ``trainers.generation.generate`` (Hugging Face ``generate``).

PPO's rollouts and the evaluator sample through it (TRL's GRPOTrainer has its
own sampler: ``trainer_overhead`` times that whole step). One batch is one RL
step of the preset: ``per_device_train_batch_size`` completions,
``num_generations`` per prompt, at most ``max_completion_length`` tokens at its
temperature, on 2-5-step Mixed prompts. Generated tokens count up to and
including the end-of-sequence token: an untrained model stops only when it
happens to sample that token, so its completions run long; a trained one
(``--init``) stops after its answer. One row per torch thread count: on a
machine busy with other work, threads that wait for each other can make two
slower than one."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from .common import RESULTS, summary, write

SEED = 0


def run(init: str | None, preset: str, repeats: int, threads: list[int]) -> dict:
    import torch

    from ffreason_env import ProblemConfig, generate as problem, render_prompt
    from trainers.generation import generate
    from trainers.models import build_tiny_model, load_model, resolve_model_dir
    from trainers import presets
    from trainers.rl_config import from_layers

    if init is None:
        with tempfile.TemporaryDirectory(prefix="bench_generation_") as fresh:
            build_tiny_model(preset, fresh)
            model, tokenizer = load_model(fresh)
    else:
        model, tokenizer = load_model(resolve_model_dir(init))
    rl = from_layers("grpo", *presets.section(preset, "rl", "grpo"))
    group, batch = rl.num_generations, rl.per_device_train_batch_size
    per_batch = batch // group
    config = ProblemConfig(min_steps=2, max_steps=5)
    prompts = [render_prompt(problem(config, SEED, i)) for i in range(per_batch * (repeats + 1))]
    rates: dict[int, list[float]] = {t: [] for t in threads}
    seconds: dict[int, list[float]] = {t: [] for t in threads}
    lengths = []
    for r in range(repeats + 1):  # the first batch warms up and is dropped
        for t in threads:  # the same prompts and seed for every thread count
            torch.set_num_threads(t)
            torch.manual_seed(SEED + r)
            start = time.perf_counter()
            out = generate(model, tokenizer, prompts[r * per_batch : (r + 1) * per_batch], num_samples=group,
                           temperature=rl.temperature, max_new_tokens=rl.max_completion_length,
                           batch_size=batch)
            elapsed = time.perf_counter() - start
            tokens = [c.num_tokens for row in out for c in row]
            if r:
                rates[t].append(sum(tokens) / elapsed)
                seconds[t].append(elapsed)
                lengths += tokens
    return {
        "tokens_per_second": {str(t): summary(v) for t, v in rates.items()},
        "seconds_per_batch": {str(t): summary(v) for t, v in seconds.items()},
        "tokens_per_completion": statistics.fmean(lengths),
        "settings": {"init": init or f"a fresh (untrained) {preset} model", "preset": preset, "repeats": repeats,
                     "threads": threads, "completions_per_batch": batch, "num_generations": group,
                     "max_completion_length": rl.max_completion_length, "temperature": rl.temperature,
                     "parameters": sum(p.numel() for p in model.parameters())},
    }


def table(res: dict) -> str:
    s = res["settings"]
    rows = ["| rollout path | torch threads | tokens/s (median) | min | max | seconds per batch |",
            "|---|---|---|---|---|---|"]
    for t, tps in res["tokens_per_second"].items():
        rows.append(f"| trainers.generation.generate, {s['preset']} model | {t} | {tps['median']:,.0f} | "
                    f"{tps['min']:,.0f} | {tps['max']:,.0f} | {res['seconds_per_batch'][t]['median']:.2f} |")
    rows += ["",
             f"One batch: {s['completions_per_batch']} completions ({s['num_generations']} per prompt), budget "
             f"{s['max_completion_length']} tokens, temperature {s['temperature']}, "
             f"{res['tokens_per_completion']:.1f} tokens per completion; model: {s['init']} "
             f"({s['parameters'] / 1e6:.2f} M parameters); {s['repeats']} batches after one warm-up."]
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks generation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", help="model or run directory to sample from (default: a fresh model of --preset)")
    ap.add_argument("--preset", choices=("micro", "tiny"), default="tiny", help="model size and RL step shape")
    ap.add_argument("--repeats", type=int, default=5, help="timed batches")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts, one row each")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    res = run(args.init, args.preset, args.repeats, args.threads)
    path = write("generation", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

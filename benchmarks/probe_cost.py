"""What the strategy probes add to an RL run at a preset's defaults (the issue's bound: at most 15% slower).

One process, one model, side by side: an evaluation of the preset's validation sets with no probe, the same
with the probe set sampled, and with the probe set sampled and teacher-forced (the default); and the seconds
per GRPO step (which compute the group signal in every run). The run's cost follows from the preset's schedule:
``evaluations x probe seconds / (steps x step seconds + evaluations x evaluation seconds)``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from .common import RESULTS, summary, write


def run(init: str | None, repeats: int, threads: int, preset: str, eval_n: int | None, train_steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_probes_") as work:
        return _run(work, init, repeats, threads, preset, eval_n, train_steps)


def _run(work, init, repeats, threads, preset, eval_n, train_steps) -> dict:
    import torch

    from trainers import presets
    from trainers.models import build_tiny_model
    from trainers.rl import make_trainer
    from trainers.rl_config import from_layers

    torch.set_num_threads(threads)
    model = init
    if init is None:
        model = f"{work}/init"
        build_tiny_model(preset, model, coupled=True)
    knobs = {"preset": preset, "init": model, "out": f"{work}/run", "threads": threads, "save_steps": 10**6,
             "max_steps": train_steps, "eval_every": 10**6}
    if eval_n:
        knobs["eval_n"] = eval_n
    cfg = from_layers("grpo", *presets.section(preset, "rl", "grpo"), knobs)
    defaults = from_layers("grpo", *presets.section(preset, "rl", "grpo"), {"preset": preset, "init": model,
                                                                             "out": f"{work}/defaults"})
    trainer = make_trainer(cfg)
    arms = {"greedy": (False, 0), "probe_set": (False, defaults.probe_n), "both": (True, defaults.probe_n)}
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    step = 0
    for _ in range(repeats):
        for arm, (tf, n) in arms.items():
            trainer.cfg.eval_teacher_forced = tf
            trainer.probe_set = trainer.probe_set[:0] if not n else _probe_set(trainer, n)
            step += 1
            start = time.perf_counter()
            trainer.evaluate(step)
            seconds[arm].append(time.perf_counter() - start)
    trainer.trainer.train()
    steps = [h["step_time"] for h in trainer.trainer.state.log_history if "step_time" in h][1:]
    res = {arm: summary(v) for arm, v in seconds.items()}
    res["step"] = summary(steps)
    evaluations = len(range(0, defaults.max_steps, defaults.eval_every)) + 1 if defaults.eval_every else 0
    run_seconds = defaults.max_steps * res["step"]["median"] + evaluations * res["greedy"]["median"]
    for arm in ("probe_set", "both"):
        res[f"run_overhead_{arm}"] = evaluations * (res[arm]["median"] - res["greedy"]["median"]) / run_seconds
    res["settings"] = {"init": init or f"a fresh (untrained) {preset} model", "preset": preset, "threads": threads,
                       "repeats": repeats, "eval_n": cfg.eval_n, "eval_ranges": [list(r) for r in cfg.eval_ranges],
                       "probe_n": defaults.probe_n, "probe_samples": defaults.probe_samples,
                       "max_steps": defaults.max_steps, "eval_every": defaults.eval_every, "evaluations": evaluations,
                       "max_completion_length": cfg.max_completion_length, "problem": json.loads(
                           json.dumps(cfg.problem.to_dict()))}
    return res


def _probe_set(trainer, n: int):
    from trainers.evaluation import validation_set

    return validation_set(trainer.problem_config.without_offsets(), n)


def table(res: dict) -> str:
    s = res["settings"]
    rows = ["| one evaluation | seconds (median) | min | max |", "|---|---|---|---|"]
    for arm, label in (("greedy", "greedy decoding of the validation sets, no probe"),
                       ("probe_set", f"+ probe set sampled ({s['probe_n']} problems x {s['probe_samples']} samples)"),
                       ("both", "+ probe set sampled and teacher-forced (the default)")):
        b = res[arm]
        rows.append(f"| {label} | {b['median']:.2f} | {b['min']:.2f} | {b['max']:.2f} |")
    b = res["step"]
    rows += [f"| one GRPO step (group signal included) | {b['median']:.2f} | {b['min']:.2f} | {b['max']:.2f} |", "",
             f"A default run ({s['max_steps']} steps, {s['evaluations']} evaluations) is "
             f"**{100 * res['run_overhead_both']:.1f}%** slower with the probes "
             f"({100 * res['run_overhead_probe_set']:.1f}% with the probe set sampled alone).",
             f"{s['preset'].capitalize()} preset, model: {s['init']}; {s['eval_n']} problems per validation set "
             f"({', '.join('-'.join(map(str, r)) for r in s['eval_ranges'])} steps), RL data "
             f"{s['problem']['min_steps']}-{s['problem']['max_steps']} steps, budget {s['max_completion_length']} "
             f"tokens; {s['repeats']} repeats, {s['threads']} torch thread(s)."]
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks probe_cost", description=__doc__)
    ap.add_argument("--init", help="model to probe (default: a fresh tiny model; a trained SFT model is realistic)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", choices=("micro", "tiny"), default="tiny")
    ap.add_argument("--eval-n", type=int, default=0, help="problems per validation set (0: the preset's)")
    ap.add_argument("--train-steps", type=int, default=6, help="GRPO steps timed (the first is dropped)")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    res = run(args.init, args.repeats, args.threads, args.preset, args.eval_n or None, args.train_steps)
    path = write("probe_cost", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

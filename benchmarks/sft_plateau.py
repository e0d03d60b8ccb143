"""When does the from-scratch model learn the field's arithmetic table? A plain PyTorch SFT loop, per setting.

A direct trace line ``step I OP C : A -> B`` needs ``B = A OP C``: no one of
``A``, ``C``, ``OP`` alone says anything about ``B``, so the model sits at
chance on that token until it routes all three together, then learns the
table within about a hundred steps. This benchmark measures where that
plateau ends: teacher-forced accuracy on the tokens after ``->`` of held-out
*direct* traces (searches are learnt earlier from the order of their
candidates and would hide it; ``--traces all`` scores them too), every ``--eval-every`` steps, for each
setting and seed. Settings vary the learning rate, the model's ``LlamaConfig``
(e.g. ``initializer_range``, transformers' default 0.02 unless given) and the
batch order:

- ``random``: uniform batches, packed (what ``ffreason sft`` does);
- ``length``: chunks of 64 batches sorted by length, batches shuffled (what
  it did until 2026-11-30, 619dbd9: a search's length is its answer's
  position in symbol order, so such a batch shares its answer);
- ``shape``: chunks sorted by (kind, strategy, steps), no answer shared.

The loop is plain PyTorch (AdamW, linear warm-up over 50 steps, then a
constant rate, gradient clipping at 1.0) on the packed batches of
``trainers.sft.PackedBatches``, so that nothing else varies between settings.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from .common import RESULTS, write

DEFAULT_SETTINGS = ["lr=3e-3", "lr=2e-3", "lr=1e-3", "lr=5e-4", "lr=2e-3,initializer_range=0.05"]


def parse_setting(text: str) -> dict:
    """``"lr=1e-3,initializer_range=0.05,order=length"`` -> a dict; ``lr`` and ``order`` drive the loop, the rest
    override the model's config."""
    out = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"setting: expected key=value, got {part!r} in {text!r}")
        key, value = key.strip(), value.strip()
        if key == "order":
            out[key] = value
            continue
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = float(value)
    if out.get("order", "random") not in ("random", "length", "shape"):
        raise ValueError(f"setting: order must be random, length or shape, got {out['order']!r}")
    return out


def _encode(tokenizer, record):
    from trainers.generation import chat_prompt

    p = tokenizer(chat_prompt(tokenizer, record["prompt"]), add_special_tokens=False)["input_ids"]
    c = tokenizer(record["completion"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    return {"input_ids": p + c, "labels": [-100] * len(p) + c}


def _batches(records, tokenizer, batch_size: int, order: str, seed: int):
    """Endless batches of encoded records in the given order."""
    rng = random.Random(seed)
    while True:
        chunk = [next(records) for _ in range(batch_size * 64)]
        if order == "length":
            chunk.sort(key=lambda r: len(r["completion"].split()))
        elif order == "shape":
            chunk.sort(key=lambda r: (r["kind"], r["strategy"], r["steps"]))  # stable: random within a shape
        batches = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        for b in batches:
            yield [_encode(tokenizer, r) for r in b]


def run_one(setting: dict, seed: int, arm: str, problem: dict, iters: int, eval_every: int, batch_size: int,
            preset: str, traces: str = "direct") -> dict:
    import torch

    from ffreason_env import ALIGNED, ProblemConfig, sft_records
    from trainers.models import build_tiny_model
    from trainers.sft import PackedBatches

    setting = dict(setting)
    lr, order = setting.pop("lr", 1e-3), setting.pop("order", "random")
    with tempfile.TemporaryDirectory(prefix="bench_plateau_") as tmp:
        # transformers' default initialisation unless the setting names one, whatever the preset's
        model, tokenizer = build_tiny_model(preset, tmp, seed=seed, overrides={"initializer_range": 0.02, **setting})
    config = ProblemConfig(**problem)
    collate = PackedBatches(tokenizer.pad_token_id)
    arrow = tokenizer.convert_tokens_to_ids("\u2581->")
    held_out = [r for r in sft_records(config, arm, seed=10_000 + seed, size=2000)
                if traces == "all" or ALIGNED[r["kind"]] == r["strategy"]]
    val = collate([_encode(tokenizer, r) for r in held_out[:128]])
    train = _batches(iter(sft_records(config, arm, seed=seed, size=10**9)), tokenizer, batch_size, order, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50))

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            logits = model(**val, use_cache=False).logits[:, :-1]
        model.train()
        at = (val["input_ids"][:, :-1] == arrow) & (val["labels"][:, 1:] != -100)
        return float((logits.argmax(-1) == val["labels"][:, 1:])[at].float().mean())

    model.train()
    curve, start = [], time.perf_counter()
    for step in range(1, iters + 1):
        loss = model(**collate(next(train)), use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % eval_every == 0 or step == iters:
            curve.append([step, accuracy()])
    first = next((s for s, a in curve if a > 0.5), None)
    return {"seed": seed, "curve": curve, "first_step_above_half": first, "final": curve[-1][1],
            "seconds": time.perf_counter() - start}


def table(res: dict) -> str:
    seeds = res["settings"]["seeds"]
    rows = ["| setting | " + " | ".join(f"seed {s}: past 0.5 at" for s in seeds) + " | final accuracy |",
            "|---|" + "---|" * len(seeds) + "---|"]
    for name, runs in res["runs"].items():
        firsts = [str(r["first_step_above_half"] or f"not by {r['curve'][-1][0]}") for r in runs]
        finals = " / ".join(f"{r['final']:.2f}" for r in runs)
        rows.append(f"| {name} | " + " | ".join(firsts) + f" | {finals} |")
    s = res["settings"]
    scored = "direct traces" if s["traces"] == "direct" else "traces (searches included)"
    rows += ["", f"Teacher-forced accuracy on the tokens after `->` in 128 held-out {scored}; arm {s['arm']}, "
             f"problems {s['problem']}, batch {s['batch_size']}, {s['iters']} steps, model {s['preset']}, "
             f"evaluated every {s['eval_every']} steps (chance is 1/p)."]
    return "\n".join(rows)


def main(argv=None) -> None:
    from trainers.models import PRESETS

    ap = argparse.ArgumentParser(prog="python -m benchmarks sft_plateau", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                    help="one run per setting and seed: key=value pairs, comma-separated (lr, order, and LlamaConfig "
                         "fields such as initializer_range)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arm", default="F", choices=("F", "B", "FB"))
    ap.add_argument("--problem", default='{"min_steps": 1, "max_steps": 1, "problem_types": ["evaluation"]}',
                    help="ProblemConfig fields as JSON (default: 1-step evaluation problems)")
    ap.add_argument("--iters", type=int, default=700, help="optimizer steps per run")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--preset", default="tiny", choices=tuple(PRESETS), help="model size (trainers.models.PRESETS)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--traces", choices=("direct", "all"), default="direct",
                    help="held-out traces scored: direct ones only, or all the arm writes (searches included)")
    ap.add_argument("--name", default="sft_plateau", help="results file name (several comparisons can be kept)")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)

    import json

    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    problem = json.loads(args.problem)
    settings = {name: parse_setting(name) for name in args.settings}
    runs = {}
    for name, setting in tqdm(settings.items(), desc="settings"):
        runs[name] = [run_one(setting, seed, args.arm, problem, args.iters, args.eval_every, args.batch_size,
                              args.preset, args.traces) for seed in args.seeds]
    res = {"settings": {"seeds": args.seeds, "arm": args.arm, "problem": problem, "iters": args.iters,
                        "eval_every": args.eval_every, "batch_size": args.batch_size, "preset": args.preset,
                        "traces": args.traces},
           "runs": runs}
    path = write(args.name, res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

"""The Qwen path on one GPU, without a download: LoRA SFT, GRPO steps and one evaluation of a model of
Qwen2.5-1.5B's shape.

The model is the stand-in of trainers/stand_in.py at shape ``1.5b`` (Qwen2.5-1.5B-Instruct's config, random
weights, its 151,936-entry embedding, so the embedding and LM head cost what they cost) with the byte-level BPE
tokenizer trained here; the recipe is the ``qwen1.5b`` preset's (LoRA r 64, bf16, beta 0.05, the ratio budget,
gradient checkpointing, micro-batches of 8), shortened: ``--sft-steps`` SFT steps, ``--grpo-steps`` GRPO steps,
one greedy evaluation of ``--eval-n`` problems per validation set before training. GRPO runs once with
transformers' ``generate`` and once with vLLM colocated where vLLM is installed, each part in a process of its
own (a colocated engine keeps its memory). Reported: seconds per step, tokens per second, evaluation seconds and
peak GPU memory (torch's allocator; vLLM's own reservation is ``vllm_gpu_memory_utilization`` of the GPU). A
random model's responses run to the budget, so rollouts and evaluations cost their maximum. ``--shape micro
--device cpu`` runs the same code in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from .common import RESULTS, write


def _peak_memory() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def _sft(model_dir: str, out: str, steps: int, gpu: bool) -> dict:
    from trainers import presets
    from trainers.settings import merge
    from trainers.sft import SFTRunConfig, run_sft

    section = presets.load("qwen1.5b")["sft"]
    batch = section["per_device_train_batch_size"]
    cfg = merge(SFTRunConfig, section, {"model_name_or_path": model_dir, "out": out, "examples": steps * batch,
                                        "num_train_epochs": 1, "eval_n": 0, "bf16": gpu, "save_steps": 0})
    summary = run_sft(cfg)
    return {"steps": summary["optimizer_steps"], "seconds_per_step": summary["train_seconds"] / summary["optimizer_steps"],
            "tokens_per_second": summary["tokens_per_second"], "peak_gib": _peak_memory()}


def _grpo(init: str, out: str, steps: int, eval_n: int, vllm: bool, gpu: bool) -> dict:
    from trainers import presets
    from trainers.rl import make_trainer
    from trainers.rl_config import from_layers

    p = presets.load("qwen1.5b")
    cfg = from_layers("grpo", p["rl"], p["grpo"], {
        "init": init, "out": out, "max_steps": steps, "eval_every": 0, "eval_n": eval_n, "save_steps": steps,
        "use_vllm": vllm, "bf16": gpu, "problem": {"min_steps": 6, "max_steps": 9},
        **({} if gpu else {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "num_generations": 4,
                           "prompts": 8, "eval_max_new_tokens": 32}),
    })
    run = make_trainer(cfg)
    start = time.perf_counter()
    run.evaluate()
    eval_seconds = time.perf_counter() - start
    summary = run.train()
    with open(os.path.join(out, "completions.jsonl")) as f:
        tokens = sum(json.loads(line)["num_tokens"] for line in f)
    return {"steps": summary["steps"], "seconds_per_step": summary["seconds_per_step"],
            "completion_tokens_per_second": tokens / summary["train_seconds"], "eval_seconds": eval_seconds,
            "eval_problems": eval_n * len(cfg.eval_ranges), "max_completion_length": cfg.max_completion_length,
            "peak_gib": _peak_memory()}


def _part(argv: list[str]) -> None:
    """One part in this process: ``sft MODEL OUT STEPS`` or ``grpo INIT OUT STEPS EVAL_N VLLM``; prints its JSON."""
    import torch

    gpu = torch.cuda.is_available()
    if argv[0] == "sft":
        result = _sft(argv[1], argv[2], int(argv[3]), gpu)
    else:
        result = _grpo(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5] == "1", gpu)
    print("RESULT " + json.dumps(result))


def _spawn(args: list[str], env: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "gpu_smoke", "--part", *args], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise RuntimeError(f"gpu_smoke part {args[0]} failed (exit {done.returncode})")
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


def run(shape: str, device: str, sft_steps: int, grpo_steps: int, eval_n: int, work: str) -> dict:
    import importlib.util

    import torch

    from trainers.stand_in import build_stand_in

    env = {**os.environ, **({"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {})}
    model_dir = os.path.join(work, "model")
    start = time.perf_counter()
    with torch.device("cuda" if device == "cuda" else "cpu"):
        model, _ = build_stand_in(model_dir, shape)
    res = {"shape": shape, "device": device, "parameters": sum(p.numel() for p in model.parameters()),
           "build_seconds": time.perf_counter() - start}
    if device == "cuda":
        res["gpu"] = torch.cuda.get_device_name()
    del model
    res["sft"] = _spawn(["sft", model_dir, os.path.join(work, "sft"), str(sft_steps)], env)
    variants = [False] + ([True] if device == "cuda" and importlib.util.find_spec("vllm") else [])
    for vllm in variants:
        name = "grpo_vllm" if vllm else "grpo"
        res[name] = _spawn(["grpo", os.path.join(work, "sft"), os.path.join(work, name), str(grpo_steps),
                            str(eval_n), "1" if vllm else "0"], env)
    if len(variants) == 1:
        res["grpo_vllm"] = None  # vLLM not installed (or no GPU)
    res["seconds"] = time.perf_counter() - start
    return res


def table(res: dict) -> str:
    def gib(x):
        return "-" if x is None else f"{x:.1f}"

    lines = [f"Model: the stand-in at shape {res['shape']} ({res['parameters'] / 1e9:.2f}B parameters) on "
             f"{res.get('gpu', res['device'])}; {res['seconds']:.0f} s in all.", "",
             "| part | steps | s / step | tokens / s | evaluation | peak GPU memory (GiB) |", "|---|---|---|---|---|---|"]
    s = res["sft"]
    lines.append(f"| LoRA SFT | {s['steps']} | {s['seconds_per_step']:.2f} | {s['tokens_per_second']:.0f} (trained) | "
                 f"- | {gib(s['peak_gib'])} |")
    for name, label in (("grpo", "GRPO, transformers generate"), ("grpo_vllm", "GRPO, vLLM colocated")):
        g = res.get(name)
        if g is None:
            lines.append(f"| {label} | not run (vLLM not installed) | | | | |")
            continue
        lines.append(f"| {label} | {g['steps']} | {g['seconds_per_step']:.2f} | "
                     f"{g['completion_tokens_per_second']:.0f} (sampled) | {g['eval_seconds']:.0f} s for "
                     f"{g['eval_problems']} problems, budget {g['max_completion_length']} | {gib(g['peak_gib'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = list(sys.argv[2:] if argv is None else argv)
    if argv[:1] == ["--part"]:
        return _part(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m benchmarks gpu_smoke", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="1.5b", help="stand-in shape: 1.5b (Qwen2.5-1.5B's) or micro")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--sft-steps", type=int, default=10)
    ap.add_argument("--grpo-steps", type=int, default=10)
    ap.add_argument("--eval-n", type=int, default=50, help="problems per validation set of the one evaluation")
    ap.add_argument("--work", default=None, help="directory for the model and runs (default: a temporary one)")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("gpu_smoke: no GPU here; --device cpu --shape micro runs the same code on a CPU")
    work = args.work or tempfile.mkdtemp(prefix="gpu_smoke_")
    res = run(args.shape, args.device, args.sft_steps, args.grpo_steps, args.eval_n, work)
    path = write("gpu_smoke", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

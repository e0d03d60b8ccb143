"""Where the tiny pipeline's time goes, against what this CPU can do at the tiny model's shapes.

First the machine: the attainable matmul rate for the shapes of one decode
step (a row per sequence of the RL batch) and of one SFT step (a packed
batch's tokens, forward and backward), in float32 and bfloat16, and the
memory bandwidth (a decode step reads the whole KV cache). Then the stages,
each with the fraction of that rate it reaches: SFT tokens per second
(``run_sft`` of the preset, model FLOPs = 6 x linear parameters x tokens),
rollouts of one RL batch through Hugging Face ``generate`` and through
:mod:`trainers.decoder` side by side (same model, prompts and seed; whether
their greedy and seeded tokens agree), and seconds per GRPO step with each
rollout path. Rates are medians of repeats; one torch thread unless
``--threads``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from .common import RESULTS, summary, write

SEED = 0


def _timed(fn, min_seconds: float = 0.2) -> float:
    """Seconds per call of ``fn`` (after one warm-up call), over at least ``min_seconds``."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def linear_shapes(config) -> list[tuple[int, int]]:
    """(in, out) of every matmul of one token's forward pass: each layer's projections, then the LM head."""
    h, inter = config.hidden_size, config.intermediate_size
    d = getattr(config, "head_dim", None) or h // config.num_attention_heads
    kv = (config.num_key_value_heads or config.num_attention_heads) * d
    layer = [(h, config.num_attention_heads * d), (h, kv), (h, kv), (config.num_attention_heads * d, h),
             (h, inter), (h, inter), (inter, h)]
    return layer * config.num_hidden_layers + [(h, config.vocab_size)]


def matmul_rate(rows: int, shapes, dtype, backward: bool = False, repeats: int = 3) -> dict:
    """GFLOP/s of the chain of ``shapes`` at ``rows`` rows (with ``backward``: also both gradient matmuls)."""
    import torch

    pairs = []
    for k, n in shapes:
        x, w = torch.randn(rows, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        pairs.append((x, w, torch.randn(rows, n, dtype=dtype)))
    flops = sum(2 * rows * k * n for k, n in shapes) * (3 if backward else 1)

    def chain():
        for x, w, g in pairs:
            torch.nn.functional.linear(x, w)
            if backward:
                g @ w  # gradient of the input
                g.t() @ x  # gradient of the weight

    return summary([flops / _timed(chain) / 1e9 for _ in range(repeats)])


def bandwidth(megabytes: int = 256, repeats: int = 3) -> dict:
    """GB/s of a large copy (bytes read + written)."""
    import torch

    a = torch.empty(megabytes * 2**20 // 4)
    b = torch.empty_like(a)
    return summary([2 * a.numel() * 4 / _timed(lambda: b.copy_(a)) / 1e9 for _ in range(repeats)])


def machine_rates(config, batch_rows: int, sft_rows: int, repeats: int) -> dict:
    import torch

    shapes = linear_shapes(config)
    rates = {"decode_fp32": matmul_rate(batch_rows, shapes, torch.float32, repeats=repeats),
             "sft_fp32": matmul_rate(sft_rows, shapes, torch.float32, backward=True, repeats=repeats),
             "decode_bf16": matmul_rate(batch_rows, shapes, torch.bfloat16, repeats=repeats),
             "sft_bf16": matmul_rate(sft_rows, shapes, torch.bfloat16, backward=True, repeats=repeats),
             "bandwidth_GBps": bandwidth(repeats=repeats)}
    rates["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return rates


def sft_stage(preset: str, steps: int, work: str) -> dict:
    """tokens/s of ``run_sft`` with the preset's settings for ``steps`` optimizer steps."""
    from trainers import presets
    from trainers.settings import merge
    from trainers.sft import SFTRunConfig, run_sft

    cfg = merge(SFTRunConfig, *presets.section(preset, "sft"),
                {"preset": preset, "out": f"{work}/sft", "eval_n": 0, "logging_steps": steps})
    cfg.examples = steps * cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    cfg.num_train_epochs = 1
    s = run_sft(cfg)
    return {"tokens_per_second": s["train_tokens"] / s["train_seconds"], "tokens": s["train_tokens"],
            "seconds_per_step": s["train_seconds"] / s["optimizer_steps"], "steps": s["optimizer_steps"],
            "rows_per_step": s["train_tokens"] / s["optimizer_steps"], "model_dir": f"{work}/sft/model"}


def rollout_stage(model, tokenizer, rl, steps: tuple[int, int], repeats: int) -> dict:
    """One RL batch (``num_generations`` samples of ``per_device_train_batch_size // num_generations`` prompts)
    per repeat through each backend, alternating; the same prompts and seed for both."""
    import torch

    from ffreason_env import ProblemConfig, generate as problem, render_prompt
    from trainers.generation import chat_prompt, generate_ids

    config = ProblemConfig(min_steps=steps[0], max_steps=steps[1])
    per_batch = rl.per_device_train_batch_size // rl.num_generations
    batches = []
    for r in range(repeats + 1):
        texts = [chat_prompt(tokenizer, render_prompt(problem(config, SEED, r * per_batch + i)))
                 for i in range(per_batch)]
        enc = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
        batches.append((enc["input_ids"], enc["attention_mask"]))
    kw = dict(max_new_tokens=rl.max_completion_length, eos_token_id=tokenizer.eos_token_id,
              pad_token_id=tokenizer.pad_token_id)
    backends = {"transformers": "transformers", "decoder": "auto"}
    seconds = {b: [] for b in backends}
    tokens = {b: [] for b in backends}
    widths = {b: [] for b in backends}
    same_samples = True
    for r, (ids, mask) in enumerate(batches):  # the first batch warms up and is dropped
        outs = {}
        for name, backend in backends.items():
            torch.manual_seed(SEED + r)
            start = time.perf_counter()
            out = generate_ids(model, ids, mask, do_sample=True, temperature=rl.temperature, top_p=rl.top_p,
                               num_return_sequences=rl.num_generations, backend=backend, **kw)
            elapsed = time.perf_counter() - start
            new = out[:, ids.shape[1]:]
            outs[name] = out
            if r:
                seconds[name].append(elapsed)
                ended = (new == tokenizer.eos_token_id).int()
                length = torch.where(ended.any(1), ended.argmax(1) + 1, new.shape[1])
                tokens[name].append(int(length.sum()))
                widths[name].append(new.shape[1])
        same_samples &= torch.equal(outs["transformers"], outs["decoder"])
    ids, mask = batches[1]
    greedy = [generate_ids(model, ids, mask, do_sample=False, backend=b, **kw) for b in backends.values()]
    res = {name: {"tokens_per_second": summary([t / s for t, s in zip(tokens[name], seconds[name])]),
                  "seconds_per_batch": summary(seconds[name]),
                  "ms_per_token_step": summary([1000 * s / w for s, w in zip(seconds[name], widths[name])])}
           for name in backends}
    res["speedup"] = res["transformers"]["seconds_per_batch"]["median"] / res["decoder"]["seconds_per_batch"]["median"]
    res["same_greedy_tokens"] = torch.equal(*greedy)
    res["same_samples_under_seed"] = bool(same_samples)
    res["tokens_per_completion"] = statistics.fmean(tokens["decoder"]) / rl.per_device_train_batch_size
    res["prompt_tokens"] = int(batches[1][0].shape[1])
    return res


def grpo_stage(init: str, preset: str, steps: int, work: str, threads: int) -> dict:
    """Seconds per GRPO step (the first dropped) with the decoder and with TRL's ``generate`` path."""
    from trl import GRPOTrainer

    from trainers import presets
    from trainers.rl import make_trainer
    from trainers.rl_config import from_layers

    out = {}
    for arm in ("decoder", "transformers"):
        run = make_trainer(from_layers("grpo", *presets.section(preset, "rl", "grpo"), {
            "preset": preset, "init": init, "out": f"{work}/grpo_{arm}", "max_steps": steps + 1,
            "eval_every": 0, "save_steps": 10**6, "threads": threads, "learning_rate": 1e-12}))
        if arm == "transformers":  # TRL's own generation step on the same trainer
            run.trainer._generate_single_turn = GRPOTrainer._generate_single_turn.__get__(run.trainer)
        run.trainer.train()
        out[arm] = summary([h["step_time"] for h in run.trainer.state.log_history if "step_time" in h][1:])
    out["speedup"] = out["transformers"]["median"] / out["decoder"]["median"]
    return out


def run(init: str | None, preset: str, threads: int, repeats: int, sft_steps: int, grpo_steps: int,
        steps: tuple[int, int]) -> dict:
    import torch

    from trainers import presets
    from trainers.models import load_model, resolve_model_dir
    from trainers.rl_config import from_layers

    torch.set_num_threads(threads)
    rl = from_layers("grpo", *presets.section(preset, "rl", "grpo"))
    with tempfile.TemporaryDirectory(prefix="bench_roofline_") as work:
        sft = sft_stage(preset, sft_steps, work)
        trained = sft.pop("model_dir")
        model_dir = resolve_model_dir(init) if init else trained
        model, tokenizer = load_model(model_dir)
        model.eval()
        config = model.config
        rates = machine_rates(config, rl.per_device_train_batch_size, int(sft["rows_per_step"]), repeats)
        rollout = rollout_stage(model, tokenizer, rl, steps, repeats)
        grpo = grpo_stage(model_dir, preset, grpo_steps, work, threads)
    linear = sum(k * n for k, n in linear_shapes(config))
    sft["model_GFLOPs"] = 6 * linear * sft["tokens_per_second"] / 1e9
    sft["fraction_of_attainable"] = sft["model_GFLOPs"] / rates["sft_fp32"]["median"]
    rows = rl.per_device_train_batch_size
    kv_per_token = 2 * config.num_hidden_layers * (config.num_key_value_heads or config.num_attention_heads) * \
        (getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads) * 4
    mean_context = rollout["prompt_tokens"] + rl.max_completion_length / 2
    floors = {"arithmetic_ms": 1000 * 2 * linear * rows / (rates["decode_fp32"]["median"] * 1e9),
              "kv_cache_ms": 1000 * kv_per_token * rows * mean_context / (rates["bandwidth_GBps"]["median"] * 1e9)}
    for name in ("transformers", "decoder"):
        step = rollout[name]["ms_per_token_step"]["median"]
        rollout[name]["fraction_of_floor"] = (floors["arithmetic_ms"] + floors["kv_cache_ms"]) / step
    rollout["floor_per_token_step"] = floors
    return {"rates": rates, "sft": sft, "rollout": rollout, "grpo": grpo,
            "settings": {"init": init or f"the SFT benchmark's model ({sft_steps} steps of the {preset} recipe)",
                         "preset": preset, "threads": threads, "repeats": repeats, "sft_steps": sft_steps,
                         "grpo_steps": grpo_steps, "rl_steps": list(steps), "rows": rows,
                         "num_generations": rl.num_generations, "max_completion_length": rl.max_completion_length,
                         "temperature": rl.temperature, "linear_parameters": linear,
                         "model_type": config.model_type}}


def table(res: dict) -> str:
    r, sft, ro, g, s = res["rates"], res["sft"], res["rollout"], res["grpo"], res["settings"]
    rows = [
        "| what | measured | attainable here | fraction |",
        "|---|---|---|---|",
        f"| matmul, decode shapes ({s['rows']} rows), float32 | | {r['decode_fp32']['median']:.0f} GFLOP/s | |",
        f"| matmul, SFT shapes ({sft['rows_per_step']:.0f} rows, forward + backward), float32 | | "
        f"{r['sft_fp32']['median']:.0f} GFLOP/s | |",
        f"| matmul, decode shapes, bfloat16 | | {r['decode_bf16']['median']:.0f} GFLOP/s | |",
        f"| matmul, SFT shapes, bfloat16 | | {r['sft_bf16']['median']:.0f} GFLOP/s | |",
        f"| memory bandwidth (copy) | | {r['bandwidth_GBps']['median']:.1f} GB/s | |",
        f"| SFT, {s['preset']} recipe | {sft['tokens_per_second']:,.0f} tokens/s = {sft['model_GFLOPs']:.1f} GFLOP/s"
        f" ({sft['seconds_per_step']:.2f} s per step) | {r['sft_fp32']['median']:.0f} GFLOP/s | "
        f"{100 * sft['fraction_of_attainable']:.0f}% |",
    ]
    floor = ro["floor_per_token_step"]
    for name, label in (("transformers", "rollout, Hugging Face generate"), ("decoder", "rollout, trainers.decoder")):
        b = ro[name]
        rows.append(f"| {label} | {b['tokens_per_second']['median']:,.0f} tokens/s, "
                    f"{b['ms_per_token_step']['median']:.2f} ms per token step | "
                    f"{floor['arithmetic_ms'] + floor['kv_cache_ms']:.2f} ms (arithmetic {floor['arithmetic_ms']:.2f}"
                    f" + KV cache {floor['kv_cache_ms']:.2f}) | {100 * b['fraction_of_floor']:.0f}% |")
    for name, label in (("transformers", "GRPO step, TRL's generate"), ("decoder", "GRPO step, trainers.decoder")):
        rows.append(f"| {label} | {g[name]['median']:.2f} s per step | | |")
    rows += [
        "",
        f"trainers.decoder / generate: **{ro['speedup']:.2f}x** per rollout batch, **{g['speedup']:.2f}x** per "
        f"GRPO step. Greedy tokens identical: {'yes' if ro['same_greedy_tokens'] else 'NO'}; sampled tokens "
        f"identical under the same seed: {'yes' if ro['same_samples_under_seed'] else 'no'}.",
        f"Rollout batch: {s['rows']} completions ({s['num_generations']} per prompt) of {s['rl_steps'][0]}-"
        f"{s['rl_steps'][1]}-step Mixed prompts ({ro['prompt_tokens']} tokens padded), budget "
        f"{s['max_completion_length']}, temperature {s['temperature']}, {ro['tokens_per_completion']:.1f} tokens "
        f"per completion; a token step is one forward of the whole batch. Floors: model FLOPs at the decode "
        f"matmul rate, and the KV cache of the mean context read once at the copy bandwidth.",
        f"Model: {s['init']}, {s['model_type']}, {s['linear_parameters'] / 1e6:.2f} M parameters in matmuls; "
        f"CPU capability {r['cpu_capability']}; {s['repeats']} repeats, {s['sft_steps']} SFT steps, "
        f"{s['grpo_steps']} GRPO steps per arm after one dropped.",
    ]
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks roofline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", help="model or run directory for the rollout and GRPO rows (default: the model the "
                                   "SFT row trains)")
    ap.add_argument("--preset", choices=("micro", "tiny"), default="tiny", help="model, SFT and RL settings")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of each rate and rollout batch")
    ap.add_argument("--sft-steps", type=int, default=40, help="optimizer steps of the SFT row")
    ap.add_argument("--grpo-steps", type=int, default=5, help="timed GRPO steps per arm")
    ap.add_argument("--steps", default="6-9", help="chain lengths of the rollout prompts (the demo's last stage)")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    from .common import steps_range

    res = run(args.init, args.preset, args.threads, args.repeats, args.sft_steps, args.grpo_steps,
              steps_range(args.steps))
    path = write("roofline", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

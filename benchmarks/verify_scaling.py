"""What longer problems cost: verify time against response length, and prompt / trace lengths.

For each kind (evaluation, inversion), strategy (forward, backward: on each
kind one is direct, the other a search) and chain length, ``n`` problems and
their reference traces. Verify time per response is the median over
``repeats`` timings of all ``n``. A least-squares line, time = a + b * bytes
per (kind, strategy), shows the cost is linear in the response: its R^2, and
ns per byte at the shortest and longest chains. Times are CPU seconds of this
process, and each pass times every cell once, so that other load on a shared
machine neither counts nor favours some lengths.

Lengths are what ``max_prompt_length`` / ``max_completion_length`` must hold:
the prompt as the model sees it (chat template included) and the trace plus
its end-of-sequence token, in tokens of the project's word-level tokenizer
(``trainers.tokenizer.build_tokenizer()``, built at run time), and in
characters, a proxy for BPE models.
"""

from __future__ import annotations

import argparse
import statistics
import time

from .common import RESULTS, steps_range, summary, write

SEED = 0
KINDS = ("evaluation", "inversion")
SHORT = {"evaluation": "eval.", "inversion": "inv."}
STRATEGIES = ("forward", "backward")
TABLE_STEPS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 30, 40, 50)


def _token_counts(tokenizer, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _cell(kind: str, strategy: str, steps: int, n: int, p: int, tokenizer) -> tuple[dict, list, list[str]]:
    """Lengths of ``n`` reference traces of ``steps``-step ``kind`` problems, the problems and the traces."""
    from ffreason_env import ProblemConfig, generate, render_prompt, write_trace
    from trainers.generation import chat_prompt

    config = ProblemConfig(p=p, problem_types=[kind], min_steps=steps, max_steps=steps)
    problems = [generate(config, SEED, i) for i in range(n)]
    traces = [write_trace(problem, strategy) for problem in problems]
    prompts = [render_prompt(problem) for problem in problems]
    prompt_tokens = _token_counts(tokenizer, [chat_prompt(tokenizer, prompt) for prompt in prompts])
    trace_tokens = [t + 1 for t in _token_counts(tokenizer, traces)]  # + the end-of-sequence token
    cell = {
        "kind": kind, "strategy": strategy, "steps": steps, "n": n,
        "bytes": statistics.fmean(len(t.encode()) for t in traces),
        "lines": statistics.fmean(t.count("\n") + 1 for t in traces),
        "prompt_tokens": {"mean": statistics.fmean(prompt_tokens), "max": max(prompt_tokens)},
        "trace_tokens": {"mean": statistics.fmean(trace_tokens), "max": max(trace_tokens)},
        "prompt_chars": {"mean": statistics.fmean(map(len, prompts)), "max": max(map(len, prompts))},
        "trace_chars": {"mean": statistics.fmean(map(len, traces)), "max": max(map(len, traces))},
    }
    return cell, problems, traces


def _verify_seconds(problems: list, traces: list[str]) -> float:
    """CPU seconds per response to verify every trace, each of which must verify correct."""
    from ffreason_env import verify

    start = time.process_time()
    correct = sum(verify(problem, trace).correct for problem, trace in zip(problems, traces))
    elapsed = time.process_time() - start
    if correct != len(traces):
        raise RuntimeError(f"{len(traces) - correct} of {len(traces)} reference traces verified wrong")
    return elapsed / len(traces)


def _fit(cells: list[dict]) -> dict:
    """Least squares time = a + b * bytes over the cells' medians, with R^2."""
    import numpy as np

    x = np.array([c["bytes"] for c in cells])
    y = np.array([c["verify_seconds"]["median"] for c in cells])
    b, a = np.polyfit(x, y, 1)
    residual = float(((y - (a + b * x)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    return {"ns_per_byte": float(b) * 1e9, "intercept_us": float(a) * 1e6,
            "r2": 1.0 - residual / total if total else 1.0}


def run(steps: list[int], n: int, p: int, repeats: int) -> dict:
    from ffreason_env import ALIGNED
    from trainers.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.model_max_length = 1 << 30  # lengths are counted here, never fed to a model
    built = [_cell(kind, strategy, k, n, p, tokenizer) for kind in KINDS for strategy in STRATEGIES for k in steps]
    times: list[list[float]] = [[] for _ in built]
    for _ in range(repeats):  # every cell once per pass, so that a burst of load on the machine hits them all
        for j, (_, problems, traces) in enumerate(built):
            times[j].append(_verify_seconds(problems, traces))
    cells = [{**cell, "verify_seconds": summary(t)} for (cell, _, _), t in zip(built, times)]
    fits = {}
    for kind in KINDS:
        for strategy in STRATEGIES:
            mine = [c for c in cells if c["kind"] == kind and c["strategy"] == strategy]
            fits[f"{kind}/{strategy}"] = {**_fit(mine), "trace": "direct" if ALIGNED[kind] == strategy else "search"}
    return {"cells": cells, "fits": fits, "fit_all": _fit(cells),
            "settings": {"steps": steps, "n": n, "p": p, "repeats": repeats, "seed": SEED,
                         "tokenizer_vocab": len(tokenizer)}}


def _ns_per_byte(cell: dict) -> float:
    return cell["verify_seconds"]["median"] / cell["bytes"] * 1e9


def table(res: dict) -> str:
    s, cells = res["settings"], res["cells"]
    lo, hi = min(s["steps"]), max(s["steps"])
    at = {(c["kind"], c["strategy"], c["steps"]): c for c in cells}
    rows = [f"Verify time against response length, GF({s['p']}), {lo}-{hi} steps ({len(s['steps'])} lengths x "
            f"{s['n']} problems; CPU time, median of {s['repeats']} passes):", "",
            f"| kind | strategy | trace | slope (ns/byte) | R^2 | ns/byte at {lo} step(s) | ns/byte at {hi} | "
            f"µs per line at {hi} | µs per response at {hi} | bytes at {hi} |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for key, fit in res["fits"].items():
        kind, strategy = key.split("/")
        first, last = at[kind, strategy, lo], at[kind, strategy, hi]
        rows.append(f"| {kind} | {strategy} | {fit['trace']} | {fit['ns_per_byte']:.1f} | {fit['r2']:.4f} | "
                    f"{_ns_per_byte(first):.1f} | {_ns_per_byte(last):.1f} | "
                    f"{last['verify_seconds']['median'] * 1e6 / last['lines']:.1f} | "
                    f"{last['verify_seconds']['median'] * 1e6:,.0f} | {last['bytes']:,.0f} |")
    rows += ["", f"All {len(cells)} cells on one line: {res['fit_all']['ns_per_byte']:.1f} ns per byte, "
             f"R^2 {res['fit_all']['r2']:.4f}.", ""]
    shown = [k for k in TABLE_STEPS if k in s["steps"]] or s["steps"]
    columns = [(kind, strategy) for kind in KINDS for strategy in STRATEGIES]
    head = " | ".join(f"{SHORT[kind]} {strategy} ({res['fits'][f'{kind}/{strategy}']['trace']})"
                      for kind, strategy in columns)
    for unit, what, extra in (("tokens", f"tokens of the word-level tokenizer ({s['tokenizer_vocab']} entries)",
                               ": prompt with the chat template, trace + end-of-sequence token"),
                              ("chars", "characters", "")):
        rows += [f"Lengths in {what}, mean / max over {s['n']} problems{extra}:", "",
                 f"| steps | prompt | {head} |", "|---" * (2 + len(columns)) + "|"]
        for k in shown:
            prompts = [at[c + (k,)][f"prompt_{unit}"] for c in columns]
            prompt = f"{statistics.fmean(q['mean'] for q in prompts):,.0f} / {max(q['max'] for q in prompts):,}"
            traces = " | ".join(f"{at[c + (k,)][f'trace_{unit}']['mean']:,.0f} / {at[c + (k,)][f'trace_{unit}']['max']:,}"
                                for c in columns)
            rows.append(f"| {k} | {prompt} | {traces} |")
        rows.append("")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks verify_scaling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=steps_range, default=(1, 50), help="chain lengths, e.g. 1-50")
    ap.add_argument("--n", type=int, default=50, help="problems per (kind, strategy, steps)")
    ap.add_argument("--p", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    res = run(list(range(args.steps[0], args.steps[1] + 1)), args.n, args.p, args.repeats)
    path = write("verify_scaling", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

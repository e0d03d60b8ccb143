"""What each preset's RL generation budget lets through: aligned traces that fit, searches that are cut.

For every preset and RL data range, the budget its RL runs get (``max_completion_length``, or ``budget_ratio``
times the longest aligned trace, trainers/budget.py) in the preset's own tokenizer, and over a validation set of
that range the share of aligned traces that fit it and of searches (the other strategy) it cuts. The tokenizers:
the word-level one the from-scratch presets build, and for ``qwen1.5b`` the byte-level BPE stand-in
(trainers/stand_in.py: Qwen's pre-tokenizer, a vocabulary trained on the task's text), which splits numbers into
digits as Qwen's does but may merge words otherwise than Qwen's 151k vocabulary. Token counts only, no model.
"""

from __future__ import annotations

import argparse

from .common import RESULTS, steps_range, write

RANGES = ((2, 5), (6, 9), (6, 15))


def _tokenizer(preset: str):
    from trainers import presets

    name = presets.load(preset)["sft"].get("model_name_or_path")
    if name is None:
        from trainers.tokenizer import build_tokenizer

        return build_tokenizer(), "word-level (the from-scratch model's)"
    from trainers.stand_in import build_bpe_tokenizer

    return build_bpe_tokenizer(), f"byte-level BPE stand-in for {name}"


def run(preset_names: list[str], ranges: list[tuple[int, int]], n: int) -> dict:
    from ffreason_env import ProblemConfig
    from trainers import presets
    from trainers.budget import budget_shares, ratio_budget
    from trainers.evaluation import validation_set

    rows = []
    for preset in preset_names:
        tokenizer, what = _tokenizer(preset)
        rl = presets.load(preset)["rl"]
        for lo, hi in ranges:
            config = ProblemConfig(min_steps=lo, max_steps=hi)
            ratio = rl.get("budget_ratio", 0.0)
            budget = ratio_budget(tokenizer, config, ratio) if ratio else rl["max_completion_length"]
            rows.append({"preset": preset, "tokenizer": what, "steps": f"{lo}-{hi}", "budget_ratio": ratio,
                         "budget": budget, **budget_shares(tokenizer, validation_set(config, n), budget)})
    return {"n": n, "rows": rows}


def table(res: dict) -> str:
    lines = ["| preset | tokenizer | RL data | budget (tokens) | aligned traces that fit | searches cut | "
             "longest aligned | median search |", "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        rule = f"{r['budget_ratio']} x longest aligned = {r['budget']}" if r["budget_ratio"] else str(r["budget"])
        lines.append(f"| {r['preset']} | {r['tokenizer']} | {r['steps']} | {rule} | {r['aligned_fit']:.1%} | "
                     f"{r['search_cut']:.1%} | {r['longest_aligned']} | {r['median_search']} |")
    return "\n".join(lines) + (f"\n\nShares over {res['n']} validation problems of each range (GF(11), evaluation "
                               f"and inversion); lengths include the end-of-turn token.")


def main(argv=None) -> None:
    from trainers import presets

    ap = argparse.ArgumentParser(prog="python -m benchmarks budget", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=[p for p in presets.names() if p != "micro"])
    ap.add_argument("--steps", type=steps_range, nargs="+", default=list(RANGES), help="RL data ranges, e.g. 6-9")
    ap.add_argument("--n", type=int, default=400, help="validation problems per range")
    ap.add_argument("--out", default=RESULTS, help="results folder (default: benchmarks/results)")
    args = ap.parse_args(argv)
    res = run(args.presets, args.steps, args.n)
    path = write("budget", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")

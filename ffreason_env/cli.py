"""``python -m ffreason_env``: print sample problems with traces and verdicts, export datasets."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import sys
import textwrap
import typing
from typing import Sequence

from .config import ProblemConfig
from .export import ARMS, rl_records, sft_records, to_dataset, write_jsonl
from .problem import generate
from .prompts import PROMPT_STYLES, SHOT_STRATEGIES, PromptStyle, render_prompt
from .traces import ALIGNED, STRATEGIES, write_trace
from .verifier import verify

__all__ = ["main", "add_config_args", "config_from_args"]


def _field_docs(cls) -> dict[str, str]:
    """The docstring under each field of a dataclass (the text ``--help`` shows), read from its source."""
    docs, body = {}, ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    for node, after in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr) \
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[node.target.id] = " ".join(after.value.value.split()).replace("%", "%%")
    return docs


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """Every ProblemConfig field as an option named after it (``--problem.min-steps``), help from its docstring,
    defaults ProblemConfig's: the spelling ``ffreason``'s commands use for their problem settings too."""
    g = parser.add_argument_group("problem config (ProblemConfig fields)")
    hints, docs, default = typing.get_type_hints(ProblemConfig), _field_docs(ProblemConfig), ProblemConfig()
    for f in dataclasses.fields(ProblemConfig):
        kind, value = hints[f.name], getattr(default, f.name)
        options: dict = {"dest": f.name, "default": value,
                         "help": f"{docs.get(f.name, '')} (default: %(default)s)"}
        flag = "--problem." + f.name.replace("_", "-")
        if kind is bool:  # --problem.X / --problem.no-X, as tyro spells them
            g.add_argument(flag, action="store_true", **options)
            g.add_argument("--problem.no-" + f.name.replace("_", "-"), action="store_false", dest=f.name,
                           help=argparse.SUPPRESS)
            continue
        elif kind in (int, str):
            options["type"] = kind
        else:  # tuple[X, ...] or tuple[X, ...] | None
            (item,) = {a for t in typing.get_args(kind) for a in (typing.get_args(t) or (t,)) if a not in (type(None), ...)}
            options.update(nargs="+", type=item, metavar=item.__name__.upper())
            if value is not None:
                options["default"] = list(value)
        g.add_argument(flag, **options)


def config_from_args(args: argparse.Namespace) -> ProblemConfig:
    return ProblemConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ProblemConfig)})


def _sample(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    for index in range(args.index, args.index + args.n):
        problem = generate(config, args.seed, index)
        parts = problem.parts or (problem,)
        strategy = [ALIGNED[p.kind] if args.strategy == "aligned" else args.strategy for p in parts]
        trace = write_trace(problem, strategy if problem.parts else strategy[0])
        verdict = verify(problem, trace)
        if args.json:
            print(json.dumps({"seed": args.seed, "index": index, "prompt": render_prompt(problem),
                              "response": trace, "problem": problem.to_dict(), "verdict": verdict.to_dict()}))
            continue
        print(f"=== {problem.kind}, {problem.num_steps} steps, seed {args.seed}, index {index}, "
              f"answer {problem.symbol(problem.answer)}")
        print("--- prompt")
        print(render_prompt(problem))
        print(f"--- response ({', '.join(strategy)})")
        print(trace)
        print(f"--- verdict: correct={verdict.correct} strategy={verdict.strategy} aligned={verdict.aligned} "
              f"steps {verdict.steps_correct}/{verdict.steps_checked} well_formed={verdict.well_formed}")
        print()


def _export(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    try:
        style = PromptStyle(args.prompt_style, args.shots, args.shot_strategy)
    except ValueError as e:
        args.parser.error(str(e))
    if args.what == "verl":
        from .verl import verl_records, write_parquet

        n = write_parquet(verl_records(config, args.seed, args.n, args.split, style), args.out)
        print(f"wrote {n} verl rows to {args.out}")
        return
    if args.what == "sft":
        records = list(sft_records(config, args.arm, args.seed, args.n, style))
    else:
        records = list(rl_records(config, args.seed, args.n, chat=not args.plain_prompt, style=style))
    n = write_jsonl(records, args.out)
    print(f"wrote {n} {args.what} records to {args.out}")
    if args.hf_dataset:
        to_dataset(records).save_to_disk(args.hf_dataset)
        print(f"saved datasets.Dataset to {args.hf_dataset}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ffreason_env",
        description="Finite-field reasoning problems: inspect them, or export training data.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample", help="print problems, a reference trace for each, and its verdict",
                       description="Print problems with a reference trace and the verifier's verdict on it.")
    add_config_args(s)
    s.add_argument("--strategy", choices=[*STRATEGIES, "aligned"], default="aligned",
                   help="strategy of the trace: forward, backward, or the one that fits each kind (default)")
    s.add_argument("-n", type=int, default=3, help="number of problems (default %(default)s)")
    s.add_argument("--seed", type=int, default=0, help="problem stream seed (default %(default)s)")
    s.add_argument("--index", type=int, default=0, help="first item of the stream (default %(default)s)")
    s.add_argument("--json", action="store_true", help="print one JSON object per problem instead of text")
    s.set_defaults(func=_sample, parser=s)

    e = sub.add_parser("export", help="write SFT pairs or RL prompts as JSONL (and a datasets.Dataset), or verl parquet",
                       description="Write a dataset. sft: prompt/completion pairs of an arm (F: forward traces, "
                                   "B: backward, FB: a seeded coin per example). rl: prompts (chat messages) with "
                                   "answers and problems, for ffreason_env.trl.ffreason_reward. "
                                   "verl: RL prompts as verl's parquet (score them with ffreason_env.verl.compute_score).")
    e.add_argument("what", choices=["sft", "rl", "verl"], help="which dataset")
    add_config_args(e)
    e.add_argument("--arm", choices=sorted(ARMS), default="FB", help="SFT arm (default %(default)s)")
    e.add_argument("-n", type=int, default=2048, help="number of records (default %(default)s)")
    e.add_argument("--seed", type=int, default=0, help="problem stream seed (default %(default)s)")
    e.add_argument("--out", required=True, help="output path (.jsonl; .parquet for verl)")
    e.add_argument("--plain-prompt", action="store_true",
                   help="rl: the prompt as bare text instead of one user message (no chat template)")
    e.add_argument("--split", default="train", help="verl: the split recorded in extra_info (default %(default)s)")
    e.add_argument("--prompt-style", choices=PROMPT_STYLES, default="bare",
                   help="how the question is put: bare (the study's), instructed (the answer grammar stated first), "
                        "few_shot (solved examples first) (default %(default)s)")
    e.add_argument("--shots", type=int, default=2, help="few_shot: solved examples (default %(default)s)")
    e.add_argument("--shot-strategy", choices=SHOT_STRATEGIES, default="aligned",
                   help="few_shot: the examples' strategy (default %(default)s)")
    e.add_argument("--hf-dataset", default=None, metavar="DIR",
                   help="also save a datasets.Dataset to DIR (needs the train extra)")
    e.set_defaults(func=_export, parser=e)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n < 0:
        args.parser.error(f"-n: expected a count >= 0, got {args.n}")
    try:
        args.func(args)
    except ValueError as e:
        args.parser.error(str(e))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

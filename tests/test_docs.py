"""The examples in docs/environments.md are regenerated from the code and must match it."""

import pathlib
import re

import pytest

from ffreason_env import ALIGNED, ProblemConfig, generate, render_prompt, verify, write_trace

DOC = pathlib.Path(__file__).parent.parent / "docs" / "environments.md"
EXAMPLE = re.compile(r"<!-- example (?P<attrs>[^>]*) -->\n```text\n(?P<prompt>.*?)\n```\n\n```text\n(?P<trace>.*?)\n```", re.S)


def examples():
    found = list(EXAMPLE.finditer(DOC.read_text()))
    assert len(found) == 5
    return found


@pytest.mark.parametrize("match", examples(), ids=lambda m: m["attrs"])
def test_doc_example_matches_code(match):
    attrs = dict(kv.split("=") for kv in match["attrs"].split())
    lo, _, hi = attrs["steps"].partition("-")
    kw = dict(problem_types=[attrs["kind"]], min_steps=int(lo), max_steps=int(hi or lo))
    if "parts" in attrs:
        kw.update(min_parts=int(attrs["parts"]), max_parts=int(attrs["parts"]))
    problem = generate(ProblemConfig(**kw), int(attrs["seed"]), int(attrs["index"]))
    strategy = attrs["strategy"]
    if strategy == "aligned":
        strategy = [ALIGNED[p.kind] for p in problem.parts]
    assert render_prompt(problem) == match["prompt"]
    assert write_trace(problem, strategy) == match["trace"]
    assert verify(problem, match["trace"]).correct


def test_the_readme_environment_example_runs(capsys):
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    exec(compile(code, "README.md", "exec"), {})
    reward, strategy, aligned, *_ = capsys.readouterr().out.split()
    assert float(reward) == 1.0 and strategy == "forward" and aligned in ("True", "False")

import json
import subprocess
import sys

from ffreason_env import Problem, read_jsonl, verify
from ffreason_env.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "ffreason_env", *args], capture_output=True, text=True)


def test_sample_as_documented():
    out = run("sample", "--problem.problem-types", "inversion", "--problem.min-steps", "3", "--problem.max-steps", "3",
              "--strategy", "backward", "-n", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("=== inversion, 3 steps") == 3
    assert out.stdout.count("--- verdict: correct=True strategy=backward aligned=True steps 4/4 well_formed=True") == 3


def test_sample_json_is_verifiable(capsys):
    assert main(["sample", "--problem.problem-types", "composition", "--problem.min-steps", "1", "--problem.max-steps",
                 "2", "--problem.min-parts", "3", "--problem.max-parts", "3", "-n", "2", "--json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        d = json.loads(line)
        problem = Problem.from_dict(d["problem"])
        assert len(problem.parts) == 3 and verify(problem, d["response"]).correct
        assert d["verdict"]["correct"] and d["verdict"]["aligned"]


def test_export_sft_and_rl(tmp_path, capsys):
    out = tmp_path / "sft.jsonl"
    main(["export", "sft", "--arm", "B", "-n", "7", "--problem.min-steps", "6", "--problem.max-steps", "9",
          "--problem.p", "13", "--out", str(out)])
    records = read_jsonl(out)
    assert len(records) == 7 and all(r["strategy"] == "backward" and 6 <= r["steps"] <= 9 for r in records)
    assert "GF(13)" in records[0]["prompt"]
    main(["export", "rl", "-n", "5", "--problem.problem-types", "evaluation", "inversion", "--problem.type-weights", "1",
          "0", "--out", str(tmp_path / "rl.jsonl")])
    assert {r["kind"] for r in read_jsonl(tmp_path / "rl.jsonl")} == {"evaluation"}
    assert "wrote 5 rl records" in capsys.readouterr().out


def test_help_and_bad_input():
    h = run("sample", "--help")
    assert h.returncode == 0 and "--strategy" in h.stdout and "Fewest operations in a chain" in h.stdout
    assert "sft" in run("export", "--help").stdout
    bad = run("sample", "--problem.p", "4")
    assert bad.returncode == 2 and "p: must be prime, got 4" in bad.stderr
    bad = run("sample", "--problem.min-steps", "two")
    assert bad.returncode == 2 and "invalid int value: 'two'" in bad.stderr
    bad = run("sample", "-n", "-1")
    assert bad.returncode == 2 and "-n: expected a count" in bad.stderr


def test_the_problem_flags_are_spelt_alike_in_both_command_lines():
    """``python -m ffreason_env`` and every ``ffreason`` command that takes problems name them the same way."""
    import dataclasses
    import os
    import re

    import pytest

    pytest.importorskip("tyro")
    from ffreason_env import ProblemConfig
    from ffreason_env.cli import build_parser

    expected = {"--problem." + f.name.replace("_", "-") for f in dataclasses.fields(ProblemConfig)}
    expected.add("--problem.no-shuffle-symbols")  # a bool's negative, as tyro spells it
    sample = build_parser()._subparsers._group_actions[0].choices["sample"]
    env_flags = {o for a in sample._actions for o in a.option_strings if o.startswith("--problem.")}
    assert env_flags == expected
    for argv in (["sft", "--help"], ["rl", "--help"], ["eval", "x", "--help"]):
        out = subprocess.run([sys.executable, "-c", f"from trainers.cli import main; main({argv!r})"],
                             capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        assert set(re.findall(r"--problem\.[a-z-]+", out.stdout)) >= expected, (argv, out.stderr[-500:])

import json
import subprocess
import sys

from ffreason_env import Problem, read_jsonl, verify
from ffreason_env.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "ffreason_env", *args], capture_output=True, text=True)


def test_sample_as_documented():
    out = run("sample", "--kind", "inversion", "--steps", "3", "--strategy", "backward", "-n", "3")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("=== inversion, 3 steps") == 3
    assert out.stdout.count("--- verdict: correct=True strategy=backward aligned=True steps 4/4 well_formed=True") == 3


def test_sample_json_is_verifiable(capsys):
    assert main(["sample", "--kind", "composition", "--steps", "1-2", "--parts", "3", "-n", "2", "--json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        d = json.loads(line)
        problem = Problem.from_dict(d["problem"])
        assert len(problem.parts) == 3 and verify(problem, d["response"]).correct
        assert d["verdict"]["correct"] and d["verdict"]["aligned"]


def test_export_sft_and_rl(tmp_path, capsys):
    out = tmp_path / "sft.jsonl"
    main(["export", "sft", "--arm", "B", "-n", "7", "--steps", "6-9", "--p", "13", "--out", str(out)])
    records = read_jsonl(out)
    assert len(records) == 7 and all(r["strategy"] == "backward" and 6 <= r["steps"] <= 9 for r in records)
    assert "GF(13)" in records[0]["prompt"]
    main(["export", "rl", "-n", "5", "--kinds", "evaluation,inversion", "--weights", "1,0", "--out", str(tmp_path / "rl.jsonl")])
    assert {r["kind"] for r in read_jsonl(tmp_path / "rl.jsonl")} == {"evaluation"}
    assert "wrote 5 rl records" in capsys.readouterr().out


def test_help_and_bad_input():
    h = run("sample", "--help")
    assert h.returncode == 0 and "--strategy" in h.stdout and "operations per chain" in h.stdout
    assert "sft" in run("export", "--help").stdout
    bad = run("sample", "--p", "4")
    assert bad.returncode == 2 and "p: must be prime, got 4" in bad.stderr
    bad = run("sample", "--steps", "two")
    assert bad.returncode == 2 and "expected N or MIN-MAX" in bad.stderr
    bad = run("sample", "-n", "-1")
    assert bad.returncode == 2 and "-n: expected a count" in bad.stderr

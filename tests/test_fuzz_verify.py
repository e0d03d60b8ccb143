"""A small sample of the verifier fuzz harness (``python -m benchmarks fuzz_verify`` runs 10^6 cases)."""

import json

import pytest
from hypothesis import given, settings

import ffreason_env as fe
from benchmarks import fuzz_verify as fv

POOL = fv.problem_pool(6)


@pytest.fixture(scope="module")
def fuzzer():
    return fv.Fuzzer()


def test_seeded_cases_of_every_family_find_nothing(fuzzer):
    fuzzer.run(POOL, 3000, seed=1)
    assert fuzzer.findings() == 0, fuzzer.examples
    assert set(fuzzer.families) >= {"mutated_trace", "random_text", "grammar_soup", "answer_lines", "empty", "repeated"}


@settings(max_examples=300, deadline=None)
@given(fv.fuzz_texts(POOL))
def test_hypothesis_cases_find_nothing(fuzzer, case):
    problem, family, text = case
    assert fuzzer.check(problem, text, family) == []


def test_ten_megabyte_inputs_take_linear_time(fuzzer):
    problem = POOL[5]
    trace = fe.write_trace(problem, "backward") + "\n"
    n = fv.HUGE_BYTES
    many_lines = trace * (n // len(trace))  # the slowest shape per byte
    one_search_line = "try e0 : " + "1 add e3 : e0 -> e3 ; " * (n // 220) + "e3 = e3 no"
    for text in (many_lines, one_search_line):
        assert fuzzer.check(problem, text, "huge") == []
    assert fuzzer.largest_bytes >= n - len(trace) and fuzzer.worst_ns_per_byte < fv.MAX_NS_PER_BYTE


def test_the_harness_reports_a_verifier_that_is_lenient_strict_or_crashes(monkeypatch):
    """The oracle is independent of verify: a broken verifier shows up in the counts."""
    problem = POOL[0]
    right = problem.symbol(problem.answer)
    wrong = problem.symbol((problem.answer + 1) % problem.p)
    fuzzer = fv.Fuzzer()
    # reads the last answer line even when there are two
    monkeypatch.setattr(fv, "verify", lambda p, t: fe.verify(p, t[t.rfind("answer"):]))
    assert "wrong_rewards" in fuzzer.check(problem, f"answer {wrong}\nanswer {right}")
    monkeypatch.setattr(fv, "verify", lambda p, t: fe.verify(p, ""))
    assert "missed_rewards" in fuzzer.check(problem, fe.write_trace(problem, "forward"))

    def crash(p, t):
        raise IndexError("list index out of range")

    monkeypatch.setattr(fv, "verify", crash)
    assert fuzzer.check(problem, "step") == ["crashes: IndexError: list index out of range"]
    assert fuzzer.counts["wrong_rewards"] == fuzzer.counts["missed_rewards"] == fuzzer.counts["crashes"] == 1


def test_the_benchmark_command_runs_every_driver_and_writes_its_counts(tmp_path):
    fv.main(["--cases", "300", "--huge-every", "0", "--hypothesis", "20", "--atheris", "300", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "fuzz_verify.json").read_text())
    assert res["random"]["counts"]["cases"] == 300 and res["hypothesis"]["counts"]["cases"] == 20
    assert res["atheris"] == {"installed": False} or res["atheris"]["findings"] == 0
    assert "| seeded random | 300 | 0 | 0 | 0 | 0 | 0 |" in (tmp_path / "fuzz_verify.md").read_text()

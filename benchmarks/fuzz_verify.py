"""Fuzzing ``ffreason_env.verify`` and the env's ``step``: no exception, no reward for a wrong answer, linear time.

Every case is a problem from a fixed pool (several primes, all kinds, shuffled
and plain symbols, Greek symbol names, label offsets) and a response from one
of these families: random text over ASCII, Unicode look-alikes, odd
whitespace and arbitrary code points (lone surrogates included); soups of
grammar words; correct traces with one to four mutations (lines dropped,
duplicated, swapped or repeated; words replaced; characters swapped for
look-alikes such as Cyrillic ``е`` for ``e`` or fullwidth digits; spaces and
newlines swapped for NBSP, U+2028, ``\\r``...; the answer replaced, listed,
repeated, moved or hidden in prose); bare answer lines; empty and
whitespace-only text; long repeated patterns; and, every ``--huge-every``
cases, a 10 MB input.

Each case is checked against an oracle written from the documented rule
(docs/environments.md), not from the verifier's parser: the response is
rewarded exactly when its last non-empty line is ``answer X`` with X the
problem's answer symbol and no other line starts with the word ``answer``
(lines split on ``\\n``, words on whitespace). Findings: ``crashes`` (verify
or step raised), ``wrong_rewards`` (rewarded, oracle says no), ``missed_rewards``
(oracle says yes, not rewarded), ``bad_verdicts`` (the step's verdict differs
from verify's, or a Verdict invariant fails) and ``slow`` (more than
``MAX_NS_PER_BYTE`` of CPU time in verify on an input of at least
``TIMED_MIN_BYTES``, in the best of three timings: process time, so that a
machine shared with training runs does not count its preemptions).

Three drivers share the generator and the oracle: seeded ``random`` (the bulk:
``--cases``, reproducible per case index), hypothesis (``--hypothesis``
examples; tests/test_fuzz_verify.py runs a small sample of both) and, when it
is installed, atheris (``--atheris`` coverage-guided runs seeded with correct
traces and the grammar's words, in a child process because libFuzzer exits
when done).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from ffreason_env import LABELS, Problem, ProblemConfig, generate, verify, write_trace

from .common import RESULTS, write

__all__ = ["POOL_CONFIGS", "problem_pool", "make_case", "final_answer_is_right", "Fuzzer", "fuzz_texts"]

MAX_NS_PER_BYTE = 2000.0
"""The time bound: 2 us of CPU per byte (verify takes 0.1-0.4 us per byte on 10 MB inputs)."""
TIMED_MIN_BYTES = 16384
"""Smaller inputs are dominated by fixed costs; the bound applies from here."""
HUGE_BYTES = 10_000_000

POOL_CONFIGS: tuple[ProblemConfig, ...] = (
    ProblemConfig(min_steps=1, max_steps=9),
    ProblemConfig(p=13, min_steps=1, max_steps=6, ops=("add", "sub", "mul", "div")),
    ProblemConfig(p=2, min_steps=1, max_steps=3),
    ProblemConfig(p=5, problem_types=("composition",), min_steps=1, max_steps=3, max_parts=4),
    ProblemConfig(p=7, symbol_names=("α", "β", "γ", "δ", "ε", "ζ", "η"), min_steps=2, max_steps=5, max_label_offset=3),
    ProblemConfig(p=11, shuffle_symbols=False, min_steps=1, max_steps=4),
)


def problem_pool(per_config: int = 24) -> list[Problem]:
    """``per_config`` problems of every pool config (seed 7, so none is a training or validation problem)."""
    return [generate(c, 7, i) for c in POOL_CONFIGS for i in range(per_config)]


# --- the alphabet of trouble

LOOKALIKES: dict[str, str] = {
    "a": "аɑα", "e": "еεҽё", "o": "оο0", "p": "рρ", "s": "ѕ", "r": "г", "n": "пη", "w": "ԝω", "t": "τт",
    "y": "уγ", "i": "іι1", "c": "с", "d": "ԁ", "u": "υ", "l": "ӏ1", "m": "м", "x": "хχ", "b": "Ь",
    "0": "０𝟎٠⁰", "1": "１𝟏١¹l", "2": "２𝟐٢²", "3": "３𝟑٣³", "4": "４𝟒٤", "5": "５𝟓٥", "6": "６𝟔٦",
    "7": "７𝟕٧", "8": "８𝟖٨", "9": "９𝟗٩", ":": "：∶꞉˸", "-": "‐‑‒–—−－", ">": "＞›〉", ";": ";；",
    "α": "aа", "β": "ßв", "γ": "у", "ε": "еe", "η": "n",
}
"""Characters that look like the grammar's (Cyrillic, Greek, fullwidth, mathematical, Arabic-Indic digits...)."""
SPACES = (" ", "\t", "\u00a0", "\u2009", "\u3000", "\u2002", "\u200b", "\u2060", "\ufeff", "\u1680", "\x0b", "\x0c",
          "\x1f", "  ")
NEWLINES = ("\n", "\r\n", "\r", "\u2028", "\u2029", "\x85", "\n\n", "\n \n", "\n\t\n")
ODD_CHARS = "\x00\x07\x1b\ud800\udfff\ufffd\U0001f600\u0301\u202e\u00ad" + "".join(SPACES) + "".join(NEWLINES)
GRAMMAR = ("step", "try", "answer", "result", "part", "yes", "no", ":", "->", ";", "=", ",", "add", "sub", "mul",
           "div", "given", "find", "x0", "x3", "GF(11)", "0", "1", "2", "3", "9", "10", "999999", "-1", "")
ASCII = "".join(chr(c) for c in range(32, 127)) + "\n" * 8


def _log_uniform(rng: random.Random, hi: int) -> int:
    return int(2 ** rng.uniform(0, hi.bit_length())) - 1


def _lookalike(rng: random.Random, text: str) -> str:
    """``text`` with one character that has a look-alike replaced by one."""
    spots = [i for i, c in enumerate(text) if c in LOOKALIKES]
    if not spots:
        return text
    i = rng.choice(spots)
    return text[:i] + rng.choice(LOOKALIKES[text[i]]) + text[i + 1:]


def _word(rng: random.Random, problem: Problem) -> str:
    r = rng.random()
    if r < 0.45:
        return rng.choice(problem.symbols.names)
    if r < 0.85:
        return rng.choice(GRAMMAR)
    if r < 0.95:
        return _lookalike(rng, rng.choice(GRAMMAR[:5] + problem.symbols.names))
    return "".join(rng.choice(ODD_CHARS + ASCII) for _ in range(rng.randint(1, 4)))


def _answer_line(rng: random.Random, problem: Problem) -> str:
    """An answer line: right, wrong, listed, decorated, look-alike or in prose."""
    right = problem.symbol(problem.answer)
    other = problem.symbol(rng.choice([v for v in range(problem.p) if v != problem.answer] or [problem.answer]))
    a, b = (right, other) if rng.random() < 0.5 else (other, right)
    return rng.choice((
        f"answer {right}", f"answer {other}", f"answer {a} {b}", f"answer {a}, {b}", f"answer [{a}, {b}]",
        f"answer {a} or {b}", f"answer {a}\nanswer {b}", f"answer: {right}", f"the answer is {right}",
        f"answer {right}.", f"Answer {right}", f"ANSWER {right}", f"answer {_lookalike(rng, right)}",
        f"{_lookalike(rng, 'answer')} {right}", f"answer{rng.choice(SPACES)}{right}", f"answer {right}{right}",
        f"answer {right} answer {right}", f"**answer** {right}", f"answer\n{right}", f"answer {right} ;",
    ))


def _mutate(rng: random.Random, problem: Problem, text: str) -> str:
    lines = text.split("\n")
    kind = rng.randrange(14)
    if kind == 0 and len(lines) > 1:  # drop, duplicate or swap lines
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        op = rng.randrange(3)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
    elif kind == 1:  # replace a word
        i = rng.randrange(len(lines))
        words = lines[i].split(" ")
        words[rng.randrange(len(words))] = _word(rng, problem)
        lines[i] = " ".join(words)
    elif kind == 2:  # a look-alike character
        i = rng.randrange(len(lines))
        lines[i] = _lookalike(rng, lines[i])
    elif kind == 3:  # an odd space
        i = rng.randrange(len(lines))
        lines[i] = lines[i].replace(" ", rng.choice(SPACES), rng.choice((1, -1)))
    elif kind == 4:  # an odd newline
        i = rng.randrange(len(lines))
        return rng.choice(NEWLINES).join(["\n".join(lines[:i]), "\n".join(lines[i:])])
    elif kind == 5:  # the answer line replaced
        lines[-1] = _answer_line(rng, problem)
    elif kind == 6:  # an extra answer line somewhere
        lines.insert(rng.randrange(len(lines) + 1), _answer_line(rng, problem))
    elif kind == 7:  # text after the answer
        lines.append(rng.choice(("", " ", "done", "step 1 add e1 : e0 -> e1", _answer_line(rng, problem), "\t\u00a0")))
    elif kind == 8:  # a character inserted
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(ODD_CHARS + ASCII) + text[i:]
    elif kind == 9:  # truncated
        return text[: rng.randrange(len(text) + 1)]
    elif kind == 10:  # a line repeated many times
        i = rng.randrange(len(lines))
        lines[i:i + 1] = [lines[i]] * _log_uniform(rng, 200)
    elif kind == 11:  # upper-cased
        i = rng.randrange(len(lines))
        lines[i] = lines[i].upper() if rng.random() < 0.5 else lines[i].title()
    elif kind == 12:  # the answer moved up
        if len(lines) > 1:
            lines.insert(rng.randrange(len(lines)), lines.pop())
    else:  # surrounding prose
        lines = [rng.choice(("Let me think.", "Sure!", "", "```"))] + lines + [rng.choice(("", "```", "Done."))]
    return "\n".join(lines)


def _repeated(rng: random.Random, problem: Problem, size: int) -> str:
    """A pattern repeated to about ``size`` characters."""
    sym = rng.choice(problem.symbols.names)
    pattern = rng.choice((
        "step ", "\n", " ", "->", ": ", "answer ", f"answer {sym}\n", f"{sym} ", "try ",
        f"1 add {sym} : {sym} -> {sym} ; ", "part 1\n", "result " + sym + "\n", "a", "\u00a0", "\u2028",
        "е", "\ud800", write_trace(problem, rng.choice(("forward", "backward"))) + "\n",
    ))
    body = pattern * max(1, size // len(pattern))
    if pattern.startswith("1 add"):  # one huge search line
        body = f"try {sym} : {body}{sym} = {sym} no"
    return body + rng.choice(("", "\n" + _answer_line(rng, problem)))


def make_case(rng: random.Random, problem: Problem, huge: bool = False) -> tuple[str, str]:
    """``(family, response)``: one fuzz case for ``problem`` drawn with ``rng``."""
    if huge:
        family = rng.choice(("huge_repeated", "huge_random"))
        if family == "huge_repeated":
            return family, _repeated(rng, problem, HUGE_BYTES)
        block = "".join(rng.choice(ASCII + ODD_CHARS) for _ in range(1 << 16))
        return family, block * (HUGE_BYTES // len(block))
    r = rng.random()
    if r < 0.40:
        text = write_trace(problem, rng.choice(("forward", "backward")))
        for _ in range(rng.randint(1, 4)):
            text = _mutate(rng, problem, text)
        return "mutated_trace", text
    if r < 0.55:
        alphabet = rng.choice((ASCII, ASCII + ODD_CHARS, "".join(LOOKALIKES) + "".join(LOOKALIKES.values()) + " \n"))
        n = _log_uniform(rng, 4096)
        if rng.random() < 0.1:
            return "random_text", "".join(chr(rng.randrange(0x110000)) for _ in range(n))
        return "random_text", "".join(rng.choice(alphabet) for _ in range(n))
    if r < 0.75:
        lines = [" ".join(_word(rng, problem) for _ in range(rng.randint(1, 20))) for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.5:
            lines.append(_answer_line(rng, problem))
        return "grammar_soup", rng.choice(NEWLINES[:3]).join(lines)
    if r < 0.90:
        return "answer_lines", _answer_line(rng, problem)
    if r < 0.95:
        return "empty", "".join(rng.choice(SPACES + NEWLINES) for _ in range(rng.randrange(4)))
    return "repeated", _repeated(rng, problem, _log_uniform(rng, 1 << 17))


def final_answer_is_right(problem: Problem, text: str) -> bool:
    """The documented outcome rule, independent of verify's parser: exactly one line starts with the word
    ``answer``, it is the last non-empty line, and it is ``answer`` followed by the answer symbol alone."""
    lines = [words for words in (line.split() for line in text.split("\n")) if words]
    answers = [words for words in lines if words[0] == "answer"]
    return len(answers) == 1 and lines[-1] is answers[0] and answers[0] == ["answer", problem.symbol(problem.answer)]


@dataclass
class Fuzzer:
    """Runs cases through ``verify`` and ``env.step`` and keeps the counts, the worst time per byte and examples."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("cases", "crashes", "wrong_rewards", "missed_rewards", "bad_verdicts", "slow"), 0))
    families: dict[str, int] = field(default_factory=dict)
    worst_ns_per_byte: float = 0.0
    worst_case: str = ""
    largest_bytes: int = 0
    largest_seconds: float = 0.0
    slowest_seconds: float = 0.0
    slowest_bytes: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = gym.make("ffreason/Mixed-v0")

    def check(self, problem: Problem, text: str, family: str = "", case: Any = None) -> list[str]:
        """The findings of one case (empty when it passes); counted and, the first few, kept as examples."""
        self.counts["cases"] += 1
        self.families[family] = self.families.get(family, 0) + 1
        findings = []
        try:
            start = time.process_time()
            verdict = verify(problem, text)
            seconds = time.process_time() - start
            self.env.reset(options={"problem": problem})
            _, reward, terminated, _, info = self.env.step(text)
            stepped = self.env.unwrapped.verdict
        except Exception as e:  # noqa: BLE001 - any exception is the finding
            findings.append(f"crashes: {type(e).__name__}: {e}")
        else:
            right = final_answer_is_right(problem, text)
            if verdict.correct and not right or reward > 0 and not right:
                findings.append("wrong_rewards")
            if right and not (verdict.correct and reward == 1.0):
                findings.append("missed_rewards")
            if stepped != verdict or not terminated or reward not in (0.0, 1.0) or not _consistent(problem, verdict):
                findings.append("bad_verdicts")
            size = len(text.encode("utf-8", "surrogatepass"))
            if size >= TIMED_MIN_BYTES:
                if seconds * 1e9 / size > MAX_NS_PER_BYTE:  # a GC pause or a cold cache: the best of three decides
                    seconds = min([seconds] + [_cpu_seconds(problem, text) for _ in range(2)])
                ns = seconds * 1e9 / size
                if ns > self.worst_ns_per_byte:
                    self.worst_ns_per_byte, self.worst_case = ns, f"{family} case {case}, {size} bytes"
                if ns > MAX_NS_PER_BYTE:
                    findings.append(f"slow: {ns:.0f} ns/byte")
            if size > self.largest_bytes or size == self.largest_bytes and seconds > self.largest_seconds:
                self.largest_bytes, self.largest_seconds = size, seconds
            if seconds > self.slowest_seconds:
                self.slowest_seconds, self.slowest_bytes = seconds, size
        for f in findings:
            self.counts[f.split(":")[0]] += 1
            if len(self.examples) < 20:
                self.examples.append({"finding": f, "family": family, "case": case, "problem": problem.to_json(),
                                      "text": text[:300]})
        return findings

    def run(self, pool: list[Problem], cases: int, seed: int = 0, huge_every: int = 0, start: int = 0,
            progress=None) -> None:
        """Cases ``start .. start+cases-1``; case i is drawn with ``random.Random(f"{seed}:{i}")`` (replayable)."""
        for i in range(start, start + cases):
            rng = random.Random(f"{seed}:{i}")
            problem = rng.choice(pool)
            family, text = make_case(rng, problem, huge=bool(huge_every) and i % huge_every == huge_every - 1)
            self.check(problem, text, family, i)
            if progress is not None:
                progress.update(1)

    def findings(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "cases")


def _cpu_seconds(problem: Problem, text: str) -> float:
    start = time.process_time()
    verify(problem, text)
    return time.process_time() - start


def _consistent(problem: Problem, v) -> bool:
    return (
        0 <= v.steps_correct <= v.steps_checked
        and (v.first_error is None) == (v.steps_correct == v.steps_checked)
        and v.strategy in LABELS
        and (v.answer is None or 0 <= v.answer < problem.p)
        and (not v.correct or v.answer == problem.answer)
        and (not v.well_formed or v.answer is not None)
    )


def fuzz_texts(pool: list[Problem]):
    """A hypothesis strategy of ``(problem, family, text)``: the generator's cases, arbitrary Unicode text, and
    sequences of grammar words and look-alikes joined by odd whitespace."""
    from hypothesis import strategies as st

    problems = st.sampled_from(pool)
    generated = st.tuples(problems, st.randoms(use_true_random=False)).map(
        lambda pr: (pr[0], *make_case(pr[1], pr[0])))
    arbitrary = st.tuples(problems, st.just("hypothesis_text"), st.text(st.characters(codec=None), max_size=400))
    pieces = st.one_of(st.sampled_from(GRAMMAR), st.sampled_from(tuple(LOOKALIKES) + tuple(LOOKALIKES.values())),
                       st.sampled_from(SPACES + NEWLINES), st.text(max_size=3))

    def joined(problem):
        return st.lists(st.one_of(pieces, st.sampled_from(problem.symbols.names),
                                  st.just("answer " + problem.symbol(problem.answer))), max_size=60).map(
            lambda ws: (problem, "hypothesis_words", "".join(ws)))

    return st.one_of(generated, arbitrary, problems.flatmap(joined))


def run_hypothesis(fuzzer: Fuzzer, pool: list[Problem], examples: int) -> None:
    """``examples`` hypothesis examples through ``fuzzer`` (counted, not shrunk: the benchmark wants the counts)."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(fuzz_texts(pool))
    def one(case):
        problem, family, text = case
        fuzzer.check(problem, text, family)

    one()


# --- atheris: a child process (libFuzzer exits when it is done)

def _atheris_worker(runs: int, seed: int, work: str) -> None:
    """libFuzzer's loop over ``check`` (ffreason_env instrumented by the caller), corpus in ``work``; never returns."""
    import atheris

    pool = problem_pool(4)
    fuzzer = Fuzzer()
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus)
    for i, problem in enumerate(pool):  # byte 0 picks the problem, the rest is the response
        for strategy in ("forward", "backward"):
            with open(os.path.join(corpus, f"{i}_{strategy}"), "wb") as f:
                f.write(bytes([i]) + write_trace(problem, strategy).encode())
    words = {w for w in GRAMMAR if w} | {n for p in pool for n in p.symbols.names}
    with open(os.path.join(work, "dict"), "w", encoding="ascii") as f:  # libFuzzer wants \xNN for other bytes
        f.writelines('"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in w.encode())
                     + '"\n' for w in sorted(words))

    def one_input(data: bytes) -> None:
        if not data:
            return
        problem = pool[data[0] % len(pool)]
        text = data[1:].decode("utf-8", "surrogateescape")
        findings = fuzzer.check(problem, text, "atheris")
        if findings:
            raise AssertionError(f"{findings} on {text[:300]!r} (problem {problem.to_json()})")

    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-seed={seed + 1}", "-max_len=16384", "-timeout=20",
                   f"-dict={os.path.join(work, 'dict')}", corpus], one_input)
    atheris.Fuzz()


def run_atheris(runs: int, seed: int) -> dict[str, Any]:
    """Coverage-guided runs in a child; libFuzzer stops at the first finding, so findings is 0 or 1."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return {"installed": False}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_verify_atheris_") as work:
        script = ("import atheris\n"
                  "with atheris.instrument_imports(include=['ffreason_env']):\n"
                  "    import ffreason_env\n"
                  "from benchmarks.fuzz_verify import _atheris_worker\n"
                  f"_atheris_worker({int(runs)}, {int(seed)}, {work!r})\n")
        proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    done = [" ".join(line.split()) for line in proc.stderr.splitlines() if "DONE" in line or line.startswith("Done ")]
    return {"installed": True, "runs_requested": runs, "summary": "; ".join(done),
            "findings": 0 if proc.returncode == 0 else 1, "seconds": time.perf_counter() - start,
            "tail": "" if proc.returncode == 0 else proc.stderr[-3000:]}


def table(res: dict[str, Any]) -> str:
    c, h, a = res["random"], res["hypothesis"], res["atheris"]
    rows = [
        "| driver | cases | crashes | wrong rewards | missed rewards | bad verdicts | slow |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, d in (("seeded random", c), ("hypothesis", h)):
        n = d["counts"]
        rows.append(f"| {name} | {n['cases']:,} | {n['crashes']} | {n['wrong_rewards']} | {n['missed_rewards']} "
                    f"| {n['bad_verdicts']} | {n['slow']} |")
    if a.get("installed"):
        rows.append(f"| atheris (coverage-guided; stops at the first finding) | {a['runs_requested']:,} runs "
                    f"| {a['findings']} finding(s), any kind | | | | |")
    else:
        rows.append("| atheris | not installed | | | | | |")
    rows += [
        "",
        f"Worst CPU time per byte in verify (inputs >= {TIMED_MIN_BYTES} bytes): **{c['worst_ns_per_byte']:.1f} ns** "
        f"({c['worst_case']}); bound {MAX_NS_PER_BYTE:.0f} ns. Largest input {c['largest_bytes']:,} bytes: "
        f"{c['largest_seconds']:.2f} s; slowest: {c['slowest_seconds']:.2f} s on {c['slowest_bytes']:,} bytes. "
        "Seeded-random families: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(c["families"].items())) + ".",
        f"atheris: {a.get('summary', '')}." if a.get("installed") else "",
        f"Wall time {res['seconds']:.0f} s; seed {res['settings']['seed']}, a 10 MB input every "
        f"{res['settings']['huge_every']:,} cases; ffreason_env/verifier.py sha256 "
        f"{res['settings']['verifier_sha256']}.",
    ]
    return "\n".join(rows)


def _report(f: Fuzzer) -> dict[str, Any]:
    return {"counts": f.counts, "families": f.families, "worst_ns_per_byte": f.worst_ns_per_byte,
            "worst_case": f.worst_case, "largest_bytes": f.largest_bytes, "largest_seconds": f.largest_seconds,
            "slowest_seconds": f.slowest_seconds, "slowest_bytes": f.slowest_bytes,
            "examples": f.examples}


def _verifier_hash() -> str:
    """Which verifier.py was fuzzed (the file changes as it is sped up)."""
    import ffreason_env.verifier

    with open(ffreason_env.verifier.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks fuzz_verify", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1_000_000, help="seeded-random cases (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--huge-every", type=int, default=20_000, help="a 10 MB input every N cases (0: none)")
    ap.add_argument("--hypothesis", type=int, default=20_000, help="hypothesis examples (default %(default)s)")
    ap.add_argument("--atheris", type=int, default=200_000, help="atheris runs, if installed (0: skip)")
    ap.add_argument("--out", default=RESULTS, help="results folder (default benchmarks/results, quoted by docs/)")
    args = ap.parse_args(argv)
    from tqdm.auto import tqdm

    start = time.perf_counter()
    pool = problem_pool()
    bulk = Fuzzer()
    with tqdm(total=args.cases, desc="fuzz_verify", mininterval=5) as bar:
        bulk.run(pool, args.cases, args.seed, args.huge_every, progress=bar)
    hyp = Fuzzer()
    if args.hypothesis:
        run_hypothesis(hyp, pool, args.hypothesis)
    res = {"random": _report(bulk), "hypothesis": _report(hyp),
           "atheris": run_atheris(args.atheris, args.seed) if args.atheris else {"installed": False, "skipped": True},
           "seconds": time.perf_counter() - start,
           "settings": {"cases": args.cases, "seed": args.seed, "huge_every": args.huge_every,
                        "hypothesis": args.hypothesis, "atheris": args.atheris, "pool": len(pool),
                        "max_ns_per_byte": MAX_NS_PER_BYTE, "timed_min_bytes": TIMED_MIN_BYTES,
                        "verifier_sha256": _verifier_hash()}}
    path = write("fuzz_verify", res, table(res), args.out)
    print(table(res))
    print(f"written: {path}")
    if bulk.findings() or hyp.findings() or res["atheris"].get("findings"):
        sys.exit(1)

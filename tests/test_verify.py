import pytest
from hypothesis import given
from hypothesis import strategies as st

import gf_reference
from ffreason_env import (
    ALIGNED,
    STRATEGIES,
    ProblemConfig,
    RewardSpec,
    Verdict,
    generate,
    is_guess,
    outcome_reward,
    process_score,
    verify,
    write_trace,
)

PRIMES = [2, 3, 5, 7, 11, 13, 97]
KINDS = ["evaluation", "inversion", "composition"]


def config(p=11, kind="evaluation", steps=(2, 5), ops=("add", "mul"), **kw):
    return ProblemConfig(p=p, min_steps=steps[0], max_steps=steps[1], ops=ops, problem_types=[kind], **kw)


@pytest.mark.parametrize("p", PRIMES)
@pytest.mark.parametrize("kind", KINDS)
def test_reference_traces_verify_for_every_prime_steps_kind_strategy(p, kind):
    ops = ("add", "sub", "mul", "div")
    for k in range(1, 16):
        steps = (1, max(1, k // 3)) if kind == "composition" else (k, k)
        c = config(p, kind, steps, ops, min_parts=2, max_parts=3)
        for index in range(2):
            problem = generate(c, k, index)
            truth = gf_reference.answer(problem.to_dict())
            assert problem.answer == truth
            for s in STRATEGIES:
                v = verify(problem, write_trace(problem, s))
                assert v.correct and v.answer == truth, (p, kind, k, s)
                assert v.well_formed and v.strategy == s
                assert v.steps_correct == v.steps_checked >= v.steps_expected
                assert v.first_error is None and process_score(v) == 1.0
                assert v.aligned == all(ALIGNED[part.kind] == s for part in problem.parts or (problem,))


@pytest.mark.parametrize("kind", ["evaluation", "inversion"])
def test_trace_shapes(kind):
    c = config(13, kind, (4, 4))
    for index in range(20):
        problem = generate(c, 0, index)
        for s in STRATEGIES:
            lines = write_trace(problem, s).splitlines()
            assert lines[-1] == f"answer {problem.symbol(problem.answer)}"
            if ALIGNED[kind] == s:  # direct: one line per op, in the strategy's order
                idx = [int(line.split()[1]) for line in lines[:-1]]
                assert idx == ([1, 2, 3, 4] if s == "forward" else [4, 3, 2, 1])
            else:  # search: candidates in symbol order up to the first match
                tried = [line.split()[1] for line in lines[:-1]]
                solution = problem.symbol(problem.answer)
                assert tried == list(problem.symbols.names[: problem.symbols.names.index(solution) + 1])
                given = problem.symbol(problem.given)
                for line in lines[:-1]:  # each line ends "; R = G yes|no": R is its last step's output
                    words = line.split()
                    assert words[-5:-3] == [";", words[-6]] and words[-3:-1] == ["=", given]
                assert all(line.endswith(" no") and line.split()[-4] != given for line in lines[:-2])
                assert lines[-2].endswith(f" {given} = {given} yes")


def _propagate_error(problem, trace, j):
    """Make direct step j compute a wrong value and carry it through the rest, like a real slip."""
    lines = trace.splitlines()
    steps = lines[:-1]
    words = steps[j].split()  # step I OP C : A -> B
    wrong = (problem.value(words[7]) + 1) % problem.p
    words[7] = problem.symbol(wrong)
    steps[j] = " ".join(words)
    x = wrong
    for i in range(j + 1, len(steps)):
        w = steps[i].split()
        y = gf_reference.forward([(w[2], problem.value(w[3]))], x, problem.p)
        w[5], w[7] = problem.symbol(x), problem.symbol(y)
        steps[i] = " ".join(w)
        x = y
    return "\n".join([*steps, f"answer {problem.symbol(x)}"])


@given(seed=st.integers(0, 10**6), kind=st.sampled_from(["evaluation", "inversion"]), data=st.data())
def test_a_slip_in_a_direct_step_is_not_rewarded_and_located(seed, kind, data):
    problem = generate(config(11, kind, (2, 9)), seed, 0)
    trace = write_trace(problem, ALIGNED[kind])
    j = data.draw(st.integers(0, len(problem.ops) - 1))
    v = verify(problem, _propagate_error(problem, trace, j))
    assert not v.correct and outcome_reward(v) == 0.0
    assert v.first_error == j and v.first_error_line == j
    assert v.steps_correct == v.steps_checked - 1  # only the slip itself is wrong
    assert v.strategy == ALIGNED[kind] and v.well_formed


@given(seed=st.integers(0, 10**6), kind=st.sampled_from(KINDS), s=st.sampled_from(STRATEGIES), data=st.data())
def test_corrupted_intermediate_value_is_located(seed, kind, s, data):
    problem = generate(config(7, kind, (1, 4)), seed, 0)
    lines = write_trace(problem, s).splitlines()
    candidates = [n for n, line in enumerate(lines) if "->" in line.split()]
    n = data.draw(st.sampled_from(candidates))
    words = lines[n].split()
    eqs = [i for i, w in enumerate(words) if w == "->"]
    e = data.draw(st.sampled_from(eqs))
    words[e + 1] = problem.symbol((problem.value(words[e + 1]) + 1) % problem.p)
    lines[n] = " ".join(words)
    v = verify(problem, "\n".join(lines))
    assert v.first_error_line == n
    assert v.steps_correct < v.steps_checked and process_score(v) < 1.0


@given(seed=st.integers(0, 10**6), kind=st.sampled_from(KINDS), s=st.sampled_from(STRATEGIES), data=st.data())
def test_wrong_final_answer_is_not_rewarded(seed, kind, s, data):
    problem = generate(config(11, kind, (1, 6)), seed, 0)
    lines = write_trace(problem, s).splitlines()
    wrong = data.draw(st.sampled_from([v for v in range(11) if v != problem.answer]))
    lines[-1] = f"answer {problem.symbol(wrong)}"
    v = verify(problem, "\n".join(lines))
    assert not v.correct and v.answer == wrong and outcome_reward(v) == 0.0
    assert v.first_error_line == len(lines) - 1 and v.first_error == v.steps_checked - 1


@given(seed=st.integers(0, 10**6), kind=st.sampled_from(KINDS), s=st.sampled_from(STRATEGIES))
def test_answer_lists_and_disagreeing_answers_are_not_rewarded(seed, kind, s):
    problem = generate(config(5, kind, (1, 4)), seed, 0)
    lines = write_trace(problem, s).splitlines()
    right = problem.symbol(problem.answer)
    others = [sym for sym in problem.symbols.names if sym != right]
    last = len(lines) - 1
    every = " ".join(problem.symbols.names)
    for bad_tail, error_line in [
        ([f"answer {every}"], last),  # an answer list that contains the right answer
        ([f"answer {right} {others[0]}"], last),
        ([f"answer {right}", f"answer {others[0]}"], last),  # two disagreeing answer lines
        ([f"answer {others[0]}", f"answer {right}"], last),
        ([f"answer {right}", f"answer {right}"], last),  # even repeating the right one is malformed
    ]:
        v = verify(problem, "\n".join(lines[:-1] + bad_tail))
        assert not v.correct and v.answer is None and not v.well_formed
        assert v.first_error_line == error_line


@pytest.mark.parametrize(
    "tail",
    [
        "answer {var}", "answer find", "answer result of part 1", "find {var}", "the answer is {sym}",
        "answer = {sym}", "answer: {sym}", "Answer {sym}", "answer {sym}.", "answer ({sym})", "{sym}",
        "given {var} = {sym}", "answer {sym} , find {var}",
    ],
)
def test_answers_in_other_words_are_not_rewarded(tail):
    for kind in KINDS:
        problem = generate(config(11, kind, (2, 3)), 1, 0)
        lines = write_trace(problem, "forward").splitlines()
        lines[-1] = tail.format(sym=problem.symbol(problem.answer), var="x0")
        v = verify(problem, "\n".join(lines))
        assert not v.correct and v.answer is None and not v.well_formed
        assert v.first_error_line == len(lines) - 1


LOOKALIKES = ["\u0435", "\uff45", "\u212e", "\u1d07"]  # Cyrillic e, fullwidth e, estimated sign, small capital E


@pytest.mark.parametrize("kind", KINDS)
def test_unicode_lookalikes_are_not_symbols(kind):
    problem = generate(config(11, kind, (2, 3)), 5, 0)
    right = problem.symbol(problem.answer)
    digits = right[1:]
    variants = [e + digits for e in LOOKALIKES]
    variants += ["e" + digits.translate(str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"))]
    variants += ["e" + digits.translate(str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19"))]
    variants += ["e\u200b" + digits, "e" + digits + "\u200d"]
    lines = write_trace(problem, "forward").splitlines()
    for sym in variants:
        assert sym != right
        v = verify(problem, "\n".join(lines[:-1] + [f"answer {sym}"]))
        assert not v.correct and v.answer is None
    v = verify(problem, "\n".join(lines[:-1] + [f"{LOOKALIKES[0]}nswer {right}"]))
    assert not v.correct and v.answer is None


def _only_rewarded_if_last_line_is_the_answer(problem, text, v):
    assert isinstance(v, Verdict)
    if v.correct:
        last = [line for line in text.split("\n") if line.split()][-1]
        assert last.split() == ["answer", problem.symbol(problem.answer)]
        assert sum(1 for line in text.split("\n") if line.split()[:1] == ["answer"]) == 1
    assert 0 <= v.steps_correct <= v.steps_checked
    assert v.strategy in ("forward", "backward", "mixed", "unknown")


@given(text=st.text(), kind=st.sampled_from(KINDS))
def test_never_raises_on_arbitrary_text(text, kind):
    problem = generate(config(11, kind, (1, 3)), 0, 0)
    _only_rewarded_if_last_line_is_the_answer(problem, text, verify(problem, text))


WORDS = ["step", "try", "answer", "part", "result", ":", ";", "=", "->", "yes", "no", "add", "mul", "sub", "div",
         "1", "2", "3", "9", "e0", "e1", "e2", "e3", "e4", "e10", "\n", "\n", "\r\n", "x0", "0"]


@given(words=st.lists(st.sampled_from(WORDS), max_size=80), kind=st.sampled_from(KINDS), seed=st.integers(0, 99))
def test_never_raises_on_grammar_word_salad(words, kind, seed):
    problem = generate(config(11, kind, (1, 3)), seed, 0)
    text = " ".join(words)
    _only_rewarded_if_last_line_is_the_answer(problem, text, verify(problem, text))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n   \n",
        "a" * (1 << 20),
        "answer e1\n" * (1 << 17),
        "step " * (1 << 18),
        "try e0 : " + "1 add e1 : e0 -> e2 ; " * (1 << 15) + "e2 = e2 yes",
        "\n" * (1 << 20),
        "\u0000\ud800\U0010ffff" * 1000,
    ],
)
def test_never_raises_on_huge_or_degenerate_inputs(text):
    for kind in KINDS:
        problem = generate(config(11, kind, (2, 3)), 0, 0)
        v = verify(problem, text)
        _only_rewarded_if_last_line_is_the_answer(problem, text, v)
        assert not v.correct


def test_rejects_non_strings_clearly():
    with pytest.raises(TypeError, match="response must be a str"):
        verify(generate(config(), 0, 0), b"answer e1")


def test_strategy_label_survives_arithmetic_mistakes():
    for kind in ["evaluation", "inversion"]:
        problem = generate(config(11, kind, (5, 5)), 3, 0)
        for s in STRATEGIES:
            lines = write_trace(problem, s).splitlines()
            garbled = []
            for line in lines:  # every computed value is wrong
                w = line.split()
                for i in range(1, len(w)):
                    if w[i - 1] == "->":
                        w[i] = problem.symbol((problem.value(w[i]) + 2) % 11)
                garbled.append(" ".join(w))
            v = verify(problem, "\n".join(garbled))
            assert v.strategy == s and v.steps_correct < v.steps_checked


@pytest.mark.parametrize("kind", ["evaluation", "inversion"])
def test_a_search_verdict_must_compare_the_reached_and_the_given_value(kind):
    c = config(11, kind, (3, 3))
    problem = next(pr for pr in (generate(c, 0, i) for i in range(50)) if pr.symbols.search_order[0] != pr.answer)
    lines = write_trace(problem, "backward" if kind == "evaluation" else "forward").splitlines()
    assert verify(problem, "\n".join(lines)).first_error is None
    w = lines[0].split()  # try X : 3 steps ; R = G no
    other = problem.symbol((problem.value(w[-4]) + 1) % 11)
    for wrong in (w[:-4] + [other] + w[-3:],  # R is not what the chain reached
                  w[:-2] + [w[-4], "no"],  # G is not the given value
                  w[:-1] + ["yes"]):  # the verdict disagrees with the comparison
        v = verify(problem, "\n".join([" ".join(wrong), *lines[1:]]))
        assert (v.first_error, v.first_error_line, v.well_formed) == (3, 0, True), wrong
    old_grammar = " ".join(w[:-4] + ["no"])  # a verdict without the comparison does not parse
    v = verify(problem, "\n".join([old_grammar, *lines[1:]]))
    assert (v.first_error, v.first_error_line, v.well_formed) == (0, 0, False)


def test_guess_without_reasoning_gets_outcome_but_no_process_score():
    problem = generate(config(), 0, 0)
    v = verify(problem, f"answer {problem.symbol(problem.answer)}")
    assert v.correct and v.strategy == "unknown" and not v.aligned
    assert outcome_reward(v) == 1.0 and process_score(v) == 0.0
    assert RewardSpec(process_weight=0.5)(v) == 1.0
    assert RewardSpec(format_penalty=0.2)(verify(problem, "no idea")) == pytest.approx(-0.2)


def test_truncated_trace_is_not_rewarded():
    for kind in KINDS:
        problem = generate(config(11, kind, (3, 4)), 2, 0)
        trace = write_trace(problem, "backward")
        for cut in (len(trace) // 3, len(trace) - 3):
            v = verify(problem, trace[:cut])
            assert not v.correct and v.answer is None


def test_process_score_shaping():
    problem = generate(config(11, "evaluation", (4, 4)), 0, 0)
    lines = write_trace(problem, "forward").splitlines()
    lines[1] = lines[1].replace(" -> ", " -> e", 1)[:-1]  # garble one step into an unknown symbol
    v = verify(problem, "\n".join(lines))
    assert v.first_error_line == 1 and not v.well_formed
    assert process_score(v) == pytest.approx((v.steps_correct) / 5)
    assert RewardSpec(process_weight=1.0, format_penalty=0.1)(v) == pytest.approx(
        outcome_reward(v) + process_score(v) - 0.1
    )
    with pytest.raises(ValueError, match="^process_weight: "):
        RewardSpec(process_weight=-1)


def test_composition_labels_each_part():
    c = config(11, "composition", (2, 3), min_parts=3, max_parts=3)
    problem = generate(c, 0, 0)
    for combo in [("forward", "backward", "forward"), ("backward",) * 3]:
        v = verify(problem, write_trace(problem, combo))
        assert v.correct and v.part_strategies == combo
        assert v.strategy == (combo[0] if len(set(combo)) == 1 else "mixed")
    aligned = tuple(ALIGNED[p.kind] for p in problem.parts)
    assert verify(problem, write_trace(problem, aligned)).aligned


def test_composition_structure_is_checked():
    c = config(11, "composition", (1, 2), min_parts=2, max_parts=2)
    problem = generate(c, 4, 0)
    lines = write_trace(problem, "forward").splitlines()
    no_headers = [line for line in lines if not line.startswith("part ")]
    v = verify(problem, "\n".join(no_headers))
    assert v.correct and not v.well_formed and v.first_error_line == 0  # answer right, structure not
    swapped = "\n".join(lines).replace("part 1", "part X").replace("part 2", "part 1").replace("part X", "part 2")
    assert not verify(problem, swapped).well_formed
    # a wrong result line breaks the chain into the next part
    r = next(n for n, line in enumerate(lines) if line.startswith("result"))
    lines[r] = f"result {problem.symbol((problem.parts[0].answer + 1) % 11)}"
    v = verify(problem, "\n".join(lines))
    assert v.first_error_line == r


@pytest.mark.parametrize("kind", KINDS)
def test_label_offsets_shift_prompt_and_trace_labels(kind):
    c = config(11, kind, (2, 4), ("add", "sub", "mul", "div"), max_label_offset=10, min_parts=2, max_parts=3)
    offsets = set()
    vocab = set(c.vocabulary())
    for index in range(60):
        problem = generate(c, 0, index)
        parts = problem.parts or (problem,)
        offsets.update(part.label_offset for part in parts)
        prompt = fe_render(problem)
        first = parts[0]
        assert f"step {first.label_offset + 1} {first.ops[0][0]} " in prompt
        for s in STRATEGIES:
            trace = write_trace(problem, s)
            assert set((prompt + "\n" + trace).split()) <= vocab
            v = verify(problem, trace)
            assert v.correct and v.well_formed and v.strategy == s and v.first_error is None
            unshifted = write_trace(_without_offsets(problem), s)
            if any(part.label_offset for part in parts):
                w = verify(problem, unshifted)
                assert w.steps_correct < w.steps_checked
    assert offsets == set(range(11))


def test_part_offsets_number_a_compositions_parts_from_1_plus_o():
    c = config(11, "composition", (2, 3), min_parts=2, max_parts=2, max_part_offset=4)
    assert {"6", "part"} <= set(c.vocabulary())
    offsets = set()
    for index in range(60):
        problem = generate(c, 0, index)
        o = problem.label_offset
        offsets.add(o)
        assert all(part.label_offset == 0 for part in problem.parts)  # steps stay numbered from 1
        prompt = fe_render(problem).splitlines()
        assert [line for line in prompt if line.startswith("part ")] == [f"part {o + 1} : {problem.parts[0].kind}",
                                                                         f"part {o + 2} : {problem.parts[1].kind}"]
        assert prompt[-1].endswith(f"= result of part {o + 1} , find " + prompt[-1].split()[-1])
        trace = write_trace(problem, "backward")
        assert [line for line in trace.splitlines() if line.startswith("part ")] == [f"part {o + 1}", f"part {o + 2}"]
        assert set("\n".join([*prompt, trace]).split()) <= set(c.vocabulary())
        v = verify(problem, trace)
        assert v.correct and v.well_formed and v.part_strategies == ("backward", "backward")
        if o:  # parts numbered from 1 where they start at 1 + o: every step right, the structure not
            w = verify(problem, write_trace(_without_offsets(problem), "backward"))
            assert w.correct and not w.well_formed and w.steps_correct == w.steps_checked
    assert offsets == set(range(5))


def fe_render(problem):
    from ffreason_env import render_prompt

    return render_prompt(problem)


def _without_offsets(problem):
    import dataclasses

    parts = tuple(dataclasses.replace(p, label_offset=0) for p in problem.parts)
    return dataclasses.replace(problem, label_offset=0, parts=parts)


def test_offset_zero_keeps_the_original_stream():
    base = ProblemConfig(problem_types=["evaluation", "inversion", "composition"])
    a = [generate(base, 0, i) for i in range(30)]
    b = [generate(base.replace(max_label_offset=0, max_part_offset=0), 0, i) for i in range(30)]
    assert a == b and all(p.label_offset == 0 for p in a)
    assert base.replace(max_label_offset=3, max_part_offset=2).without_offsets() == base


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("p", [2, 11, 97])
def test_affine_form_of_each_op_matches_apply(op, p):
    from ffreason_env.field import affine, apply

    for c in range(1, p):
        m, d = affine(op, c, p)
        assert [(x * m + d) % p for x in range(p)] == [apply(op, c, x, p) for x in range(p)]


def test_verdicts_are_plain_dataclass_values():
    """verify builds its Verdict without the dataclass __init__: it must equal, hash and serialise like one that used it."""
    import dataclasses

    problem = generate(config(11, "composition", (1, 3), min_parts=2, max_parts=2), 0, 3)
    for response in (write_trace(problem, "forward"), write_trace(problem, ["backward", "forward"]), "answer e1", ""):
        v = verify(problem, response)
        rebuilt = Verdict(**{f.name: getattr(v, f.name) for f in dataclasses.fields(Verdict)})
        assert v == rebuilt and hash(v) == hash(rebuilt) and repr(v) == repr(rebuilt)
        assert v.to_dict() == {**dataclasses.asdict(rebuilt), "part_strategies": list(v.part_strategies)}
        assert list(v.to_dict()) == [f.name for f in dataclasses.fields(Verdict)]
        with pytest.raises(dataclasses.FrozenInstanceError):
            v.correct = not v.correct


@pytest.mark.parametrize("kind", KINDS)
def test_a_guess_is_a_response_without_work(kind):
    problem = generate(config(kind=kind), 0, 0)
    strategies = ("forward", "backward")
    for s in strategies:
        assert not is_guess(write_trace(problem, s))  # every reference trace shows its work
    answer = write_trace(problem, strategies[0]).splitlines()[-1]
    assert is_guess(answer) and is_guess("") and is_guess("\n  \n") and is_guess("the answer is e4")
    assert not is_guess("step 1 add e3 : e2 -> e5")  # a malformed or wrong step line is still work
    assert not is_guess(f"try e4 : 1 mul e3 ;\n{answer}")
    # lines that name no operation do no work: a degenerate try (what RL on unsolvable chains drifted to), parts
    # and results alone
    assert is_guess(f"try e0 : e0 -> e0\n{answer}") and is_guess(f"try e4 ;\n{answer}")
    assert is_guess(f"part 1\nresult e3\npart 2\nresult e5\n{answer}") and is_guess("add mul\nstep")


@pytest.mark.parametrize("edge, strict, lenient", [
    (lambda t, a: t, (True, True), (True, True)),
    (lambda t, a: t + "\n", (True, True), (True, True)),
    (lambda t, a: "  " + t, (True, True), (True, True)),
    (lambda t, a: t.replace("\n", "\n\n", 1), (True, True), (True, True)),
    (lambda t, a: a, (True, True), (True, True)),
    (lambda t, a: "Let me solve it.\n" + t, (True, False), (True, True)),
    (lambda t, a: "<think>\nlet me work it out\n</think>\n" + t, (True, False), (True, True)),
    (lambda t, a: t + "<|im_end|>", (False, False), (True, True)),
    (lambda t, a: t + "\nThat is the answer.", (False, False), (True, True)),
    (lambda t, a: t + ".", (False, False), (True, True)),
    (lambda t, a: "```\n" + t + "\n```", (False, False), (True, True)),
    (lambda t, a: t.replace("answer ", "Answer ", 1), (False, False), (True, True)),
    (lambda t, a: t.replace("answer ", "answer: ", 1), (False, False), (True, True)),
    (lambda t, a: t.replace("answer ", "**Final answer:** ", 1), (False, False), (True, True)),
    (lambda t, a: "<think>\n" + a + "\n</think>\n" + t, (False, False), (True, True)),
    (lambda t, a: t.replace("\n", "\nso far so good\n", 1), (True, False), (True, False)),
    (lambda t, a: t.rsplit("\n", 1)[0] + "\nAnswer: WRONG", (False, False), (False, True)),
], ids=["reference", "trailing-newline", "leading-spaces", "blank-line", "bare-answer", "text-before", "think-prose",
        "leaked-im-end", "trailing-sentence", "trailing-period", "code-fence", "Answer", "answer-colon",
        "final-answer-bold", "think-answer", "prose-between-steps", "wrong-Answer-colon"])
def test_the_formats_edges_are_as_documented(edge, strict, lenient):
    """The table of docs/environments.md ("The strict format, at its edges"): (correct, well formed) in each mode."""
    import ffreason_env as fe

    problem = next(iter(fe.ProblemSet(fe.ProblemConfig(min_steps=3, max_steps=3, problem_types=["evaluation"]), 0, 1)))
    trace = fe.write_trace(problem, "forward")
    wrong = problem.symbol((problem.answer + 1) % problem.p)
    response = edge(trace, trace.splitlines()[-1]).replace("WRONG", wrong)
    for mode, want in (("strict", strict), ("lenient", lenient)):
        verdict = fe.verify(problem, response, mode=mode)
        assert (verdict.correct, verdict.well_formed) == want, mode
    assert fe.verify(problem, response) == fe.verify(problem, response, mode="strict")  # strict is the default


def test_lenient_mode_changes_no_verdict_of_a_response_in_the_grammar():
    import ffreason_env as fe

    for problem in fe.ProblemSet(fe.ProblemConfig(min_steps=2, max_steps=4), 3, 30):
        for s in ("forward", "backward"):
            trace = fe.write_trace(problem, s)
            slipped = trace.replace("->", "-> e0 ;", 1)  # a wrong item stays wrong
            for text in (trace, slipped, "answer e0"):
                assert fe.verify(problem, text, mode="lenient") == fe.verify(problem, text)
    with pytest.raises(ValueError, match="mode: expected one of"):
        fe.verify(problem, "answer e0", mode="loose")


def test_prompt_styles_put_the_same_question_and_few_shot_examples_use_the_chosen_strategy():
    import ffreason_env as fe
    from ffreason_env.prompts import INSTRUCTIONS

    config = fe.ProblemConfig(min_steps=4, max_steps=4, problem_types=["inversion"], symbol_seed=7)
    problem = fe.generate(config, 0, 3)
    bare = fe.render_prompt(problem)
    assert fe.render_prompt(problem, "bare") == bare and fe.render_prompt(problem, "instructed") == INSTRUCTIONS + "\n\n" + bare
    for strategy, want in (("aligned", "backward"), ("misaligned", "forward"), ("forward", "forward")):
        style = fe.PromptStyle("few_shot", shots=3, shot_strategy=strategy)
        text = fe.render_prompt(problem, style)
        assert text.endswith("\n\n" + bare)
        shots = style.examples(problem)
        assert len(shots) == 3 and all(s.kind == "inversion" and s.symbols == problem.symbols for s in shots)
        for shot in shots:
            trace = fe.write_trace(shot, style.strategy(shot))
            assert f"{fe.render_prompt(shot)}\n{trace}" in text
            verdict = fe.verify(shot, trace)
            assert verdict.correct and verdict.strategy == want
    other = fe.generate(config, 0, 4)
    assert fe.PromptStyle("few_shot").examples(other) == fe.PromptStyle("few_shot").examples(problem)  # fixed shots
    with pytest.raises(ValueError, match="prompt_style: expected one of"):
        fe.render_prompt(problem, "chatty")
    with pytest.raises(ValueError, match="shot_strategy"):
        fe.PromptStyle("few_shot", shot_strategy="both")


def test_an_env_asks_in_its_prompt_style_and_reads_in_its_answer_mode():
    import gymnasium as gym

    import ffreason_env as fe

    env = gym.make("ffreason/Evaluation-v0", min_steps=3, max_steps=3, prompt_style="few_shot", shots=1,
                   answer_mode="lenient")
    prompt, info = env.reset(options={"index": 2})
    problem = fe.Problem.from_dict(info["problem"])
    assert prompt == fe.render_prompt(problem, fe.PromptStyle("few_shot", shots=1)) == env.unwrapped.prompt(problem)
    trace = fe.write_trace(problem, "forward")
    _, reward, *_ = env.step("<think>\nok\n</think>\n" + trace.replace("answer ", "Answer: ") + "<|im_end|>")
    assert reward == 1.0
    strict = gym.make("ffreason/Evaluation-v0", min_steps=3, max_steps=3)
    strict.reset(options={"problem": problem})
    assert strict.step(trace.replace("answer ", "Answer: "))[1] == 0.0
    with pytest.raises(ValueError, match="answer_mode"):
        gym.make("ffreason/Evaluation-v0", answer_mode="loose")

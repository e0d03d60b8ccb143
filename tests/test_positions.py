"""Coupled position ids (trainers/positions.py) and the model that uses them (trainers/coupled_llama.py)."""

import dataclasses
import json

import pytest

torch = pytest.importorskip("torch")

import ffreason_env as fe
from hypothesis import given, strategies as st
from trainers.generation import chat_prompt
from trainers.models import build_tiny_model, load_model, position_coupling
from trainers.positions import PositionCoupling
from trainers.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def coupling(tok):
    return PositionCoupling.from_tokenizer(tok)


def encode(tok, problem, strategy):
    messages = [{"role": "user", "content": fe.render_prompt(problem)},
                {"role": "assistant", "content": fe.write_trace(problem, strategy)}]
    ids = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    return ids, tok.convert_ids_to_tokens(ids)


def lines(tokens, positions):
    """(label, [(token, position), ...]) of every line that starts with ``step`` (prompt and direct trace)."""
    out = []
    for i, t in enumerate(tokens):
        if t.lstrip("\u2581") == "step":
            j = i + 1
            while j < len(tokens) and tokens[j] != "\n":
                j += 1
            out.append((int(tokens[i + 1].lstrip("\u2581")), list(zip(tokens[i + 1:j], positions[i + 1:j]))))
    return out


@pytest.mark.parametrize("steps", [2, 5, 9, 15])
def test_a_direct_trace_line_sits_at_its_prompt_line_whatever_the_chain_length(tok, coupling, steps):
    config = fe.ProblemConfig(min_steps=steps, max_steps=steps, max_label_offset=3)
    for index, problem in enumerate(fe.ProblemSet(config, seed=steps, size=6)):
        strategy = fe.ALIGNED[problem.kind]  # the direct trace: forward on evaluation, backward on inversion
        ids, tokens = encode(tok, problem, strategy)
        positions = coupling.position_ids(torch.tensor([ids]))[0].tolist()
        found = lines(tokens, positions)
        prompt, trace = found[:steps], found[steps:]
        assert [label for label, _ in trace] == [label for label, _ in (prompt if strategy == "forward" else prompt[::-1])]
        by_label = {label: line for label, line in prompt}
        for label, line in trace:
            # label, op and constant at the prompt line's positions (the op is its inverse going backward)
            assert [p for _, p in line[:3]] == [p for _, p in by_label[label]]
            assert line[2][0] == by_label[label][2][0]
        # every line starts one stride from the one before: the step to the previous value is the same everywhere
        starts = [line[0][1] for _, line in trace]
        stride = coupling.label_stride if strategy == "forward" else -coupling.label_stride
        assert [b - a for a, b in zip(starts, starts[1:])] == [stride] * (steps - 1)
        # and the first line is at a fixed distance from the given value, whatever the labels
        given = tokens.index("given") + 1
        assert starts[0] - positions[given] == (coupling.label_stride - coupling.given_offset if strategy == "forward"
                                                else -coupling.given_offset)


def test_search_tries_and_composition_parts_do_not_share_positions(tok, coupling):
    searches = (encode(tok, problem, "forward")  # a search over candidates
                for problem in fe.ProblemSet(fe.ProblemConfig(min_steps=3, max_steps=3, problem_types=["inversion"]), 0, 20))
    ids, tokens = next(s for s in searches if s[1].count("try") >= 3)
    positions = coupling.position_ids(torch.tensor([ids]))[0].tolist()
    start = tokens.index("<|assistant|>") + 1
    tries = [positions[i] for i, t in enumerate(tokens) if t == "try"]
    assert len(tries) >= 2 and all(b - a == coupling.try_stride for a, b in zip(tries, tries[1:]))
    # within one try the segments are coupled to the prompt lines: segment L at the prompt's label L + the try's shift
    prompt_label = {int(tokens[i + 1].lstrip("\u2581")): positions[i + 1] for i in range(start) if tokens[i] == "step"}
    first, second = [i for i, t in enumerate(tokens) if t == "try"][:2]
    first_try_labels = [(int(tokens[i].lstrip("\u2581")), positions[i]) for i in range(first, second)
                        if tokens[i - 1] in ("\u2581:", "\u2581;") and tokens[i].lstrip("\u2581").isdigit()]
    assert [p - prompt_label[label] for label, p in first_try_labels] == [coupling.try_stride] * 3

    config = fe.ProblemConfig(min_steps=2, max_steps=2, problem_types=["composition"], min_parts=2, max_parts=2)
    problem = fe.generate(config, 0, 1)
    ids, tokens = encode(tok, problem, ["forward", "forward"])
    positions = coupling.position_ids(torch.tensor([ids]))[0].tolist()
    parts = [positions[i + 1] for i, t in enumerate(tokens) if t == "part"]
    assert parts == [coupling.part_stride, 2 * coupling.part_stride] * 2  # the prompt's parts, then the trace's


@pytest.mark.parametrize("parts, part_offset", [(2, 0), (3, 0), (2, 3)])
def test_a_part_reads_the_result_it_carries_where_a_single_problem_reads_its_given_value(tok, coupling, parts,
                                                                                        part_offset):
    config = fe.ProblemConfig(min_steps=2, max_steps=5, problem_types=["composition"], min_parts=parts,
                              max_parts=parts)
    for index in range(6):
        problem = fe.generate(config, 3, index)
        problem = dataclasses.replace(problem, label_offset=part_offset)  # parts numbered from 1 + part_offset
        strategies = [fe.STRATEGIES[(index + k) % 2] for k in range(parts)]
        ids, tokens = encode(tok, problem, strategies)
        positions = coupling.position_ids(torch.tensor([ids]))[0].tolist()
        givens = [i + 1 for i, t in enumerate(tokens) if t == "given"]  # each prompt part's xM
        results = [i for i, t in enumerate(tokens) if t == "result"]  # each trace part's result line
        assert len(givens) == len(results) == parts
        for k in range(1, parts):  # the value part k carries sits as "xM = value" would in part k + 1
            x, value = givens[k], results[k - 1] + 1
            assert tokens[x + 2] == "\u2581result" and tokens[value] == f"\u2581{problem.symbols.symbol(problem.parts[k - 1].answer)}"
            assert positions[value] == positions[x] + 2 and positions[value] // coupling.part_stride == k + 1 + part_offset
        # each result is written one on from its part's last line; the last part's value carries nothing
        assert all(positions[r] == positions[r - 1] + 1 for r in results)
        assert positions[results[-1] + 1] == positions[results[-1]] + 1
        # a coupling without result ids (a model coupled before the carry) counts on at every result's value
        old = PositionCoupling.from_dict({k: v for k, v in coupling.to_dict().items() if k != "result_ids"})
        before = old.position_ids(torch.tensor([ids]))[0].tolist()
        assert all(before[r + 1] == before[r] + 1 for r in results)
        assert _advanced(coupling, torch.tensor([ids]), None, 3) == positions[3:]


def test_left_padding_leaves_positions_unchanged(tok, coupling):
    problem = fe.generate(fe.ProblemConfig(min_steps=4, max_steps=4), 1, 2)
    ids, _ = encode(tok, problem, "backward")
    alone = coupling.position_ids(torch.tensor([ids]))[0]
    padded = torch.tensor([[tok.pad_token_id] * 5 + ids])
    mask = torch.tensor([[0] * 5 + [1] * len(ids)])
    assert torch.equal(coupling.position_ids(padded, mask)[0, 5:], alone)


def test_the_coupling_round_trips_through_json_and_checks_its_strides(tok, coupling):
    assert PositionCoupling.from_dict(json.loads(json.dumps(coupling.to_dict()))) == coupling
    with pytest.raises(ValueError, match="given_offset"):
        PositionCoupling.from_tokenizer(tok, given_offset=20)
    with pytest.raises(ValueError, match="try_stride"):
        PositionCoupling.from_tokenizer(tok, try_stride=100)
    class NoTaskWords:
        def get_vocab(self):
            return {"hello": 0, "world": 1}

    with pytest.raises(ValueError, match="word-level vocabulary"):
        PositionCoupling.from_tokenizer(NoTaskWords())


def test_the_coupled_model_reloads_computes_its_positions_and_generates_as_without_a_cache(tmp_path):
    # a large initialisation makes the untrained model write varied tokens (labels, tries), not one repeated word
    build_tiny_model("micro", str(tmp_path), seed=1, coupled=True, overrides={"initializer_range": 0.5})
    model, tok = load_model(str(tmp_path))
    assert type(model).__name__ == "CoupledLlamaForCausalLM" and position_coupling(model) is not None
    coupling = position_coupling(model)
    problem = fe.generate(fe.ProblemConfig(min_steps=3, max_steps=3), 0, 5)
    ids, _ = encode(tok, problem, "forward")
    x = torch.tensor([ids])
    with torch.no_grad():
        implicit = model(input_ids=x).logits
        explicit = model(input_ids=x, position_ids=coupling.position_ids(x)).logits
        plain = model(input_ids=x, position_ids=torch.arange(len(ids))[None]).logits
    assert torch.allclose(implicit, explicit, atol=1e-5) and not torch.allclose(implicit, plain, atol=1e-3)
    with torch.no_grad():  # TRL's fused log-prob head calls the backbone itself: it must couple the positions too
        hidden = model.base_model(input_ids=x).last_hidden_state
        want = model.base_model(input_ids=x, position_ids=coupling.position_ids(x)).last_hidden_state
    assert torch.allclose(hidden, want, atol=1e-5)

    from trainers.generation import chat_prompt, generate

    prompts = [fe.render_prompt(fe.generate(fe.ProblemConfig(min_steps=2, max_steps=6), 3, i)) for i in range(4)]
    cached = generate(model, tok, prompts, max_new_tokens=24)  # batched, left-padded, with a KV cache
    anchors = 0
    for prompt, (completion,) in zip(prompts, cached):
        seq = tok(chat_prompt(tok, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
        for token in completion.token_ids:
            with torch.no_grad():
                assert int(model(input_ids=seq).logits[0, -1].argmax()) == token
            seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
        anchors += sum(t in coupling.numbers or t in coupling.try_ids for t in completion.token_ids)
    assert anchors >= 3  # the generated tokens moved the positions (they hold labels or tries)


@pytest.fixture(scope="module")
def coupled_run(tmp_path_factory):
    """A coupled micro model after a few SFT steps (seconds)."""
    from trainers.sft import SFTRunConfig, run_sft

    out = str(tmp_path_factory.mktemp("coupled"))
    run_sft(SFTRunConfig(out=out, arm="FB", model_size="micro", position_coupling=True, examples=32,
                         num_train_epochs=1, per_device_train_batch_size=8, learning_rate=1e-3, eval_n=0,
                         max_length=512))
    return out


def test_sft_builds_a_coupled_model_and_refuses_what_does_not_fit(tmp_path, micro_dir, coupled_run):
    from trainers.sft import PackedBatches, SFTRunConfig, run_sft

    model, tok = load_model(f"{coupled_run}/model")
    assert position_coupling(model) == PositionCoupling.from_tokenizer(tok)
    with open(f"{coupled_run}/model/config.json") as f:  # trained with per-example attention, saved with SDPA's
        assert "ffreason_packed" not in f.read() and model.config._attn_implementation == "sdpa"

    problems = fe.ProblemSet(fe.ProblemConfig(min_steps=2, max_steps=3), seed=0, size=4)
    examples = []
    for i, problem in enumerate(problems):
        ids, _ = encode(tok, problem, fe.STRATEGIES[i % 2])
        examples.append({"input_ids": ids, "labels": ids})
    coupling = position_coupling(model)
    batch = PackedBatches(tok.pad_token_id, coupling=coupling)(examples)
    assert batch["attention_mask"].dim() == 4  # the jumps of coupled positions cannot mark the examples apart
    flat = batch["position_ids"].flatten().tolist()
    for e in examples:  # each example carries its own coupled positions, wherever it was packed
        want = coupling.position_ids(torch.tensor([e["input_ids"]]))[0].tolist()
        assert any(flat[i:i + len(want)] == want for i in range(len(flat)))

    with pytest.raises(ValueError, match="plain positions"):
        run_sft(SFTRunConfig(out=str(tmp_path / "y"), model_name_or_path=micro_dir, position_coupling=True, examples=8,
                             eval_n=0))


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_rl_scores_with_the_positions_it_sampled_with_and_saves_a_coupled_model(coupled_run, tmp_path, algo):
    from configs import rl_config
    from trainers.rl import make_trainer

    run = make_trainer(rl_config(coupled_run, tmp_path / "rl", algo, max_steps=1, eval_every=0))
    backbone = run.model.base_model
    scored, used = [], []  # whole sequences the trainer scores (no cache, no positions given), and the positions used
    backbone.register_forward_pre_hook(
        lambda m, a, kw: scored.append((kw["input_ids"], kw["attention_mask"])) if kw.get("position_ids") is None else None,
        with_kwargs=True)
    backbone.rotary_emb.register_forward_pre_hook(lambda m, a, kw: used.append(kw["position_ids"]), with_kwargs=True)
    assert run.train()["steps"] == 1
    ids, mask = scored[-1]
    coupled = position_coupling(run.model).position_ids(ids, mask)
    assert torch.equal(used[-1].expand_as(ids) * mask, coupled)  # not 0, 1, 2, ...: TRL's fused head included
    before, _ = load_model(f"{coupled_run}/model")
    after, _ = load_model(str(tmp_path / "rl" / "model"))
    assert type(after).__name__ == "CoupledLlamaForCausalLM" and position_coupling(after) == position_coupling(before)


def test_vllm_is_refused_for_a_coupled_model(coupled_run, tmp_path, monkeypatch):
    import importlib.util

    from configs import rl_config
    from trainers.rl import make_trainer

    find_spec = importlib.util.find_spec  # as on a GPU machine with vllm installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else find_spec(name, *a))

    with pytest.raises(ValueError, match="use_vllm: .* coupled position ids"):
        make_trainer(rl_config(coupled_run, tmp_path / "rl", use_vllm=True))


def _advanced(coupling, ids, mask, start):
    """Positions of ``ids[:, start:]`` from :meth:`PositionCoupling.advance`, one token at a time after
    :meth:`PositionCoupling.start` on ``ids[:, :start]``."""
    _, state = coupling.start(ids[:, :start], None if mask is None else mask[:, :start])
    positions = []
    for token in ids[0, start:]:
        state, position = coupling.advance(state, token[None])
        positions.append(int(position))
    return positions


@given(prompt=st.lists(st.integers(0, 200), min_size=1, max_size=60),
       completion=st.lists(st.integers(0, 200), min_size=1, max_size=40), pad=st.integers(0, 5))
def test_positions_advance_as_they_are_recomputed(coupling, prompt, completion, pad):
    ids = torch.tensor([[0] * pad + prompt + completion])
    mask = torch.tensor([[0] * pad + [1] * (len(prompt) + len(completion))])
    start = pad + len(prompt)
    assert _advanced(coupling, ids, mask, start) == coupling.position_ids(ids, mask)[0, start:].tolist()


def test_positions_advance_over_real_traces(coupling, tok):
    for i, kind in enumerate(["evaluation", "inversion"] * 3):
        problem = fe.generate(fe.ProblemConfig(min_steps=2, max_steps=6, problem_types=[kind]), 5, i)
        prompt = tok(chat_prompt(tok, fe.render_prompt(problem)), add_special_tokens=False)["input_ids"]
        for strategy in ("forward", "backward"):
            trace = tok(fe.write_trace(problem, strategy), add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + trace])
            assert _advanced(coupling, ids, None, len(prompt)) == coupling.position_ids(ids)[0, len(prompt):].tolist()

"""Tokenizer, models, SFT, generation and evaluation on tiny models built here (nothing is downloaded)."""

import json
import math
from collections import Counter

import pytest

torch = pytest.importorskip("torch")

import ffreason_env as fe
from trainers.evaluation import EvalSettings, evaluate, format_report, pass_at_k, summarize, validation_set
from trainers.generation import generate
from trainers.models import load_model
from trainers.sft import SFTRunConfig
from trainers.tokenizer import build_tokenizer, missing_words


def test_tokenizer_round_trips_chat_prompt_and_traces(micro_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(micro_dir)
    for p in (11, 13):
        config = fe.ProblemConfig(p=p, min_steps=1, max_steps=15, ops=["add", "sub", "mul", "div"],
                                  problem_types=["evaluation", "inversion", "composition"], max_parts=5)
        assert missing_words(tok, config) == []
        for problem in fe.ProblemSet(config, seed=1, size=30):
            for s in fe.STRATEGIES:
                messages = [{"role": "user", "content": fe.render_prompt(problem)},
                            {"role": "assistant", "content": fe.write_trace(problem, s)}]
                text = tok.apply_chat_template(messages, tokenize=False)
                ids = tok(text, add_special_tokens=False)["input_ids"]
                assert tok.unk_token_id not in ids
                assert tok.decode(ids) == text  # not a character lost or changed
                prompt_only = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
                assert text.startswith(prompt_only)
                completion = tok(text[len(prompt_only):], add_special_tokens=False)["input_ids"]
                assert tok.decode(completion, skip_special_tokens=True) == messages[1]["content"]


def test_tokenizer_reports_words_it_lacks():
    tok = build_tokenizer([fe.ProblemConfig(p=11, max_steps=5)])
    assert missing_words(tok, fe.ProblemConfig(p=13, max_steps=7)) == [
        "GF(13)", "e11", "e12", "6", "7", "x6", "x7"
    ]
    assert missing_words(build_tokenizer(), fe.ProblemConfig(p=13, max_steps=20, ops=["add", "sub", "mul", "div"])) == []
    ids = tok("answer \u0435" + "1", add_special_tokens=False)["input_ids"]  # Cyrillic look-alike -> unknown
    assert tok.unk_token_id in ids


def test_save_load_generate(micro_dir):
    model, tok = load_model(micro_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    prompts = [fe.render_prompt(p) for p in fe.ProblemSet(fe.ProblemConfig(), size=3)]
    out = generate(model, tok, prompts, max_new_tokens=12)
    assert [len(o) for o in out] == [1, 1, 1] and all(1 <= c.num_tokens <= 12 for o in out for c in o)
    again = generate(model, tok, prompts, max_new_tokens=12)
    assert [o[0].text for o in out] == [o[0].text for o in again]  # greedy is deterministic
    sampled = generate(model, tok, prompts, num_samples=4, temperature=1.0, max_new_tokens=12)
    assert [len(o) for o in sampled] == [4, 4, 4]
    with pytest.raises(ValueError, match="^num_samples"):
        generate(model, tok, prompts, num_samples=2)


def test_missing_model_path_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_model(str(tmp_path / "nope"))
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such directory"):  # a typo under a local directory, not a hub id
        load_model("runs/typo")


def test_sft_lowers_the_loss_and_saves_a_loadable_checkpoint(one_step_run):
    out, summary = one_step_run
    losses = [r["loss"] for r in fe.read_jsonl(f"{out}/metrics.jsonl") if r["phase"] == "sft" and "loss" in r]
    assert len(losses) >= 5
    assert losses[-1] < 0.5 * losses[0]
    model, tok = load_model(f"{out}/model")
    assert summary["optimizer_steps"] == 19200 // 32  # the fixture: 19200 examples, batch 32, one epoch
    assert (json.load(open(f"{out}/sft_summary.json"))["train_tokens"]) > 0


def test_evaluation_of_a_model_that_learnt_one_step_problems(one_step_run):
    out, _ = one_step_run
    model, tok = load_model(f"{out}/model")
    config = fe.ProblemConfig(min_steps=1, max_steps=1, problem_types=["evaluation"])
    problems = validation_set(config, 100)
    report = evaluate(model, tok, problems, EvalSettings(n=100, samples=4), progress=False)
    greedy, sampled = report["greedy"], report["sampled"]
    assert greedy["accuracy"] >= 0.85  # measured 0.98 and 0.92 with seeds 0 and 1; chance is 1/11
    assert greedy["per_kind"]["evaluation"]["strategy"]["forward"] >= 0.9
    assert sum(greedy["per_kind"]["evaluation"]["strategy"].values()) == pytest.approx(1.0)
    pk = sampled["pass@k"]
    assert pk["1"] <= pk["2"] <= pk["4"] and pk["1"] == pytest.approx(sampled["accuracy"])


def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(8, 3, 4) == pytest.approx(1 - math.comb(5, 4) / math.comb(8, 4))
    assert pass_at_k(3, 2, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_summarize_counts_strategies_per_kind():
    config = fe.ProblemConfig(min_steps=2, max_steps=2)
    records = []
    for problem in fe.ProblemSet(config, size=40):
        for response in (fe.write_trace(problem, "forward"), fe.write_trace(problem, "backward"), "answer e0"):
            records.append((problem, fe.verify(problem, response), 1))
    s = summarize(records)
    for kind, block in s["per_kind"].items():
        assert block["strategy"]["forward"] == pytest.approx(1 / 3)
        assert block["strategy"]["unknown"] == pytest.approx(1 / 3)
        assert sum(block["strategy"].values()) == pytest.approx(1.0)
        assert block["accuracy_by_strategy"]["forward"]["accuracy"] == 1.0
        assert block["aligned"] == pytest.approx(1 / 3)
        assert block["accuracy_by_strategy"]["forward"]["first_wrong_item"] == {}


def test_summarize_counts_where_wrong_responses_first_went_wrong():
    config = fe.ProblemConfig(min_steps=4, max_steps=4, problem_types=["evaluation"])
    records, expected = [], Counter()
    for index, problem in enumerate(fe.ProblemSet(config, size=30)):
        lines = fe.write_trace(problem, "forward").splitlines()
        if index % 3:  # a wrong output on step line index % 4, and a wrong answer
            wrong = index % 4
            words = lines[wrong].split()
            words[-1] = problem.symbol((problem.value(words[-1]) + 1) % problem.p)
            lines[wrong] = " ".join(words)
            lines[-1] = f"answer {problem.symbol((problem.answer + 1) % problem.p)}"
            expected[str(wrong)] += 1
        records.append((problem, fe.verify(problem, "\n".join(lines)), 1))
    block = summarize(records)["per_kind"]["evaluation"]["accuracy_by_strategy"]["forward"]
    assert block["first_wrong_item"] == dict(sorted(expected.items())) and sum(expected.values()) == 20
    text = format_report({"greedy": summarize(records)})
    assert "first wrong item, evaluation forward: " + "  ".join(f"{i}:{n}" for i, n in sorted(expected.items())) in text


def test_cli_sft_merges_preset_yaml_and_flags(tmp_path, capsys):
    import yaml

    from trainers.cli import main

    cfg_file = tmp_path / "sft.yaml"
    cfg_file.write_text("learning_rate: 0.01\nexamples: 32\nper_device_train_batch_size: 8\n"
                        "problem: {min_steps: 1, max_steps: 3}\n")
    out = tmp_path / "run"
    assert main(["sft", "--preset", "micro", "--config", str(cfg_file), "--examples", "48", "--arm", "B",
                 "--problem.max-steps", "2", "--out", str(out)]) == 0  # trains through TRL with the 4-D mask
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["examples"] == 48 and resolved["learning_rate"] == 0.01  # flag > file
    assert resolved["model_size"] == "micro" and resolved["position_coupling"] is True  # the preset
    assert (resolved["problem"]["min_steps"], resolved["problem"]["max_steps"]) == (1, 2)  # file, then flag
    assert resolved["arm"] == "B" and resolved["per_device_train_batch_size"] == 8
    assert (out / "model" / "config.json").exists() and list((out / "tb").iterdir())
    assert f"run directory: {out}" in capsys.readouterr().out


def test_optimizer_steps_are_epochs_over_the_examples():
    assert SFTRunConfig(examples=128, per_device_train_batch_size=16).optimizer_steps == 8 * 20  # 20 epochs
    assert SFTRunConfig(examples=100, num_train_epochs=2.5, per_device_train_batch_size=8,
                        gradient_accumulation_steps=2).optimizer_steps == 250 // 16
    with pytest.raises(ValueError, match="^learning_rate: expected > 0"):
        SFTRunConfig(out="x", learning_rate=0).validate()


def test_cli_rejects_bad_input(tmp_path, capsys):
    from trainers.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\n")
    with pytest.raises(SystemExit) as e:
        main(["sft", "--preset", "micro", "--config", str(bad), "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "lr: unknown option for SFTRunConfig" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sft", "--preset", "huge", "--out", str(tmp_path / "r")])
    assert "preset: 'huge' is not one of micro, tiny, qwen1.5b" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["sft", "--preset", "micro", "--position-stretch", "2", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "--position-stretch" in capsys.readouterr().err  # removed: not an option
    with pytest.raises(SystemExit):
        main(["sft", "--preset", "micro", "--arm", "X", "--out", str(tmp_path / "r")])
    assert "arm: 'X' is not one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", str(tmp_path / "missing")])
    assert "no model in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sft", "--model-name-or-path", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")])
    assert "no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sfx"])
    assert "unknown command 'sfx'" in capsys.readouterr().err


def test_help_shows_every_field_with_its_docstring(capsys):
    import dataclasses

    from trainers.cli import main
    from trainers.rl_config import ALGORITHMS

    for argv, cls in [(["sft"], SFTRunConfig), *((["rl", "--algo", a], c) for a, c in ALGORITHMS.items())]:
        with pytest.raises(SystemExit) as e:
            main([*argv, "--help"])
        assert e.value.code == 0
        shown = " ".join(capsys.readouterr().out.replace("│", " ").split())
        for f in dataclasses.fields(cls):
            flag = "--problem.min-steps" if f.name == "problem" else "--" + f.name.replace("_", "-")
            assert flag in shown, (argv, flag)
        docstring = "Optimizer steps." if cls is not SFTRunConfig else "Distinct training examples"
        assert docstring in shown  # a field's docstring is its help


def test_cli_eval_writes_a_report(one_step_run, capsys):
    from trainers.cli import main

    out, _ = one_step_run
    assert main(["eval", out, "-n", "24"]) == 0  # the run's own problems: 1-step evaluation
    report = json.load(open(f"{out}/eval_1-1.json"))
    assert report["greedy"]["n"] == 24 and report["problem_config"]["problem_types"] == ["evaluation"]
    printed = capsys.readouterr().out
    assert "greedy: accuracy" in printed and "evaluation" in printed
    assert main(["eval", out, "-n", "8", "--problem.problem-types", "inversion", "--out", f"{out}/inv.json"]) == 0
    report = json.load(open(f"{out}/inv.json"))
    assert report["greedy"]["n"] == 8 and set(report["greedy"]["per_kind"]) == {"inversion"}
    assert report["problem_config"]["max_steps"] == 1  # the rest of the run's problem settings


def test_shuffled_order_is_a_fresh_permutation_per_epoch():
    from trainers.sft import shuffled_order

    order = shuffled_order(100, epochs=3, seed=1)
    epochs = [order[i:i + 100] for i in range(0, 300, 100)]
    assert all(sorted(e) == list(range(100)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2] and epochs[0] != list(range(100))
    assert shuffled_order(100, 3, seed=1) == order and shuffled_order(100, 3, seed=2) != order


@pytest.mark.parametrize("model_dir", ["micro_dir", "stand_in_dir"])  # Llama; Qwen2 (biased attention)
def test_packed_batches_give_the_padded_batch_loss_on_fewer_rows(model_dir, request):
    """Examples packed in one row must not see each other: per-token losses equal the padded batch's."""
    from trainers.sft import PackedBatches

    model, tok = load_model(request.getfixturevalue(model_dir))
    problems = fe.ProblemSet(fe.ProblemConfig(min_steps=1, max_steps=4), seed=3, size=12)
    examples = []
    for i, problem in enumerate(problems):
        prompt = tok.apply_chat_template([{"role": "user", "content": fe.render_prompt(problem)}],
                                         tokenize=False, add_generation_prompt=True)
        completion = fe.write_trace(problem, fe.STRATEGIES[i % 2]) + tok.eos_token
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(completion, add_special_tokens=False)["input_ids"]
        examples.append({"input_ids": p_ids + c_ids, "labels": [-100] * len(p_ids) + c_ids})
    batch = PackedBatches(tok.pad_token_id)(examples)
    longest = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape[1] == longest and batch["input_ids"].shape[0] < len(examples)
    assert "attention_mask" not in batch
    assert int((batch["labels"] != -100).sum()) == sum(sum(x != -100 for x in e["labels"]) for e in examples)
    assert int((batch["position_ids"] == 0).sum()) >= len(examples)  # each example restarts at position 0

    def token_losses(logits, labels):
        keep = labels[:, 1:] != -100
        return torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], reduction="none")[keep]

    ids = torch.full((len(examples), longest), tok.pad_token_id)
    labels = torch.full((len(examples), longest), -100)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    with torch.no_grad():
        padded = token_losses(model(input_ids=ids, attention_mask=mask).logits, labels).sort().values
        packed = token_losses(model(**batch, use_cache=False).logits, batch["labels"]).sort().values
        leaky = token_losses(model(input_ids=batch["input_ids"], use_cache=False).logits, batch["labels"]).sort().values
    assert torch.allclose(packed, padded, atol=1e-5)  # same per-token losses (rows hold examples in another order)
    assert not torch.allclose(leaky, padded, atol=1e-3)  # attending across examples would have changed them


def test_evaluation_asks_in_its_prompt_style_and_reads_in_its_answer_mode(monkeypatch):
    import trainers.evaluation as ev
    from ffreason_env import PromptStyle, ProblemConfig, render_prompt, write_trace
    from trainers.generation import Completion

    problems = ev.validation_set(ProblemConfig(min_steps=2, max_steps=2, problem_types=["evaluation"]), 3)
    seen = []

    def fake_sample(model, tokenizer, prompts, **kw):
        seen.extend(prompts)
        return [[Completion(write_trace(p, "forward").replace("answer ", "Answer: "), 9)] for p in problems]

    monkeypatch.setattr(ev, "sample", fake_sample)
    settings = ev.EvalSettings(n=3, max_new_tokens=16, prompt_style="few_shot", shots=1, answer_mode="lenient")
    report = ev.evaluate(None, None, problems, settings, progress=False)
    assert seen == [render_prompt(p, PromptStyle("few_shot", shots=1)) for p in problems]
    assert report["greedy"]["accuracy"] == 1.0
    strict = ev.evaluate(None, None, problems, ev.EvalSettings(n=3, max_new_tokens=16), progress=False)
    assert strict["greedy"]["accuracy"] == 0.0
    with pytest.raises(ValueError, match="answer_mode"):
        ev.EvalSettings(answer_mode="loose")

"""The Qwen path rehearsed on CPU: the stand-in (trainers/stand_in.py) through loading, decoding, SFT labels, LoRA,
GRPO with a reference, the runner and ``reproduce selection --preset qwen1.5b`` shrunk to seconds."""

import json
import os

import pytest
import torch
import yaml

import ffreason_env as fe
from trainers.models import STUDY_LORA, load_model
from trainers.stand_in import INSTRUCT_SAMPLING, SYSTEM_PROMPT


def test_the_stand_in_is_a_qwen2_with_qwens_tokenizer_template_and_sampling_defaults(stand_in_dir):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig, Qwen2Tokenizer

    tok = AutoTokenizer.from_pretrained(stand_in_dir)
    assert isinstance(tok, Qwen2Tokenizer) and tok.unk_token is None and tok.eos_token == "<|im_end|>"
    assert AutoConfig.from_pretrained(stand_in_dir).model_type == "qwen2"
    shipped = GenerationConfig.from_pretrained(stand_in_dir)
    assert shipped.repetition_penalty == INSTRUCT_SAMPLING["repetition_penalty"] and shipped.top_k == 20
    text = tok.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    assert text == f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    problem = next(iter(fe.ProblemSet(fe.ProblemConfig(), 0, 1)))
    trace = fe.write_trace(problem, "forward")
    assert tok.decode(tok(trace, add_special_tokens=False)["input_ids"]) == trace  # byte-level: lossless


def test_a_loaded_model_decodes_by_our_settings_alone(stand_in_dir, monkeypatch):
    """Greedy evaluation equals a hand-written argmax loop and builds no repetition-penalty processor, though the
    checkpoint's generation_config.json asks for penalty 1.1, top-k 20 and top-p 0.8."""
    from transformers.generation import logits_process

    from trainers.generation import TOKEN_FIELDS, generate, stop_token_ids

    built = []
    original = logits_process.RepetitionPenaltyLogitsProcessor.__init__
    monkeypatch.setattr(logits_process.RepetitionPenaltyLogitsProcessor, "__init__",
                        lambda self, *a, **k: (built.append(a), original(self, *a, **k))[1])
    model, tok = load_model(stand_in_dir)
    ends = stop_token_ids(model, tok)
    assert ends == [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    prompts = [fe.render_prompt(p) for p in fe.ProblemSet(fe.ProblemConfig(), 3, 3)]
    out = generate(model, tok, prompts, max_new_tokens=24, backend="transformers")
    assert not built
    for prompt, (completion,) in zip(prompts, out):
        from trainers.generation import chat_prompt

        ids = tok(chat_prompt(tok, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
        mine = []
        with torch.no_grad():
            for _ in range(24):
                nxt = int(model(input_ids=ids).logits[0, -1].argmax())
                mine.append(nxt)
                if nxt in ends:
                    break
                ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
        assert list(completion.token_ids) == mine
    assert set(model.generation_config.to_diff_dict()) <= {*TOKEN_FIELDS, "transformers_version"}


def test_sft_labels_are_the_response_through_its_end_of_turn_token(stand_in_dir):
    from trainers.generation import chat_prompt
    from trainers.sft import sft_example

    _, tok = load_model(stand_in_dir)
    record = next(iter(fe.sft_records(fe.ProblemConfig(), "FB", 0, 1)))
    ex = sft_example(tok, record["prompt"], record["completion"])
    prompt_ids = tok(chat_prompt(tok, record["prompt"]), add_special_tokens=False)["input_ids"]
    labelled = [t for t in ex["labels"] if t != -100]
    assert ex["labels"][:len(prompt_ids)] == [-100] * len(prompt_ids)  # nothing before the assistant header's end
    assert tok.decode(prompt_ids).endswith("<|im_start|>assistant\n")
    assert ex["input_ids"][-1] == tok.eos_token_id == labelled[-1]  # ends on <|im_end|>, Qwen's newline left out
    assert tok.decode(labelled) == record["completion"] + "<|im_end|>"


def test_sft_examples_of_the_tiny_tokenizer_are_trls_own(micro_dir, tmp_path):
    """The word-level template has nothing after its end token: TRL's prompt-completion tokenization gives the
    same ids and labels, so the tiny recipe's data are what they were."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trainers.sft import sft_example

    model, tok = load_model(micro_dir)
    records = list(fe.sft_records(fe.ProblemConfig(), "FB", 0, 12))
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "completion": [{"role": "assistant", "content": r["completion"]}]} for r in records]
    trainer = SFTTrainer(model=model, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         args=SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to="none",
                                        completion_only_loss=True, max_length=1024))
    theirs = [(r["input_ids"], r["labels"]) for r in trainer.train_dataset]
    assert theirs == [tuple(sft_example(tok, r["prompt"], r["completion"]).values()) for r in records]


def test_lora_wraps_every_linear_layer_but_the_head_in_float32_adapters(stand_in_dir):
    model, _ = load_model(stand_in_dir, lora=STUDY_LORA, dtype="bfloat16")
    wrapped = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {p.dtype for p in trainable.values()} == {torch.float32}  # peft keeps adapters in float32
    assert model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    layer = model.get_base_model().model.layers[0].self_attn.q_proj
    assert (layer.r["default"], layer.scaling["default"], layer.lora_dropout["default"].p) == (64, 2.0, 0.05)


def test_on_a_gpu_every_stage_runs_in_a_process_of_its_own(tmp_path, monkeypatch):
    """A colocated vLLM engine keeps its GPU memory when deleted: one stage per process even with --jobs 1."""
    from baselines import runner
    from stage_fakes import SleepStage

    stages = [SleepStage("a", str(tmp_path / "a"), 0.1), SleepStage("b", str(tmp_path / "b"), 0.1, ["a"])]
    monkeypatch.setattr(runner, "plan", lambda *a, **k: stages)
    monkeypatch.setattr(runner, "write_report", lambda run_dir: None)
    monkeypatch.setattr(runner, "_on_gpu", lambda: True)
    runner.reproduce("selection", "micro", str(tmp_path), jobs=1, echo=lambda line: None)
    pids = {json.load(open(os.path.join(s.out, s.summary_file)))["pid"] for s in stages}
    assert len(pids) == 2 and os.getpid() not in pids


def test_the_process_group_gets_the_configured_timeout(micro_dir, tmp_path, monkeypatch, capsys):
    """RLRun creates accelerate's state before any trainer: the process group's timeout is set there. The run
    says what one optimizer step is, over every process."""
    from datetime import timedelta

    import accelerate

    from configs import rl_config
    from trainers.rl import make_trainer

    seen = []
    real = accelerate.PartialState

    class Spy(real):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(accelerate, "PartialState", Spy)
    make_trainer(rl_config(micro_dir, str(tmp_path / "rl"), ddp_timeout=5400, max_steps=1))
    assert seen[0]["timeout"] == timedelta(seconds=5400)
    assert "grpo: 8 completions per optimizer step, 2 problems x 4 samples (per_device_train_batch_size 8 x " \
           "gradient_accumulation_steps 1 x 1 process(es))" in capsys.readouterr().out


def _shrunk_qwen_preset(path, model_dir):
    """trainers/presets/qwen1.5b.yaml with the stand-in as the model and sizes cut to seconds; every switch of the
    path (LoRA, beta > 0, the ratio budget, gradient checkpointing, accumulation) kept, vLLM and bf16 off (CPU)."""
    from trainers import presets

    p = presets.load("qwen1.5b")
    p["sft"].update(model_name_or_path=model_dir, examples=16, num_train_epochs=1, per_device_train_batch_size=8,
                    bf16=False, max_length=512, eval_n=2)
    p["rl"].update(prompts=8, max_steps=2, per_device_train_batch_size=8, num_generations=4, save_steps=1,
                   save_total_limit=1, eval_every=2, eval_n=2, eval_max_new_tokens=32, bf16=False)
    p["grpo"].update(per_device_train_batch_size=4, gradient_accumulation_steps=2, use_vllm=False)
    p["reproduce"].update(eval_n=2, eval_max_new_tokens=32)
    path.write_text(yaml.safe_dump(p))
    return str(path)


@pytest.fixture(scope="module")
def qwen_selection(stand_in_dir, tmp_path_factory):
    from baselines.cli import main

    root = tmp_path_factory.mktemp("qwen")
    preset = _shrunk_qwen_preset(root / "qwen_cpu.yaml", stand_in_dir)
    out = str(root / "selection")
    assert main(["reproduce", "selection", "--preset", preset, "--out", out]) == 0
    return out, preset


def test_reproduce_selection_runs_the_qwen_preset_end_to_end(qwen_selection, stand_in_dir):
    from safetensors import safe_open
    from transformers import GenerationConfig

    from trainers.budget import ratio_budget

    out, _ = qwen_selection
    report = open(os.path.join(out, "report.md")).read()
    assert "| FB |" in report and "not run" not in report
    for stage in ("sft/FB", "rl-6-9/B"):
        model_dir = os.path.join(out, stage, "model")
        with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
            keys = list(f.keys())
        assert keys and not any("lora" in k for k in keys)  # the adapter merged away
        assert not any(k.startswith("base_model") for k in keys)
        saved = GenerationConfig.from_pretrained(model_dir)
        assert saved.repetition_penalty in (None, 1.0) and saved.top_k in (None, 50) and not saved.do_sample
    cfg = yaml.safe_load(open(os.path.join(out, "rl-6-9/B/config.yaml")))
    _, tok = load_model(stand_in_dir)
    assert cfg["budget_ratio"] == 1.15 and cfg["lora"] and cfg["beta"] == 0.05
    assert cfg["max_completion_length"] == ratio_budget(tok, fe.ProblemConfig(min_steps=6, max_steps=9), 1.15)
    evals = [json.loads(line) for line in open(os.path.join(out, "rl-6-9/B/metrics.jsonl"))
             if json.loads(line)["phase"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2] and all(e["eval_6-9/n"] == 2 for e in evals)
    kept = [d for d in os.listdir(os.path.join(out, "rl-6-9/B/checkpoints")) if d.startswith("checkpoint-")]
    assert kept == ["checkpoint-2"]  # save_total_limit 1


def test_grpo_trains_the_policy_adapter_and_keeps_the_reference_frozen(stand_in_dir, tmp_path, monkeypatch):
    """With beta > 0 on a LoRA policy TRL keeps the reference as a second adapter, ``ref``, a frozen copy of the
    initial one: after a step with reward signal the policy's adapter has moved and the reference's has not.
    (A random model earns no reward, so the rewards here alternate within each group.)"""
    from safetensors.torch import load_file

    import trainers.rl
    from configs import rl_config
    from trainers.rl import make_trainer

    real = trainers.rl.score
    monkeypatch.setattr(trainers.rl, "score", lambda env, problems, texts: (
        [float(i % 2) for i in range(len(texts))], real(env, problems, texts)[1]))
    cfg = rl_config(stand_in_dir, tmp_path / "rl", preset="qwen1.5b", lora=True, beta=0.05, max_steps=1,
                    save_steps=1, eval_every=0, budget_ratio=0.0, max_completion_length=16, prompts=4,
                    per_device_train_batch_size=4, gradient_accumulation_steps=2, num_generations=4,
                    use_vllm=False, bf16=False)
    run = make_trainer(cfg)
    dropouts = [m.p for n, m in run.trainer.model.named_modules() if n.endswith("lora_dropout.default")]
    assert dropouts and set(dropouts) == {0.0}  # TRL's disable_dropout: update and rollout score alike
    frozen = [n for n, p in run.trainer.model.named_parameters() if ".ref." in n]
    assert frozen and not any(p.requires_grad for n, p in run.trainer.model.named_parameters() if ".ref." in n)
    run.train()
    checkpoint = tmp_path / "rl" / "checkpoints" / "checkpoint-1"
    policy = load_file(checkpoint / "adapter_model.safetensors")
    reference = load_file(checkpoint / "ref" / "adapter_model.safetensors")
    b_keys = [k for k in policy if "lora_B" in k]
    assert b_keys and set(b_keys) <= set(reference)
    assert all(torch.count_nonzero(reference[k]) == 0 for k in b_keys)  # LoRA's B starts at zero
    assert any(torch.count_nonzero(policy[k]) > 0 for k in b_keys)


def test_a_killed_qwen_rl_stage_resumes_from_its_checkpoint(qwen_selection):
    from baselines.cli import main

    out, preset = qwen_selection
    stage = os.path.join(out, "rl-6-9/F")
    os.remove(os.path.join(stage, "rl_summary.json"))  # killed after its last checkpoint, before the end
    assert main(["reproduce", "selection", "--preset", preset, "--out", out]) == 0
    log = [json.loads(line) for line in open(os.path.join(out, "stages.jsonl"))]
    assert [r.get("start") for r in log if r["stage"] == "rl-6-9/F" and r["status"] == "ran"][-1] == "resumed"
    assert os.path.exists(os.path.join(stage, "rl_summary.json"))


def test_sft_rl_and_evaluation_show_the_model_one_prompt_system_turn_included(stand_in_dir):
    """The template's default system turn is in all three: SFT's sequences, TRL's rendering of the RL rows, and
    evaluation's prompts."""
    from trl.data_utils import apply_chat_template

    from trainers.envbridge import TrainingProblems
    from trainers.generation import chat_prompt
    from trainers.rl_config import GRPORunConfig
    from trainers.envbridge import make_env
    from trainers.sft import sft_example

    _, tok = load_model(stand_in_dir)
    rows = TrainingProblems.from_env(make_env(GRPORunConfig(out="x", init="y")), 3).rows()
    for row in rows:
        text = row["prompt"][0]["content"]
        shown = chat_prompt(tok, text)
        assert SYSTEM_PROMPT in shown
        assert apply_chat_template({"prompt": row["prompt"]}, tok)["prompt"] == shown  # what GRPO samples from
        ex = sft_example(tok, text, "answer e1")
        assert tok.decode(ex["input_ids"]).startswith(shown)


class _FakeVLLM:
    """TRL's vLLM generator as RLRun's evaluation uses it: ``sync_weights``, a colocated ``llm`` or a server's
    ``vllm_client``; it answers every prompt with fixed token ids."""

    def __init__(self, mode, answer):
        from types import SimpleNamespace

        self.mode, self.answer, self.calls, self.synced = mode, answer, [], 0
        outputs = lambda prompts, params, use_tqdm: [  # noqa: E731
            SimpleNamespace(outputs=[SimpleNamespace(token_ids=answer)] * params["n"]) for _ in prompts]
        self.llm = SimpleNamespace(generate=lambda prompts, params, use_tqdm: (self.calls.append((prompts, params)),
                                                                               outputs(prompts, params, use_tqdm))[1])
        self.vllm_client = SimpleNamespace(generate=lambda prompts, **kw: (
            self.calls.append((prompts, kw)), {"completion_ids": [answer] * (len(prompts) * kw["n"])})[1])

    def sync_weights(self):
        self.synced += 1


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_evaluation_through_the_trainers_vllm_engine_is_greedy_after_a_weight_sync(stand_in_dir, monkeypatch,
                                                                                   mode):
    import sys
    from types import ModuleType

    from trainers.evaluation import greedy_records
    from trainers.generation import vllm_engine

    vllm = ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    _, tok = load_model(stand_in_dir)
    problems = list(fe.ProblemSet(fe.ProblemConfig(), 5, 3))
    answer = tok(fe.write_trace(problems[0], "forward"), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    fake = _FakeVLLM(mode, answer)
    records = greedy_records(None, tok, problems, 40, engine=vllm_engine(fake))
    assert fake.synced == 1 and len(fake.calls) == 1
    prompts, params = fake.calls[0]
    if mode == "colocate":
        prompts = [p["prompt_token_ids"] for p in prompts]
    assert params == {"n": 1, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0, "max_tokens": 40}
    from trainers.generation import chat_prompt

    assert sorted(prompts) == sorted(tok(chat_prompt(tok, fe.render_prompt(p)), add_special_tokens=False)["input_ids"]
                                     for p in problems)
    assert records[0][1].correct and records[0][2] == len(answer)
    from trainers.generation import generate

    sampled = generate(None, tok, [fe.render_prompt(p) for p in problems], num_samples=4, temperature=0.7, top_p=0.9,
                       max_new_tokens=40, engine=vllm_engine(fake))  # the probe set's sampling, through the engine
    assert [len(cs) for cs in sampled] == [4, 4, 4] and fe.verify(problems[0], sampled[0][3].text).correct
    params = fake.calls[-1][1]
    assert (params["n"], params["temperature"], params["top_p"], params["top_k"]) == (4, 0.7, 0.9, 0)


def test_each_process_evaluates_every_nth_problem():
    from types import SimpleNamespace

    from trainers.rl import RLRun

    engine, share = RLRun.eval_engine(SimpleNamespace(rank=1, num_processes=3))
    assert engine is None and share(list(range(8))) == [1, 4, 7]
    from trainers.generation import generate

    assert share([0]) == [] and generate(None, None, share([0])) == []  # more processes than problems


def test_sft_under_accelerate_writes_files_from_the_main_process_only(tmp_path, monkeypatch):
    import accelerate

    from configs import sft_config
    from trainers.sft import run_sft

    monkeypatch.setattr(accelerate.PartialState, "is_main_process", property(lambda self: False))
    out = tmp_path / "sft"
    summary = run_sft(sft_config(str(out), eval_n=2))
    assert summary["optimizer_steps"] >= 1
    assert not any((out / name).exists() for name in ("model", "config.yaml", "sft_summary.json", "eval_sft.json",
                                                      "tb"))


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    from trainers.runlog import last_checkpoint, prune_checkpoints

    for step in (1, 2, 3, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-11").mkdir()  # a partial one, not counted
    prune_checkpoints(str(tmp_path), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-11", "checkpoint-3"]
    assert last_checkpoint(str(tmp_path)).endswith("checkpoint-10")
    prune_checkpoints(str(tmp_path), 0)  # 0 keeps all
    assert len(list(tmp_path.iterdir())) == 3

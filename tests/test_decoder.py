"""The KV-cached decoder against Hugging Face ``generate``: the same greedy tokens, the same sampling distribution."""

import pytest

torch = pytest.importorskip("torch")

import ffreason_env as fe
from configs import rl_config
from trainers.decoder import decode, unsupported
from trainers.generation import chat_prompt, generate, generate_ids
from trainers.models import build_tiny_model, load_model


@pytest.fixture(scope="module", params=["plain", "coupled", "grouped-query"])
def model(request, tmp_path_factory):
    """A micro model with spread-out logits (initializer_range 0.5): a greedy choice is rarely a near tie, so a
    different token means a different computation. ``grouped-query``: 2 key/value heads for 4 query heads."""
    path = str(tmp_path_factory.mktemp(request.param))
    overrides = {"initializer_range": 0.5, **({"num_key_value_heads": 2} if request.param == "grouped-query" else {})}
    build_tiny_model("micro", path, coupled=request.param == "coupled", overrides=overrides)
    model, tokenizer = load_model(path)
    return model.eval(), tokenizer


def _batch(tokenizer, n=6, steps=(2, 5)):
    config = fe.ProblemConfig(min_steps=steps[0], max_steps=steps[1])
    prompts = [chat_prompt(tokenizer, fe.render_prompt(fe.generate(config, 0, i))) for i in range(n)]
    enc = tokenizer(prompts, add_special_tokens=False, return_tensors="pt", padding=True)
    assert n == 1 or (enc["attention_mask"] == 0).any()  # prompts of several lengths: left padding
    return enc["input_ids"], enc["attention_mask"]


def _both(model, ids, mask, **kw):
    torch.manual_seed(0)
    ours = decode(model, ids, mask, **kw)
    torch.manual_seed(0)
    with torch.no_grad():
        theirs = model.generate(input_ids=ids, attention_mask=mask, **kw)
    return ours, theirs


def test_greedy_tokens_equal_generate_with_left_padding_and_eos_mid_batch(model):
    model, tokenizer = model
    ids, mask = _batch(tokenizer)
    kw = dict(max_new_tokens=30, pad_token_id=tokenizer.pad_token_id, do_sample=False)
    free = decode(model, ids, mask, eos_token_id=tokenizer.eos_token_id, **kw)[:, ids.shape[1]:]
    # end-of-sequence: a token some rows produce early and others not at all
    counts = {t: sum(t in row[:10] for row in free.tolist()) for t in set(free[:, 3:10].flatten().tolist())}
    stop = next(t for t, c in sorted(counts.items(), key=lambda kv: -kv[1]) if 0 < c < len(free))
    ours, theirs = _both(model, ids, mask, eos_token_id=[tokenizer.eos_token_id, stop], **kw)
    assert torch.equal(ours, theirs)
    new = ours[:, ids.shape[1]:]
    ended = [(row == stop).any().item() for row in new]
    assert any(ended) and not all(ended)  # the batch shrank mid-way and the rest went on
    assert (new[torch.tensor(ended)] == tokenizer.pad_token_id).any()  # padded after their end, as generate does


def test_samples_equal_generate_under_a_seed(model):
    model, tokenizer = model
    ids, mask = _batch(tokenizer, n=3)
    ours, theirs = _both(model, ids, mask, max_new_tokens=20, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=0.8, top_k=0,
                         num_return_sequences=4)
    assert ours.shape[0] == 12 and torch.equal(ours, theirs)


def _next_token_probs(model, ids, temperature, top_p):
    from transformers.generation.logits_process import TopPLogitsWarper

    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, -1].float() / temperature
    return TopPLogitsWarper(top_p)(ids, logits).softmax(-1)[0]


def test_sampling_draws_from_the_models_distribution(model):
    """4000 samples of two tokens: the first and (given the commonest first) the second token's frequencies match
    the model's own next-token probabilities after temperature and top-p, within 5 standard errors."""
    model, tokenizer = model
    ids, _ = _batch(tokenizer, n=1, steps=(2, 2))
    n, temperature, top_p = 4000, 1.5, 0.95
    torch.manual_seed(1)
    out = decode(model, ids, None, max_new_tokens=2, eos_token_id=tokenizer.eos_token_id,
                 pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=temperature, top_p=top_p,
                 num_return_sequences=n)[:, ids.shape[1]:]

    def check(samples, prefix):
        p = _next_token_probs(model, prefix, temperature, top_p)
        freq = torch.bincount(samples, minlength=len(p)).double() / len(samples)
        assert (freq[p == 0] == 0).all()  # nothing outside the nucleus
        err = (p * (1 - p) / len(samples)).sqrt()
        assert ((freq - p).abs() <= 5 * err + 1e-9).all()
        return p

    p = check(out[:, 0], ids)
    assert (p > 0).sum() > 2  # a real distribution, not one sure token
    first = int(torch.mode(out[:, 0]).values)
    check(out[out[:, 0] == first, 1], torch.cat([ids, torch.tensor([[first]])], 1))


def test_generate_uses_the_decoder_and_returns_what_transformers_returns(model):
    model, tokenizer = model
    prompts = [fe.render_prompt(fe.generate(fe.ProblemConfig(), 3, i)) for i in range(5)]
    ours = generate(model, tokenizer, prompts, max_new_tokens=25)
    theirs = generate(model, tokenizer, prompts, max_new_tokens=25, backend="transformers")
    assert ours == theirs and unsupported(model) is None
    with pytest.raises(ValueError, match="backend"):
        generate_ids(model, None, None, max_new_tokens=1, eos_token_id=0, pad_token_id=0, do_sample=False,
                     backend="vllm")


def test_unsupported_models_are_named_and_generate_falls_back(model):
    model, tokenizer = model
    half = type(model)(model.config).to(torch.bfloat16)
    assert "bfloat16" in unsupported(half)
    with pytest.raises(ValueError, match="decode: .*bfloat16"):
        decode(half, torch.ones((1, 3), dtype=torch.long), None, max_new_tokens=2, eos_token_id=0, pad_token_id=0)
    assert unsupported(torch.nn.Linear(2, 2)).startswith("Linear is not")
    assert len(generate(half, tokenizer, ["x"], max_new_tokens=3)) == 1  # through model.generate


def test_grpo_samples_through_the_decoder_the_tokens_trl_would(micro_dir, tmp_path, monkeypatch):
    from trl import GRPOTrainer

    from trainers.rl import make_trainer

    run = make_trainer(rl_config(micro_dir, tmp_path / "r", eval_every=0))
    trainer = run.trainer
    prompt_ids = [ids for ids in run.tokenizer([chat_prompt(run.tokenizer, fe.render_prompt(p))
                                                for p in run.train_problems.problems[:2]],
                                               add_special_tokens=False)["input_ids"] for _ in range(2)]
    model = trainer.accelerator.unwrap_model(trainer.model)
    with monkeypatch.context() as m:  # the override does not reach transformers' generate
        m.setattr(model, "generate", lambda *a, **k: pytest.fail("called model.generate"))
        torch.manual_seed(3)
        ours, logprobs = trainer._generate_single_turn(prompt_ids, None, {}, 2)
    torch.manual_seed(3)
    theirs, _ = GRPOTrainer._generate_single_turn(trainer, prompt_ids, None, {}, 2)
    assert ours == theirs and len(ours) == 4 and logprobs is None

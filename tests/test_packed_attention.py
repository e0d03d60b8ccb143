"""Attention within each example of a packed SFT row equals SDPA under the block-diagonal mask."""

import pytest

torch = pytest.importorskip("torch")

import ffreason_env as fe
from trainers import packed_attention
from trainers.models import build_tiny_model, position_coupling
from trainers.sft import PackedBatches


def _examples(tokenizer, n):
    out = []
    for r in fe.sft_records(fe.ProblemConfig(), "FB", 0, n):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                               add_generation_prompt=True)
        ids = tokenizer(prompt + r["completion"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        out.append({"input_ids": ids, "labels": [-100] * start + ids[start:]})
    return out


def test_loss_and_gradients_equal_masked_sdpa(tmp_path):
    model, tokenizer = build_tiny_model("micro", str(tmp_path), coupled=True)
    batch = PackedBatches(tokenizer.pad_token_id, position_coupling(model))(_examples(tokenizer, 12))
    assert batch["input_ids"].shape[0] < 12  # several examples share a row
    results = []
    for implementation in ("sdpa", packed_attention.NAME):
        model.set_attn_implementation(implementation)
        model.zero_grad()
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))


def test_without_a_block_mask_it_is_sdpa(tmp_path):
    model, tokenizer = build_tiny_model("micro", str(tmp_path), coupled=True)
    ids = torch.tensor([tokenizer("step 1 : x1 = x0 + 3", add_special_tokens=False)["input_ids"]])
    model.eval()
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        model.set_attn_implementation(packed_attention.NAME)
        assert torch.equal(model(input_ids=ids).logits, plain)

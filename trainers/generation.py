"""Batched sampling from a causal LM: the rollout path of PPO and the evaluator, and of GRPO on CPU.

:func:`generate_ids` runs :func:`trainers.decoder.decode` (a KV-cached loop,
greedy output identical to Hugging Face ``generate``) where it covers the
model, and ``model.generate`` elsewhere (other architectures, GPUs, LoRA).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

__all__ = ["chat_prompt", "generate", "generate_ids", "Completion", "BACKENDS"]

BACKENDS = ("auto", "transformers")
"""``auto``: :mod:`trainers.decoder` where it covers the model, else ``model.generate``; ``transformers``: always
``model.generate``."""


def chat_prompt(tokenizer, prompt: str) -> str:
    """The prompt as the model sees it: one user turn plus the generation prompt."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


def generate_ids(model, input_ids, attention_mask, *, max_new_tokens: int, eos_token_id, pad_token_id: int,
                 do_sample: bool, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 num_return_sequences: int = 1, backend: str = "auto"):
    """``model.generate``'s output ids (prompt + completion) for a left-padded batch, by ``backend``."""
    import torch

    from .decoder import decode, unsupported

    if backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r} is not one of {BACKENDS}")
    kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
                  do_sample=do_sample, num_return_sequences=num_return_sequences)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
    if backend == "auto" and unsupported(model) is None:
        return decode(model, input_ids, attention_mask, **kwargs)
    with torch.no_grad():
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


class Completion(NamedTuple):
    """One sampled response: its text (special tokens removed), its length and ids (EOS included if produced)."""

    text: str
    num_tokens: int
    token_ids: tuple[int, ...] = ()


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 512,
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "generate",
    backend: str = "auto",
) -> list[list[Completion]]:
    """``num_samples`` completions per prompt (greedy when ``temperature == 0``), in prompt order.

    Prompts are batched longest first to waste little padding; ``batch_size``
    counts sequences (prompts x samples).
    """
    from tqdm.auto import tqdm

    if num_samples < 1:
        raise ValueError(f"num_samples: expected >= 1, got {num_samples}")
    if temperature == 0.0 and num_samples > 1:
        raise ValueError("num_samples: greedy decoding (temperature 0) gives one completion per prompt")
    encoded = tokenizer([chat_prompt(tokenizer, p) for p in prompts], add_special_tokens=False)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    per_batch = max(1, batch_size // num_samples)
    results: list[list[Completion]] = [[] for _ in encoded]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(encoded), desc=desc, disable=not progress, leave=False)
    device = next(model.parameters()).device
    try:
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            enc = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            out = generate_ids(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens,
                               eos_token_id=eos, pad_token_id=pad, do_sample=temperature > 0, temperature=temperature,
                               top_p=top_p, num_return_sequences=num_samples, backend=backend)
            new = out[:, enc["input_ids"].shape[1] :]
            for row, ids in enumerate(new.tolist()):
                n = len(ids)
                for j, t in enumerate(ids):
                    if t == eos or t == pad:
                        n = j + (1 if t == eos else 0)
                        break
                text = tokenizer.decode(ids[:n], skip_special_tokens=True)
                results[idx[row // num_samples]].append(Completion(text, n, tuple(ids[:n])))
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return results

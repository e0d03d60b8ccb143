"""Batched sampling from a causal LM with Hugging Face ``generate`` (the CPU rollout path)."""

from __future__ import annotations

from typing import NamedTuple, Sequence

__all__ = ["chat_prompt", "generate", "Completion"]


def chat_prompt(tokenizer, prompt: str) -> str:
    """The prompt as the model sees it: one user turn plus the generation prompt."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


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
) -> list[list[Completion]]:
    """``num_samples`` completions per prompt (greedy when ``temperature == 0``), in prompt order.

    Prompts are batched longest first to waste little padding; ``batch_size``
    counts sequences (prompts x samples).
    """
    import torch
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
            kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos)
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=num_samples)
            else:
                kwargs.update(do_sample=False)
            with torch.no_grad():
                out = model.generate(**enc, **kwargs)
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

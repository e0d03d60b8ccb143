"""Batched sampling from a causal LM: the rollout path of PPO and the evaluator, and of GRPO on CPU.

:func:`generate_ids` runs :func:`trainers.decoder.decode` (a KV-cached loop,
greedy output identical to Hugging Face ``generate``) where it covers the
model, and ``model.generate`` elsewhere (other architectures, GPUs, LoRA).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

__all__ = ["chat_prompt", "generate", "generate_ids", "Completion", "BACKENDS", "neutral_generation_config",
           "stop_token_ids", "vllm_engine"]

BACKENDS = ("auto", "transformers")
"""``auto``: :mod:`trainers.decoder` where it covers the model, else ``model.generate``; ``transformers``: always
``model.generate``."""


TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
"""What a model's ``generation_config`` keeps once loaded: facts of its vocabulary, not decoding choices."""


def neutral_generation_config(config):
    """``config`` with its token ids only: Qwen2.5-Instruct's ships repetition penalty 1.1, top-k 20 and top-p 0.8,
    which ``generate`` applies wherever a call leaves them unset (greedy evaluation included) while TRL's rollouts
    set their own, so every loaded model gets this one (:func:`trainers.models.load_model`), and every decoding is
    specified by the project's settings alone, saved checkpoints included."""
    from transformers import GenerationConfig

    return GenerationConfig(**{k: getattr(config, k) for k in TOKEN_FIELDS if getattr(config, k, None) is not None})


def stop_token_ids(model, tokenizer) -> list[int]:
    """The tokens that end a response: the tokenizer's end of sequence and every one the model's
    ``generation_config`` lists (Qwen2.5-Instruct: ``<|im_end|>`` and ``<|endoftext|>``)."""
    listed = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    listed = [] if listed is None else [listed] if isinstance(listed, int) else list(listed)
    return list(dict.fromkeys([tokenizer.eos_token_id, *listed]))


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


def vllm_engine(vllm_generation):
    """An ``engine`` for :func:`generate` from TRL's vLLM generator (``GRPOTrainer.vllm_generation``), its weights
    first synced with the policy: a colocated engine generates each process's prompts, a ``trl vllm-serve`` server
    those of the main process (its client lives there). Greedy unless asked to sample; penalties and truncations
    off, as in training."""
    vllm_generation.sync_weights()

    def complete(prompt_ids: list[list[int]], max_new_tokens: int, n: int = 1, temperature: float = 0.0,
                 top_p: float = 1.0) -> list[list[int]]:
        """``n`` completions per prompt, prompt by prompt."""
        params = dict(n=n, temperature=temperature, top_p=top_p, top_k=0, repetition_penalty=1.0)
        if vllm_generation.mode == "server":
            out = vllm_generation.vllm_client.generate(prompts=prompt_ids, max_tokens=max_new_tokens, **params)
            return [list(ids) for ids in out["completion_ids"]]
        from vllm import SamplingParams

        outputs = vllm_generation.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids],
                                               SamplingParams(max_tokens=max_new_tokens, **params), use_tqdm=False)
        return [list(c.token_ids) for o in outputs for c in o.outputs]

    return complete


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
    engine=None,
) -> list[list[Completion]]:
    """``num_samples`` completions per prompt (greedy when ``temperature == 0``), in prompt order.

    Prompts are batched longest first to waste little padding; ``batch_size``
    counts sequences (prompts x samples). ``engine``: a function of
    ``(prompt token ids, max_new_tokens, num_samples, temperature, top_p)``
    that returns the completions' token ids, prompt by prompt, such as
    :func:`vllm_engine`'s, used in place of ``model``.
    """
    from tqdm.auto import tqdm

    if num_samples < 1:
        raise ValueError(f"num_samples: expected >= 1, got {num_samples}")
    if temperature == 0.0 and num_samples > 1:
        raise ValueError("num_samples: greedy decoding (temperature 0) gives one completion per prompt")
    if not prompts:  # a process whose share of an evaluation is empty
        return []
    encoded = tokenizer([chat_prompt(tokenizer, p) for p in prompts], add_special_tokens=False)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    per_batch = max(1, batch_size // num_samples)
    results: list[list[Completion]] = [[] for _ in encoded]
    eos = stop_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id
    was_training = model is not None and model.training  # an engine may come without the model
    if model is not None:
        model.eval()
    bar = tqdm(total=len(encoded), desc=desc, disable=not progress, leave=False)
    device = next(model.parameters()).device if engine is None else None
    try:
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            if engine is not None:
                new = engine([encoded[i] for i in idx], max_new_tokens, num_samples, temperature, top_p)
            else:
                enc = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
                enc = {k: v.to(device) for k, v in enc.items()}
                out = generate_ids(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens,
                                   eos_token_id=eos, pad_token_id=pad, do_sample=temperature > 0,
                                   temperature=temperature, top_p=top_p, num_return_sequences=num_samples,
                                   backend=backend)
                new = out[:, enc["input_ids"].shape[1] :].tolist()
            for row, ids in enumerate(new):
                n = len(ids)
                for j, t in enumerate(ids):
                    if t in eos or t == pad:
                        n = j + (1 if t in eos else 0)
                        break
                text = tokenizer.decode(ids[:n], skip_special_tokens=True)
                results[idx[row // num_samples]].append(Completion(text, n, tuple(ids[:n])))
            bar.update(len(idx))
    finally:
        bar.close()
        if model is not None:
            model.train(was_training)
    return results

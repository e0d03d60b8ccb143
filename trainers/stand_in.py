"""A stand-in for Qwen2.5-Instruct that needs no download: what tests and the GPU check run the Qwen path on.

:func:`build_stand_in` saves a randomly initialised ``Qwen2ForCausalLM`` (plain
positions, biased attention, tied embeddings) of a named shape, with a
``Qwen2Tokenizer``: byte-level BPE trained here on the task's own text with
Qwen's pre-tokenizer, Qwen's special tokens, a chat template of Qwen's layout
(a default system turn when the conversation has none, ``<|im_end|>`` after
each turn) and Qwen2.5-Instruct's sampling defaults in ``generation_config.json``
(repetition penalty 1.1, top-k 20, top-p 0.8), so that everything the real
checkpoint brings to our code is there. Shape ``1.5b`` is Qwen2.5-1.5B's
(28 layers, 1536 wide, a 151,936-entry embedding), ``micro`` is for tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["SHAPES", "StandInShape", "SYSTEM_PROMPT", "CHAT_TEMPLATE", "INSTRUCT_SAMPLING", "build_bpe_tokenizer",
           "build_stand_in"]

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SYSTEM_PROMPT = "You are a helpful assistant."
"""The system turn the template inserts when a conversation has none (Qwen's own inserts one too)."""
CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen's layout: ``<|im_start|>ROLE\\nTEXT<|im_end|>\\n`` per turn, a newline after the end-of-turn token."""
INSTRUCT_SAMPLING = {"do_sample": True, "repetition_penalty": 1.1, "temperature": 0.7, "top_k": 20, "top_p": 0.8}
"""Qwen2.5-Instruct's ``generation_config.json`` sampling defaults, which our decoding must not inherit."""


@dataclass(frozen=True)
class StandInShape:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int | None = None
    """Embedding rows; None: the tokenizer's size (a real checkpoint pads its embedding beyond it)."""


SHAPES: dict[str, StandInShape] = {
    "micro": StandInShape(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=128),
    "1.5b": StandInShape(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         intermediate_size=8960, vocab_size=151_936),
}
"""``1.5b``: Qwen2.5-1.5B-Instruct's config.json; ``micro``: seconds on a CPU."""


def _corpus(examples: int):
    """The text the tokenizer is trained on: prompts and traces of every kind and strategy, GF(11) and GF(13)."""
    from ffreason_env import sft_records

    from .tokenizer import default_vocab_configs

    for config in default_vocab_configs():
        for r in sft_records(config, "FB", 0, examples):
            yield r["prompt"]
            yield r["completion"]


def build_bpe_tokenizer(vocab_size: int = 1024, examples: int = 400):
    """A ``Qwen2Tokenizer`` whose byte-level BPE vocabulary and merges are trained on the task's text."""
    import json

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT, IM_START, IM_END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_corpus(examples), trainer)
    trained = json.loads(bpe.to_str())["model"]
    return Qwen2Tokenizer(vocab=trained["vocab"], merges=[tuple(m) for m in trained["merges"]], eos_token=IM_END,
                          pad_token=END_OF_TEXT, unk_token=None, additional_special_tokens=[IM_START, IM_END],
                          chat_template=CHAT_TEMPLATE, model_max_length=32768)


def build_stand_in(out_dir: str, shape: str = "micro", seed: int = 0, tokenizer=None):
    """Save a random Qwen2 model of ``shape`` and the BPE tokenizer (built unless given) to ``out_dir``; return
    both."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if shape not in SHAPES:
        raise ValueError(f"shape: {shape!r} is not one of {sorted(SHAPES)}")
    size = SHAPES[shape]
    tokenizer = tokenizer or build_bpe_tokenizer()
    eos, end_of_text = tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    config = Qwen2Config(
        vocab_size=size.vocab_size or len(tokenizer), hidden_size=size.hidden_size,
        num_hidden_layers=size.num_hidden_layers, num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads, intermediate_size=size.intermediate_size,
        max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=end_of_text, eos_token_id=eos, pad_token_id=end_of_text,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=end_of_text, pad_token_id=end_of_text,
                                               eos_token_id=[eos, end_of_text], **INSTRUCT_SAMPLING)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model, tokenizer

"""A word-level tokenizer over exactly the task's vocabulary, with a chat template.

Each word of ``ffreason_env``'s grammar is one token, in two variants: at the
start of a line (``step``) and after a space (``▁step``: spaces become ``▁`` and
stay in the token), so decoding gives back the text byte for byte. ``\\n`` is
a token of its own. Anything else becomes ``<unk>``.
"""

from __future__ import annotations

from typing import Iterable

from ffreason_env import ProblemConfig

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "task_vocabulary",
    "default_vocab_configs",
    "build_tokenizer",
    "missing_words",
]

PAD, UNK, EOS = "<pad>", "<unk>", "<|end|>"
ROLES = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, UNK, EOS, *ROLES)
SPACE = "\u2581"

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)
"""``<|user|>PROMPT<|end|><|assistant|>TRACE<|end|>``: the prompt with the generation
prompt is a prefix of the whole conversation, as TRL's completion masks need."""


def default_vocab_configs(max_steps: int = 20, max_parts: int = 6) -> list[ProblemConfig]:
    """The configs the tiny model's vocabulary covers: GF(11) and GF(13), every kind."""
    kinds = ["evaluation", "inversion", "composition"]
    return [
        ProblemConfig(p=p, max_steps=max_steps, max_parts=max_parts, problem_types=kinds, ops=["add", "sub", "mul", "div"])
        for p in (11, 13)
    ]


def task_vocabulary(configs: Iterable[ProblemConfig]) -> list[str]:
    """Union of the configs' words, in first-seen order."""
    words: dict[str, None] = {}
    for config in configs:
        words.update(dict.fromkeys(config.vocabulary()))
    return list(words)


# a piece is a word with its leading space, a newline, or a lone space
_PIECE = rf"{SPACE}?[^{SPACE}\n]+|\n|{SPACE}"


def build_tokenizer(configs: Iterable[ProblemConfig] | None = None, model_max_length: int = 2048):
    """A ``PreTrainedTokenizerFast`` whose vocabulary is the task's words, specials and ``\\n``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    configs = list(configs) if configs is not None else default_vocab_configs()
    words = task_vocabulary(configs)
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, "\n", SPACE, *words, *(SPACE + w for w in words)]:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Replace(" ", SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECE), behavior="isolated")
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.Fuse()])
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=EOS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
        padding_side="left",
    )


def missing_words(tokenizer, config: ProblemConfig) -> list[str]:
    """The words of ``config``'s grammar that ``tokenizer`` turns into ``<unk>``."""
    unk = tokenizer.unk_token_id
    if unk is None:  # byte-level BPE (e.g. Qwen): every string is encodable
        return []
    missing = []
    for word in config.vocabulary():
        for text in (word, f"step {word}"):  # at a line start and after a space
            if unk in tokenizer(text, add_special_tokens=False)["input_ids"]:
                missing.append(word)
                break
    return missing

"""Models: a tiny from-scratch Llama for CPU, or any Hugging Face checkpoint, through one loader.

The tiny model is a standard ``LlamaForCausalLM`` (not Qwen2: its tokenizer
class would rewrite a custom vocabulary) over :mod:`trainers.tokenizer`'s
word-level vocabulary, built from a named size preset and saved with
``save_pretrained``, so everything downstream loads it exactly like a hub
checkpoint such as ``Qwen/Qwen2.5-1.5B-Instruct``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

__all__ = ["PRESETS", "ModelPreset", "LoraSpec", "STUDY_LORA", "build_tiny_model", "load_model", "position_coupling",
           "is_local_path", "resolve_model_dir"]


@dataclass(frozen=True)
class ModelPreset:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    """Std of the initial weights. 0.05 for ``tiny``: the plateau before the arithmetic table is learnt ended at
    step 200 instead of 400-600 (``python -m benchmarks sft_plateau``, docs/results.md)."""


PRESETS: dict[str, ModelPreset] = {
    "micro": ModelPreset(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
    "tiny": ModelPreset(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
                        initializer_range=0.05),
}
"""Sizes of the from-scratch model: ``micro`` for tests, ``tiny`` for CPU runs."""


@dataclass(frozen=True)
class LoraSpec:
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    target_modules: str = "all-linear"


STUDY_LORA = LoraSpec()
"""The study's adapter: r=64, alpha=128, dropout 0.05."""


def build_tiny_model(preset: str, out_dir: str, seed: int = 0, vocab_configs=None, overrides: dict | None = None,
                     coupled: bool = False):
    """Build a fresh model + tokenizer from ``preset``, save both to ``out_dir``, return them.

    ``overrides`` replaces ``LlamaConfig`` fields (``initializer_range``, ``num_attention_heads``, ...) for
    experiments such as ``python -m benchmarks sft_plateau``. ``coupled`` builds a
    :class:`~trainers.coupled_llama.CoupledLlamaForCausalLM`, whose position ids follow the step labels.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from .tokenizer import build_tokenizer

    if preset not in PRESETS:
        raise ValueError(f"preset: {preset!r} is not one of {sorted(PRESETS)}")
    size = PRESETS[preset]
    tokenizer = build_tokenizer(vocab_configs, model_max_length=size.max_position_embeddings)
    fields = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        **{**asdict(size), "num_key_value_heads": size.num_attention_heads, **(overrides or {})},
    )
    if coupled:
        from .coupled_llama import CoupledLlamaConfig, CoupledLlamaForCausalLM
        from .positions import PositionCoupling

        config = CoupledLlamaConfig(**fields, position_coupling=PositionCoupling.from_tokenizer(tokenizer).to_dict())
        model_class = CoupledLlamaForCausalLM
    else:
        config, model_class = LlamaConfig(**fields), LlamaForCausalLM
    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model, tokenizer


def is_local_path(name: str) -> bool:
    """A path, not a hub id: explicit, existing, or under an existing directory (``runs/typo`` fails at once
    instead of being looked up on the hub as the repository ``typo`` of a user ``runs``)."""
    return name.startswith((".", "/", "~")) or os.path.exists(name) or os.path.isdir(name.split("/")[0])


def resolve_model_dir(name: str) -> str:
    """The model a run directory holds (``RUN/model``), a model directory itself, or a hub id unchanged."""
    if not is_local_path(name):
        return name
    path = os.path.expanduser(name)
    if os.path.isfile(os.path.join(path, "model", "config.json")):
        return os.path.join(path, "model")
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    raise FileNotFoundError(f"model: no model in {name!r} (expected {name}/model/config.json or {name}/config.json)")


def position_coupling(model):
    """The model's :class:`~trainers.positions.PositionCoupling`, or None for plain positions (any other model)."""
    from .positions import PositionCoupling

    spec = getattr(getattr(model, "config", None), "position_coupling", None)
    return None if spec is None else PositionCoupling.from_dict(spec)


def load_model(name_or_path: str, lora: LoraSpec | None = None, dtype: str = "auto", device: str | None = None):
    """``(model, tokenizer)`` from a local directory or a hub id, optionally wrapped in a LoRA adapter; the model's
    ``generation_config`` keeps its token ids only (:func:`~trainers.generation.neutral_generation_config`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import coupled_llama  # noqa: F401  (registers the coupled model type with the Auto classes)
    from .generation import neutral_generation_config

    if is_local_path(name_or_path) and not os.path.isdir(os.path.expanduser(name_or_path)):
        raise FileNotFoundError(f"model: no such directory {name_or_path!r}")
    path = os.path.expanduser(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    model.generation_config = neutral_generation_config(model.generation_config)
    if device is not None:
        model.to(device)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    return model, tokenizer

"""Supervised fine-tuning on the study's arms (F, B, FB) with TRL's SFTTrainer.

Loss on completion tokens only (sequences tokenized by :func:`sft_example`, as the chat
template). Writes to RUN_DIR: ``config.yaml`` (resolved), ``metrics.jsonl``,
``tb/`` (TensorBoard), ``model/`` (the checkpoint ``ffreason eval`` and the RL
trainers load) and ``eval_sft.json`` (greedy accuracy on held-out problems of
the training distribution).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ffreason_env import ARMS, ProblemConfig, sft_records
from ffreason_env.config import check_int

from .presets import DEFAULT_PRESET
from .settings import save_config

__all__ = ["SFTRunConfig", "run_sft", "shuffled_order", "PackedBatches", "sft_example"]


@dataclass
class SFTRunConfig:
    """Every knob of an SFT run; transformers' and TRL's names where they have the knob."""

    out: str = ""
    """Run directory (required)."""
    preset: str = DEFAULT_PRESET
    """The preset (trainers/presets/NAME.yaml, section ``sft``) the other values start from."""
    arm: str = "FB"
    """F (forward traces only), B (backward only) or FB (a coin per example)."""
    model_name_or_path: str | None = None
    """Checkpoint directory or hub id to start from (e.g. Qwen/Qwen2.5-1.5B-Instruct); None builds ``model_size``
    from scratch."""
    model_size: str = "tiny"
    """Size of the from-scratch model (micro | tiny) when ``model_name_or_path`` is None."""
    position_coupling: bool = False
    """Build the from-scratch model with position ids coupled to the step labels (:mod:`trainers.positions`): a
    trace line sits at the positions of the prompt line it applies, at any chain length. A model given by
    ``model_name_or_path`` keeps its own positions (asking for coupling it lacks is an error)."""
    lora: bool = False
    """Train a LoRA adapter (r=64, alpha=128, dropout 0.05, as in the study) and merge it when done."""
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    """The training problems (the study's SFT data: 2-5 steps, evaluation and inversion)."""
    examples: int = 2048
    """Distinct training examples: items 0..examples-1 of the problem stream ``data_seed``."""
    data_seed: int = 0
    """Problem stream of the training examples."""
    num_train_epochs: float = 20.0
    """Passes over the examples, each in a fresh random order."""
    learning_rate: float = 2e-4
    """Peak learning rate (AdamW)."""
    lr_scheduler_type: str = "cosine"
    """transformers scheduler name (cosine, constant_with_warmup, linear, ...)."""
    warmup_steps: float = 0.03
    """Warm-up steps; below 1, a fraction of the run's steps (as in transformers)."""
    weight_decay: float = 0.0
    """AdamW's weight decay."""
    per_device_train_batch_size: int = 16
    """Sequences per optimizer step and device."""
    gradient_accumulation_steps: int = 1
    """Batches per optimizer step."""
    max_length: int = 2048
    """Sequences are truncated to this many tokens."""
    seed: int = 0
    """Seed of the model's initialisation and of the data order."""
    bf16: bool = False
    """bfloat16 training (GPU)."""
    logging_steps: int = 10
    """Log the loss every N optimizer steps."""
    save_steps: int = 0
    """Save a resumable checkpoint every N optimizer steps (0: only at the end)."""
    eval_n: int = 200
    """Greedy evaluation on this many held-out problems of the training distribution (0 skips it)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""

    @property
    def optimizer_steps(self) -> int:
        """Steps of the whole run: ``num_train_epochs`` passes over the examples."""
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        return max(1, int(self.examples * self.num_train_epochs) // batch)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field; called before any model is loaded."""
        if not self.out:
            raise ValueError("out: a run directory is required")
        if self.arm not in ARMS:
            raise ValueError(f"arm: {self.arm!r} is not one of {sorted(ARMS)}")
        from .models import PRESETS

        if self.model_name_or_path is None and self.model_size not in PRESETS:
            raise ValueError(f"model_size: {self.model_size!r} is not one of {sorted(PRESETS)}")
        for name in ("examples", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length",
                     "logging_steps"):
            check_int(name, getattr(self, name), 1, 2**31 - 1)
        for name in ("save_steps", "eval_n", "data_seed", "seed"):
            check_int(name, getattr(self, name), 0, 2**63 - 1)
        for name in ("num_train_epochs", "learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")


def shuffled_order(n: int, epochs: int, seed: int) -> list[int]:
    """Every epoch a fresh uniform permutation of the ``n`` examples.

    Not grouped by length: a search trace's length is the position of its
    answer in symbol order, so length-sorted batches share their answer; both
    they and answer-free grouping (one kind, strategy and step count per
    batch) learnt more slowly than random batches (``python -m benchmarks
    sft_plateau``, docs/results.md). :class:`PackedBatches` removes the
    padding instead.
    """
    order = []
    for epoch in range(epochs):
        perm = list(range(n))
        random.Random(seed * 1000 + epoch).shuffle(perm)
        order += perm
    return order


class PackedBatches:
    """Collator: a batch's examples packed first-fit-decreasing into rows as long as its longest example.

    Each example keeps its own ``position_ids`` (from 0) and no attention mask
    is passed, so transformers masks attention block-diagonally per example
    (it reads packed sequences from ``position_ids``, only when the model is
    called with ``use_cache=False``, as TRL's SFTTrainer does): the loss is that of the
    padded batch, at the cost of the real tokens plus a little slack, where a
    random batch padded to its longest search trace spends most of its
    compute on padding.

    With a ``coupling`` the example positions are the coupled ones
    (:mod:`trainers.positions`): transformers can then no longer tell the
    examples apart from their position ids, so the collator passes the
    block-diagonal causal mask itself (4-D, boolean).
    """

    def __init__(self, pad_token_id: int, coupling=None):
        self.pad_token_id = pad_token_id
        self.coupling = coupling

    def _positions(self, ids: list[int]):
        import torch

        if self.coupling is not None:
            return self.coupling.position_ids(torch.tensor([ids]))[0]
        return torch.arange(len(ids))

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        seqs = sorted(((e["input_ids"], e["labels"]) for e in examples), key=lambda e: -len(e[0]))
        width = len(seqs[0][0])
        rows: list[list[tuple[list[int], list[int]]]] = []
        room: list[int] = []
        for ids, labels in seqs:
            row = next((r for r, free in enumerate(room) if free >= len(ids)), None)
            if row is None:
                rows.append([])
                room.append(width)
                row = len(rows) - 1
            rows[row].append((ids, labels))
            room[row] -= len(ids)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        example = torch.zeros((len(rows), width), dtype=torch.long)  # which example of its row a token is from
        for r, items in enumerate(rows):
            at = 0
            for j, (ids, lab) in enumerate(items):
                input_ids[r, at:at + len(ids)] = torch.tensor(ids)
                labels[r, at:at + len(ids)] = torch.tensor(lab)
                position_ids[r, at:at + len(ids)] = self._positions(ids)
                example[r, at:at + len(ids)] = j
                at += len(ids)
            position_ids[r, at:] = torch.arange(width - at)  # the row's padding is a sequence of its own
            example[r, at:] = len(items)
        batch = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
        if self.coupling is not None:
            causal = torch.ones((width, width), dtype=torch.bool).tril()
            batch["attention_mask"] = ((example[:, :, None] == example[:, None, :]) & causal)[:, None]
        return batch


def sft_example(tokenizer, prompt: str, completion: str) -> dict[str, list[int]]:
    """One training sequence: the prompt exactly as generation renders it (:func:`~trainers.generation.chat_prompt`),
    then the response through its end-of-turn token, the only labelled part. What a chat template writes after that
    token (Qwen's newline) is left out: generation stops at the token, so the model never sees what follows it."""
    from .generation import chat_prompt

    prompt_ids = tokenizer(chat_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    whole = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                           {"role": "assistant", "content": completion}], tokenize=False)
    ids = tokenizer(whole, add_special_tokens=False)["input_ids"]
    if ids[:len(prompt_ids)] != prompt_ids:
        raise ValueError("chat template: the prompt with the generation prompt is not a prefix of the conversation, "
                         "so the model would train on another context than it generates from")
    end = next((j + 1 for j in range(len(prompt_ids), len(ids)) if ids[j] == tokenizer.eos_token_id), None)
    if end is None:
        raise ValueError(f"chat template: the assistant turn does not end with the end-of-turn token "
                         f"{tokenizer.eos_token!r}, so the model would not learn to stop")
    return {"input_ids": ids[:end], "labels": [-100] * len(prompt_ids) + ids[len(prompt_ids):end]}


def run_sft(cfg: SFTRunConfig) -> dict[str, Any]:
    """Train, save ``RUN_DIR/model``, evaluate; return a summary dict (also in ``RUN_DIR/sft_summary.json``)."""
    from datetime import timedelta

    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from torch.utils.tensorboard import SummaryWriter
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from .evaluation import EvalSettings, evaluate, format_report, validation_set
    from .models import STUDY_LORA, build_tiny_model, load_model, position_coupling
    from .runlog import CONFIG_FILE, MetricsLog, metrics_callback, tensorboard_callback, write_json
    from .tokenizer import missing_words

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed)
    pconfig = cfg.problem

    if cfg.model_name_or_path is None:
        model, tokenizer = build_tiny_model(cfg.model_size, os.path.join(cfg.out, "init"), seed=cfg.seed,
                                            coupled=cfg.position_coupling)
    else:
        model, tokenizer = load_model(cfg.model_name_or_path, lora=STUDY_LORA if cfg.lora else None,
                                      dtype="bfloat16" if cfg.bf16 else "auto")
    coupling = position_coupling(model)
    if cfg.position_coupling and coupling is None:
        raise ValueError(f"position_coupling: {cfg.model_name_or_path} has plain positions; coupling is chosen when a "
                         "model is built from scratch (leave --model-name-or-path out, or drop --position-coupling)")
    if coupling is not None:  # packed rows carry a block-diagonal mask: attend within each example alone
        from .packed_attention import NAME as PACKED

        model.set_attn_implementation(PACKED)
    missing = missing_words(tokenizer, pconfig)
    if missing:
        raise ValueError(f"model_name_or_path: the tokenizer of {cfg.model_name_or_path or cfg.model_size} cannot "
                         f"encode task words {missing[:10]}")

    batch = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
    records = list(sft_records(pconfig, cfg.arm, cfg.data_seed, cfg.examples))
    order = shuffled_order(len(records), math.ceil(cfg.num_train_epochs), cfg.seed)
    examples = [sft_example(tokenizer, r["prompt"], r["completion"]) for r in records]
    dataset = Dataset.from_list([examples[i] for i in order])
    on_gpu = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=os.path.join(cfg.out, "checkpoints"),
        max_steps=cfg.optimizer_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        report_to="none",
        bf16=cfg.bf16,
        fp16=False,
        gradient_checkpointing=False,
        max_length=cfg.max_length,
        seed=cfg.seed,
        data_seed=cfg.data_seed,
        use_cpu=not on_gpu,
        train_sampling_strategy="sequential",  # the order built above
        dataloader_num_workers=0,
        completion_only_loss=True,
    )
    # under accelerate launch every process trains; the main one alone writes files and evaluates
    main = PartialState(cpu=not on_gpu, timeout=timedelta(seconds=args.ddp_timeout)).is_main_process
    if main:
        save_config(os.path.join(cfg.out, CONFIG_FILE), "sft", cfg)
    log = MetricsLog(cfg.out)
    tb = SummaryWriter(os.path.join(cfg.out, "tb")) if main else None
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=PackedBatches(tokenizer.pad_token_id, coupling),
        # TRL counts a batch without attention mask as one padding-free row: its num_tokens is wrong for packed rows
        callbacks=[metrics_callback(log, "sft", drop=("num_tokens",)), *([tensorboard_callback(tb)] if main else [])],
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    n_tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"][:trainer.state.global_step * batch])
    model = trainer.model
    summary = {
        "arm": cfg.arm,
        "train_seconds": wall,
        "train_tokens": n_tokens,
        "tokens_per_second": n_tokens / wall,
        "optimizer_steps": trainer.state.global_step,
        "final_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
    }
    if not main:
        return summary
    if cfg.lora:
        model = model.merge_and_unload()
    if coupling is not None:
        model.set_attn_implementation("sdpa")
    model_dir = os.path.join(cfg.out, "model")
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    if cfg.eval_n:
        problems = validation_set(pconfig.without_offsets(), cfg.eval_n)
        report = evaluate(model, tokenizer, problems, EvalSettings(n=cfg.eval_n))
        write_json(os.path.join(cfg.out, "eval_sft.json"), report)
        summary["greedy_accuracy"] = report["greedy"]["accuracy"]
        print(format_report(report, title=f"SFT arm {cfg.arm}, {len(problems)} held-out problems, "
                                          f"{pconfig.min_steps}-{pconfig.max_steps} steps"))
    log.write(trainer.state.global_step, "sft_summary", {k: v for k, v in summary.items() if isinstance(v, (int, float))})
    write_json(os.path.join(cfg.out, "sft_summary.json"), summary)
    tb.close()
    return summary

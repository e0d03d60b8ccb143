"""Supervised fine-tuning on the study's arms (F, B, FB) with TRL's SFTTrainer.

Loss on completion tokens only (TRL's prompt-completion format with the chat
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

from .settings import to_dict

__all__ = ["SFTRunConfig", "SFT_PRESETS", "run_sft", "problem_config", "shuffled_order", "PackedBatches"]


@dataclass
class SFTRunConfig:
    out: str = ""
    """Run directory (required)."""
    arm: str = "FB"
    """F (forward traces only), B (backward only) or FB (a coin per example)."""
    preset: str = "tiny"
    model: str | None = None
    """Checkpoint directory or hub id to start from; None builds ``model_size`` from scratch."""
    model_size: str = "tiny"
    lora: bool = False
    """Train a LoRA adapter (r=64, alpha=128, dropout 0.05, as in the study) and merge it when done."""
    steps_range: tuple[int, int] = (2, 5)
    p: int = 11
    problem: dict[str, Any] = field(default_factory=dict)
    """Extra ProblemConfig fields (e.g. problem_types with composition)."""
    examples: int = 2048
    data_seed: int = 0
    curriculum: bool = False
    """Present examples shortest first in each epoch (fewest steps, then shortest response) instead of in
    a fresh random order (see :func:`shuffled_order`)."""
    epochs: float = 20.0
    lr: float = 2e-4
    stop_loss: float = 0.0
    """Stop as soon as a logged training loss (mean over ``logging_steps``) falls below this; 0 never stops
    early. Not a sign that the arithmetic table is learnt: search tokens dominate the loss and are learnt
    first (docs/training.md), so the tiny reproduction trains a fixed number of steps."""
    position_stretch: float = 1.0
    """Above 1, each example's position ids are stretched by a factor drawn from [1, this]: relative distances
    vary, so look-ups cannot lean on them, which let the tiny model's direct traces carry over from 2-5- to
    6-9-step problems (docs/training.md). 1 keeps positions 0, 1, 2, ..."""
    position_coupling: bool = False
    """Build the from-scratch model with position ids coupled to the step labels (:mod:`trainers.positions`):
    a trace line sits at the positions of the prompt line it applies, at any chain length. A model given by
    ``model`` keeps its own positions (asking for coupling it lacks is an error)."""
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 16
    grad_accum: int = 1
    max_length: int = 2048
    seed: int = 0
    bf16: bool = False
    logging_steps: int = 10
    save_steps: int = 0
    """Save a resumable checkpoint every N optimizer steps (0: only at the end)."""
    eval_n: int = 200
    """Greedy evaluation on this many held-out problems of the training distribution (0 skips it)."""
    threads: int | None = None

    def __post_init__(self) -> None:
        self.steps_range = tuple(self.steps_range)  # YAML gives a list

    @property
    def optimizer_steps(self) -> int:
        """Steps of the whole run (``stop_loss`` may end it sooner): ``epochs`` passes over the examples."""
        return max(1, int(self.examples * self.epochs) // (self.batch_size * self.grad_accum))

    def validate(self) -> None:
        if not self.out:
            raise ValueError("out: a run directory is required")
        if self.arm not in ARMS:
            raise ValueError(f"arm: {self.arm!r} is not one of {sorted(ARMS)}")
        from .models import PRESETS

        if self.model is None and self.model_size not in PRESETS:
            raise ValueError(f"model_size: {self.model_size!r} is not one of {sorted(PRESETS)}")
        for name in ("examples", "batch_size", "grad_accum", "max_length", "logging_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if not self.position_stretch >= 1:
            raise ValueError(f"position_stretch: expected >= 1, got {self.position_stretch}")
        if self.position_coupling and self.position_stretch != 1:
            raise ValueError("position_stretch: stretches plain positions; coupled ones need none (set it to 1)")
        if self.stop_loss < 0:
            raise ValueError(f"stop_loss: expected >= 0, got {self.stop_loss}")
        if self.epochs <= 0 or self.lr <= 0:
            raise ValueError(f"epochs/lr: expected > 0, got epochs={self.epochs} lr={self.lr}")
        problem_config(self)  # validates steps_range, p and problem


SFT_PRESETS: dict[str, dict[str, Any]] = {
    "micro": dict(model_size="micro", examples=256, epochs=1, batch_size=16, lr=3e-3, eval_n=0, max_length=512),
    "tiny": dict(model_size="tiny", examples=48000, epochs=1, batch_size=32, lr=1e-3, lr_scheduler="constant_with_warmup",
                 warmup_ratio=0.033, max_length=1024),
    "small": dict(model_size="small", examples=48000, epochs=1, batch_size=32, lr=5e-4,
                  lr_scheduler="constant_with_warmup", warmup_ratio=0.033, max_length=1024),
    "qwen1.5b": dict(
        model="Qwen/Qwen2.5-1.5B-Instruct", lora=True, examples=2048, epochs=20, batch_size=16, lr=2e-4,
        bf16=True, max_length=2048, eval_n=500,
    ),
}
"""Hyper-parameter bundles: ``qwen1.5b`` is the study's SFT (LoRA r64/alpha128, 20 epochs, lr 2e-4,
batch 16, 2048 examples); the others train the from-scratch model on a CPU."""


def problem_config(cfg: SFTRunConfig) -> ProblemConfig:
    lo, hi = cfg.steps_range
    return ProblemConfig(**{"p": cfg.p, "min_steps": lo, "max_steps": hi, **cfg.problem})


def shuffled_order(n: int, epochs: int, seed: int) -> list[int]:
    """Every epoch a fresh uniform permutation of the ``n`` examples.

    Not grouped by length: a search trace's length is the position of its
    answer in symbol order, so length-sorted batches share their answer; both
    they and answer-free grouping (one kind, strategy and step count per
    batch) learnt more slowly than random batches (``python -m benchmarks
    sft_plateau``, docs/training.md). :class:`PackedBatches` removes the
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

    With ``position_stretch`` above 1, example positions are ``round(i * s)``
    with ``s`` drawn uniformly from ``[1, position_stretch]`` per example;
    with a ``coupling`` they are the coupled ones (:mod:`trainers.positions`).
    transformers can then no longer tell the examples apart from their
    position ids, so the collator passes the block-diagonal causal mask
    itself (4-D, boolean).
    """

    def __init__(self, pad_token_id: int, position_stretch: float = 1.0, seed: int = 0, coupling=None):
        import torch

        self.pad_token_id = pad_token_id
        self.position_stretch = position_stretch
        self.coupling = coupling
        self.generator = torch.Generator().manual_seed(seed)

    def _positions(self, ids: list[int]):
        import torch

        if self.coupling is not None:
            return self.coupling.position_ids(torch.tensor([ids]))[0]
        if self.position_stretch == 1:
            return torch.arange(len(ids))
        s = 1 + (self.position_stretch - 1) * torch.rand((), generator=self.generator)
        return torch.round(torch.arange(len(ids)) * s).long()

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
        if self.position_stretch != 1 or self.coupling is not None:
            causal = torch.ones((width, width), dtype=torch.bool).tril()
            batch["attention_mask"] = ((example[:, :, None] == example[:, None, :]) & causal)[:, None]
        return batch


def _early_stop(threshold: float) -> list:
    from transformers import TrainerCallback

    class _StopBelow(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and logs.get("loss", float("inf")) < threshold:
                control.should_training_stop = True

    return [_StopBelow()] if threshold else []


def _conversations(records):
    for r in records:
        yield {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "completion": [{"role": "assistant", "content": r["completion"]}],
        }


def run_sft(cfg: SFTRunConfig) -> dict[str, Any]:
    """Train, save ``RUN_DIR/model``, evaluate; return a summary dict (also in ``RUN_DIR/sft_summary.json``)."""
    import torch
    import yaml
    from datasets import Dataset
    from torch.utils.tensorboard import SummaryWriter
    from transformers import set_seed
    from transformers.integrations import TensorBoardCallback
    from trl import SFTConfig, SFTTrainer

    from .evaluation import EvalSettings, evaluate, format_report, validation_set
    from .models import STUDY_LORA, build_tiny_model, load_model, position_coupling
    from .runlog import MetricsLog, metrics_callback, write_json
    from .tokenizer import missing_words

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, "config.yaml"), "w") as f:
        yaml.safe_dump({"command": "sft", **to_dict(cfg)}, f, sort_keys=False)
    set_seed(cfg.seed)
    pconfig = problem_config(cfg)

    if cfg.model is None:
        model, tokenizer = build_tiny_model(cfg.model_size, os.path.join(cfg.out, "init"), seed=cfg.seed,
                                            coupled=cfg.position_coupling)
    else:
        model, tokenizer = load_model(cfg.model, lora=STUDY_LORA if cfg.lora else None,
                                      dtype="bfloat16" if cfg.bf16 else "auto")
    coupling = position_coupling(model)
    if cfg.position_coupling and coupling is None:
        raise ValueError(f"position_coupling: {cfg.model} has plain positions; coupling is chosen when a model is "
                         "built from scratch (leave --model out, or drop --position-coupling)")
    if coupling is not None and cfg.position_stretch != 1:
        raise ValueError(f"position_stretch: {cfg.model} has coupled positions, which need no stretch (set it to 1)")
    missing = missing_words(tokenizer, pconfig)
    if missing:
        raise ValueError(f"model: the tokenizer of {cfg.model or cfg.model_size} cannot encode task words {missing[:10]}")

    batch = cfg.batch_size * cfg.grad_accum
    records = list(sft_records(pconfig, cfg.arm, cfg.data_seed, cfg.examples))
    if cfg.curriculum:
        order = sorted(range(len(records)), key=lambda i: (records[i]["steps"], len(records[i]["completion"])))
        order = order * math.ceil(cfg.epochs)
    else:
        order = shuffled_order(len(records), math.ceil(cfg.epochs), cfg.seed)
    dataset = Dataset.from_list(list(_conversations(records[i] for i in order)))
    on_gpu = torch.cuda.is_available()
    args = SFTConfig(
        output_dir=os.path.join(cfg.out, "checkpoints"),
        max_steps=cfg.optimizer_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,
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
    log = MetricsLog(cfg.out)
    tb = SummaryWriter(os.path.join(cfg.out, "tb"))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=PackedBatches(tokenizer.pad_token_id, cfg.position_stretch, cfg.seed, coupling),
        # TRL counts a batch without attention mask as one padding-free row: its num_tokens is wrong for packed rows
        callbacks=[metrics_callback(log, "sft", drop=("num_tokens",)), TensorBoardCallback(tb_writer=tb),
                   *_early_stop(cfg.stop_loss)],
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    n_tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"][:trainer.state.global_step * batch])
    model = trainer.model
    if cfg.lora:
        model = model.merge_and_unload()
    model_dir = os.path.join(cfg.out, "model")
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    summary = {
        "arm": cfg.arm,
        "train_seconds": wall,
        "train_tokens": n_tokens,
        "tokens_per_second": n_tokens / wall,
        "optimizer_steps": trainer.state.global_step,
        "final_loss": next((h["loss"] for h in reversed(trainer.state.log_history) if "loss" in h), None),
    }
    if cfg.eval_n:
        problems = validation_set(pconfig.replace(max_label_offset=0), cfg.eval_n)  # the task itself, labels from 1
        report = evaluate(model, tokenizer, problems, EvalSettings(n=cfg.eval_n))
        write_json(os.path.join(cfg.out, "eval_sft.json"), report)
        summary["greedy_accuracy"] = report["greedy"]["accuracy"]
        print(format_report(report, title=f"SFT arm {cfg.arm}, {len(problems)} held-out problems, steps {cfg.steps_range}"))
    log.write(trainer.state.global_step, "sft_summary", {k: v for k, v in summary.items() if isinstance(v, (int, float))})
    write_json(os.path.join(cfg.out, "sft_summary.json"), summary)
    tb.close()
    return summary

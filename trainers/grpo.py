"""GRPO: TRL's ``GRPOTrainer`` driven through an ffreason environment.

TRL samples ``num_generations`` completions per prompt (its sampler repeats
each dataset row that many times, so a group shares one problem), calls our
reward function, and does the update. The reward function is the bridge: it
looks each row's problem up by its index, scores the completions with the
environment (:meth:`RLRun.score`, which also writes ``completions.jsonl``)
and sends the batch's strategy fractions and accuracies per kind to TRL's
metrics (``log_metric``), which our callbacks copy to ``metrics.jsonl`` and
TensorBoard. Every knob is a field of
:class:`~trainers.rl_config.GRPORunConfig`.

On CPU the completions of the from-scratch model are sampled by
:mod:`trainers.decoder` (the same tokens as ``generate``, several times
faster), through :func:`trainer_class`'s one override of TRL's generation
step; every other case keeps TRL's own path.

Under ``accelerate launch`` it runs data-parallel (DDP, DeepSpeed ZeRO-1/2):
TRL's sampler hands each process different prompts, the reward function
gathers every process's completions to the main process, which alone writes
files; every process decodes its share of each evaluation (see docs/scaling.md).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from .rl import RLRun
from .rl_config import GRPORunConfig
from .runlog import last_checkpoint

__all__ = ["GRPORun"]


class GRPORun(RLRun):
    multi_process = True

    @staticmethod
    def process_group_kwargs(cfg: GRPORunConfig) -> dict[str, Any]:
        from datetime import timedelta

        return {"timeout": timedelta(seconds=cfg.ddp_timeout)}

    def eval_engine(self):
        """The trainer's vLLM engine when it generates with vLLM: a colocated one per process decodes that
        process's share, a server decodes the main process's whole sets."""
        if not self.cfg.use_vllm:
            return super().eval_engine()
        from .generation import vllm_engine

        engine = vllm_engine(self.trainer.vllm_generation)  # every process takes part in the weight sync
        if self.cfg.vllm_mode == "server":
            return engine, (lambda problems: list(problems) if self.is_main else [])
        return engine, super().eval_engine()[1]

    def __init__(self, cfg: GRPORunConfig) -> None:
        if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
            raise ValueError("use_vllm: vllm is not installed (pip install 'ffreason[vllm]' on a GPU machine)")
        if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3" or \
                os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
            raise ValueError("accelerate: ZeRO-3 and FSDP shard the parameters, and the main process's evaluation and "
                             "final save need whole ones; use DDP or ZeRO-2 (docs/scaling.md)")
        super().__init__(cfg)
        from datasets import Dataset
        from trl import GRPOConfig

        import torch

        from .runlog import metrics_callback, tensorboard_callback

        args = GRPOConfig(
            output_dir=self.checkpoint_dir,
            max_steps=cfg.max_steps,
            num_generations=cfg.num_generations,
            per_device_train_batch_size=cfg.per_device_train_batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler_type,
            warmup_steps=cfg.warmup_steps,
            weight_decay=cfg.weight_decay,
            max_grad_norm=cfg.max_grad_norm,
            beta=cfg.beta,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_completion_length=cfg.max_completion_length,
            loss_type=cfg.loss_type,
            scale_rewards=cfg.scale_rewards,
            epsilon=cfg.epsilon,
            num_iterations=cfg.num_iterations,
            use_vllm=cfg.use_vllm,
            vllm_mode=cfg.vllm_mode,
            vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            vllm_server_base_url=cfg.vllm_server_base_url or None,
            report_to=list(cfg.report_to),
            logging_steps=cfg.logging_steps,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=cfg.save_total_limit or None,
            ddp_timeout=cfg.ddp_timeout,
            seed=cfg.seed,
            bf16=cfg.bf16,
            gradient_checkpointing=cfg.gradient_checkpointing,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            log_completions=False,
            disable_dropout=True,
        )
        self.trainer = trainer_class()(
            model=self.model,
            reward_funcs=[self._reward_func()],
            args=args,
            train_dataset=Dataset.from_list(self.train_problems.rows()),
            processing_class=self.tokenizer,
            callbacks=[metrics_callback(self.metrics, "train"), tensorboard_callback(self.tb),
                       self._eval_callback()],
        )
        self.trainer.curriculum = self.curriculum
        self.model = self.trainer.model

    def reward_signal(self, indices, kinds, strategies, rewards):
        """TRL's advantages, from the gathered batch: groups of ``num_generations`` consecutive responses to one
        problem (a batch that is not, such as a call from outside TRL, gets none)."""
        from .probes import group_signal

        g = self.cfg.num_generations
        if len(indices) % g or any(len(set(indices[i:i + g])) > 1 for i in range(0, len(indices), g)):
            return {}
        return group_signal(kinds, strategies, rewards, group_size=g, scale=self.cfg.scale_rewards)

    def _reward_func(self):
        run = self

        def ffreason_env_reward(prompts, completions, completion_ids, index, trainer_state, log_metric,
                                **_: Any) -> list[float]:
            texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
            step = trainer_state.global_step + 1  # the optimizer step these completions feed
            rewards, _, metrics = run.score(step, index, texts, [len(ids) for ids in completion_ids])
            for name, value in metrics.items():
                log_metric(name, value)
            return rewards

        return ffreason_env_reward

    def _eval_callback(self):
        from transformers import TrainerCallback

        run = self

        class EvalCallback(TrainerCallback):
            # every process evaluates its share (RLRun.evaluate); the main one logs
            def on_train_begin(self, args, state, control, **kwargs):
                if run.eval_at_start:
                    run.evaluate(run.resume_step)

            def on_step_end(self, args, state, control, **kwargs):
                every = run.cfg.eval_every
                if every and state.global_step % every == 0 and state.global_step < state.max_steps:
                    run.evaluate(state.global_step)

        return EvalCallback()

    def _train(self):
        resume = last_checkpoint(self.checkpoint_dir) if self.cfg.resume else None
        if self.resume_step >= self.cfg.max_steps:  # 0 unless resuming; max_steps is at least 1
            # transformers' Trainer, resumed at max_steps, trains one step more before it checks; a run killed
            # after its last checkpoint (in the final evaluation or save) needs only that checkpoint's weights;
            # finish() then saves and evaluates them
            self.trainer._load_from_checkpoint(resume)
            return self.trainer.model, self.resume_step, {}
        self.trainer.train(resume_from_checkpoint=resume)
        return self.trainer.model, self.trainer.state.global_step, {}


def trainer_class():
    """TRL's GRPOTrainer, sampling through :func:`trainers.decoder.decode` where it covers the model and the
    sampling settings (``vllm``, continuous batching, min-p, repetition penalty and extra generation kwargs keep
    TRL's path), and drawing prompts from a curriculum's current level when it has one."""
    import torch
    from trl import GRPOTrainer

    from .decoder import decode, unsupported

    class Trainer(GRPOTrainer):
        curriculum = None
        """Set by GRPORun: prompts come from the curriculum's current level (trainers/curriculum.py)."""

        def _get_train_sampler(self, dataset=None):
            if self.curriculum is None:
                return super()._get_train_sampler(dataset)
            from .curriculum import CurriculumSampler

            return CurriculumSampler(self.curriculum, mini_repeat_count=self.num_generations,
                                     batch_size=self.args.generation_batch_size // self.num_generations,
                                     repeat_count=self.num_iterations * self.args.steps_per_generation,
                                     seed=self.args.seed)

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False):
            model = self.accelerator.unwrap_model(self.model)
            g = self.generation_config
            if self.use_vllm or self.use_transformers_continuous_batching or images is not None or \
                    multimodal_fields or unsupported(model) or g.min_p is not None or \
                    g.repetition_penalty not in (None, 1.0) or self.args.generation_kwargs:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            pad = self._tokenizer.pad_token_id
            width = max(len(ids) for ids in prompt_ids)
            input_ids = torch.tensor([[pad] * (width - len(ids)) + list(ids) for ids in prompt_ids])
            mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids])
            out = decode(model, input_ids, mask, max_new_tokens=self.max_completion_length,
                         eos_token_id=self.eos_token_ids, pad_token_id=pad, do_sample=True,
                         temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or 0)[:, width:]
            eos = set(self.eos_token_ids)
            completions = []
            for row in out.tolist():  # up to and including the first EOS, as TRL keeps them
                end = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))
                completions.append(row[:end])
            return completions, None

    return Trainer

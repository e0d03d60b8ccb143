"""PPO with a learned value function, on the same prompts, rewards, logging and evaluation as GRPO.

TRL removed its PPO (and the old one only took a reward *model*), so this one
is ours, written to be read top to bottom: the loss functions first (tested
against hand-computed numbers), then :class:`PPORun` whose ``_train`` is one
loop: sample -> score with the environment -> per-token log-probs, values and
KL to the initial policy -> GAE -> ``ppo_epochs`` passes of minibatch updates.

Design choices, all knobs in :class:`~trainers.rl_config.PPORunConfig`:

- **Value function**: a linear head on the policy's last hidden state (one
  shared trunk, ``critic`` shared), or on a copy of the initial model trained
  on the value loss alone (``critic`` separate, as verl and OpenRLHF run it:
  twice the forward passes). With a shared trunk ``vf_coef`` (default 0.1)
  keeps the value loss from pulling the policy around.
  Its weights start at zero and its bias at the first batch's mean reward:
  a critic at 0 would give every token of an all-correct batch a positive
  GAE advantage that decays with distance from the end, which whitening turns
  into a push *against* the first tokens of correct responses.
- **Reward**: the environment's terminal reward on the last completion token,
  plus a per-token KL penalty ``-beta * (log pi - log pi_ref)`` to the initial
  policy when ``beta > 0`` (``beta`` is TRL's name for the KL coefficient).
- **Log-probs** are taken at the sampling temperature, as the samples were drawn.
- **GAE** with ``gamma`` 1 and ``lam`` 1 by default: the outcome reaches every
  token, the first ones too, where a response commits to its strategy (with
  ``lam`` 0.95 and a critic that explains nothing they got a few percent of
  it; ``advantage/first_token_abs`` and ``train/first_token/...`` log what
  they get).
"""

from __future__ import annotations

import copy
import os
import random
import shutil
import tempfile
import time

import torch

from .rl import RLRun
from .rl_config import PPORunConfig
from .runlog import last_checkpoint, prune_checkpoints

__all__ = ["PPORun", "masked_mean", "masked_whiten", "gae", "policy_loss", "value_loss", "explained_variance"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries (unmasked entries become 0)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimates and returns over ``[batch, time]`` with contiguous action masks.

    The step after the last action of a row has value 0 (the episode ended).
    """
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    next_value = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    next_mask = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value * next_mask - values[:, t]
        adv = delta + gamma * lam * next_adv * next_mask
        advantages[:, t] = adv * mask[:, t]
        next_adv, next_value, next_mask = advantages[:, t], values[:, t], mask[:, t]
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (to minimise) and the fraction of tokens where the clip was active."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float) -> torch.Tensor:
    """``0.5 * max((v - R)^2, (v_clipped - R)^2)``, v_clipped within ``clip`` of the rollout's value."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var(R - v) / Var(R)`` over the masked tokens (1: perfect, 0: no better than a constant)."""
    var_r = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    diff = returns - values
    var_d = masked_mean((diff - masked_mean(diff, mask)) ** 2, mask)
    return float(1.0 - var_d / var_r) if var_r > 0 else float("nan")


class PPORun(RLRun):
    def __init__(self, cfg: PPORunConfig) -> None:
        super().__init__(cfg)
        from transformers import get_scheduler

        self.ref = None
        if cfg.beta > 0 and not cfg.lora:  # with LoRA the reference is the base model with the adapter disabled
            self.ref = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.critic = copy.deepcopy(self.model).train() if cfg.critic == "separate" else None
        """The value head's trunk when it is not the policy's: a copy of the initial model, trained on the value
        loss alone."""
        self.value_head = torch.nn.Linear(self.model.config.hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        if self.device:
            self.value_head.to(self.device)
        checkpoint = last_checkpoint(self.checkpoint_dir) if self.resume_step else None
        if checkpoint:
            self._load_checkpoint(checkpoint)
        critic = list(self.value_head.parameters()) + (list(self.critic.parameters()) if self.critic else [])
        groups = [{"params": [p for p in self.model.parameters() if p.requires_grad]},
                  {"params": critic, "lr": cfg.critic_learning_rate or cfg.learning_rate}]
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        warmup = int(cfg.warmup_steps * cfg.max_steps) if cfg.warmup_steps < 1 else int(cfg.warmup_steps)
        self.scheduler = get_scheduler(cfg.lr_scheduler_type, self.optimizer, num_warmup_steps=warmup,
                                       num_training_steps=cfg.max_steps)
        if checkpoint:
            state = torch.load(os.path.join(checkpoint, "optimizer.pt"), weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
        self.prompts_per_step = cfg.per_device_train_batch_size // cfg.num_generations
        self._orders: dict[int, list[int]] = {}
        self._prompt_ids: dict[int, list[int]] = {}

    # --- data

    def _indices(self, step: int) -> list[int]:
        """The training problems of optimizer step ``step`` (1-based): passes over the prompt set, each in a seeded
        order (with a curriculum, over its current level's problems)."""
        n, out = self.cfg.prompts, []
        offset = self.curriculum.offset() if self.curriculum else 0
        for j in range(self.prompts_per_step):
            g = (step - 1) * self.prompts_per_step + j
            out.append(offset + self._order(g // n)[g % n])
        return out

    def _order(self, pass_index: int) -> list[int]:
        """The seeded order of pass ``pass_index`` over the prompts (computed once per pass)."""
        if pass_index not in self._orders:
            order = list(range(self.cfg.prompts))
            random.Random(self.cfg.seed * 1_000_003 + pass_index).shuffle(order)
            self._orders = {pass_index: order}
        return self._orders[pass_index]

    def _forward(self, model, input_ids, attention_mask, with_values: bool):
        """Per-position log-probs of the next token (at the sampling temperature), entropies, values (from the
        policy's last hidden state, or the separate critic's)."""
        shared = with_values and self.critic is None
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=shared)
        logits = out.logits[:, :-1].float() / self.cfg.temperature
        logp_all = torch.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        values = None
        if with_values:
            hidden = out.hidden_states[-1] if shared else self.critic(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[-1]
            values = self.value_head(hidden[:, :-1].float()).squeeze(-1)
        return logp, entropy, values

    # --- the algorithm

    def _train(self):
        from .generation import chat_prompt, generate
        from .probes import group_signal

        cfg, tok, model = self.cfg, self.tokenizer, self.model
        device = next(model.parameters()).device
        pad = tok.pad_token_id
        model.train()
        if self.eval_at_start:
            self.evaluate(self.resume_step)
        from tqdm.auto import tqdm

        step = self.resume_step
        bar = tqdm(range(self.resume_step + 1, cfg.max_steps + 1), desc="ppo", initial=self.resume_step,
                   total=cfg.max_steps)
        for step in bar:
            start = time.perf_counter()
            step_indices = self._indices(step)
            prompts = [self.train_problems.prompts[i] for i in step_indices]

            # 1. rollouts: num_generations samples per prompt
            samples = generate(model, tok, prompts, num_samples=cfg.num_generations,
                               temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_completion_length,
                               batch_size=len(prompts) * cfg.num_generations)
            indices, texts, completion_ids, prompt_ids = [], [], [], []
            for index, prompt, group in zip(step_indices, prompts, samples):
                if index not in self._prompt_ids:  # each training prompt is tokenised once
                    self._prompt_ids[index] = tok(chat_prompt(tok, prompt), add_special_tokens=False)["input_ids"]
                for c in group:
                    indices.append(index)
                    texts.append(c.text)
                    completion_ids.append(list(c.token_ids))
                    prompt_ids.append(self._prompt_ids[index])

            # 2. rewards from the environment (and the strategy metrics of this batch)
            scores, verdicts, metrics = self.score(step, indices, texts, [len(c) for c in completion_ids])

            if step == 1:  # the value head starts at the mean reward, so the first advantages are r - mean(r)
                with torch.no_grad():
                    self.value_head.bias.fill_(sum(scores) / len(scores))

            # 3. right-padded sequences; action_mask marks the positions that predict a completion token
            lengths = [len(p) + len(c) for p, c in zip(prompt_ids, completion_ids)]
            width = max(lengths)
            input_ids = torch.full((len(lengths), width), pad, dtype=torch.long)
            attention_mask = torch.zeros((len(lengths), width), dtype=torch.long)
            action_mask = torch.zeros((len(lengths), width - 1))
            for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
                input_ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                attention_mask[i, : len(p) + len(c)] = 1
                action_mask[i, len(p) - 1 : len(p) + len(c) - 1] = 1
            input_ids, attention_mask, action_mask = input_ids.to(device), attention_mask.to(device), action_mask.to(device)

            # 4. old log-probs, values, reference log-probs; per-token reward = -beta * KL, + outcome at the end
            with torch.no_grad():
                old_logp, _, old_values = self._forward(model, input_ids, attention_mask, with_values=True)
                kl = torch.zeros_like(old_logp)
                if cfg.beta > 0:
                    if self.ref is not None:
                        ref_logp, _, _ = self._forward(self.ref, input_ids, attention_mask, with_values=False)
                    else:
                        with model.disable_adapter():
                            ref_logp, _, _ = self._forward(model, input_ids, attention_mask, with_values=False)
                    kl = (old_logp - ref_logp) * action_mask
                rewards = -cfg.beta * kl
                last = (action_mask.cumsum(1) == action_mask.sum(1, keepdim=True)) & (action_mask > 0)
                rewards = rewards + last.float() * torch.tensor(scores, device=device)[:, None]
                old_values = old_values * action_mask
                advantages, returns = gae(rewards.cpu(), old_values.cpu(), action_mask.cpu(), cfg.gamma, cfg.lam)
                advantages, returns = advantages.to(device), returns.to(device)
                if cfg.whiten_advantages:
                    advantages = masked_whiten(advantages, action_mask)
            kinds, strategies = [self.train_problems.problems[i].kind for i in indices], [v.strategy for v in verdicts]
            per_response = ((advantages * action_mask).sum(1) / action_mask.sum(1).clamp(min=1)).tolist()
            metrics.update(group_signal(kinds, strategies, scores, advantages=per_response,
                                        group_size=cfg.num_generations))
            # the first completion token is where a response commits to its strategy: what reaches it is the signal
            # for selection (GAE's lam discounts the outcome by lam per token when the critic is flat)
            first = action_mask.argmax(1)
            first_advantage = advantages.gather(1, first[:, None]).squeeze(1)
            metrics.update(group_signal(kinds, strategies, scores, advantages=first_advantage.tolist(),
                                        prefix="train/first_token"))
            metrics["advantage/first_token_abs"] = float(first_advantage.abs().mean())
            metrics["advantage/abs"] = float(masked_mean(advantages.abs(), action_mask))

            # 5. ppo_epochs passes of num_mini_batches minibatch updates
            stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "approx_kl", "clip_fraction",
                                                             "entropy", "grad_norm")}
            batch = input_ids.shape[0]
            for _ in range(cfg.ppo_epochs):
                perm = torch.randperm(batch)
                for mb in perm.chunk(cfg.num_mini_batches):
                    mask = action_mask[mb]
                    logp, entropy, values = self._forward(model, input_ids[mb], attention_mask[mb], with_values=True)
                    pg, clip_fraction = policy_loss(logp, old_logp[mb], advantages[mb], mask, cfg.epsilon)
                    vf = value_loss(values, old_values[mb], returns[mb], mask, cfg.cliprange_value)
                    loss = pg + cfg.vf_coef * vf
                    self.optimizer.zero_grad()
                    loss.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(
                        [p for g in self.optimizer.param_groups for p in g["params"]], cfg.max_grad_norm)
                    self.optimizer.step()
                    with torch.no_grad():
                        log_ratio = (logp - old_logp[mb]) * mask
                        stats["approx_kl"].append(float(masked_mean(torch.exp(log_ratio) - 1 - log_ratio, mask)))
                    stats["policy_loss"].append(pg.item())
                    stats["value_loss"].append(vf.item())
                    stats["clip_fraction"].append(clip_fraction.item())
                    stats["entropy"].append(float(masked_mean(entropy.detach(), mask)))
                    stats["grad_norm"].append(grad_norm.item())
            lr = self.scheduler.get_last_lr()[0]
            self.scheduler.step()

            n_tokens = action_mask.sum(1)
            metrics.update({k: sum(v) / len(v) for k, v in stats.items()})
            metrics.update({
                "reward": sum(scores) / len(scores),
                "reward_std": float(torch.tensor(scores).std()),
                "value/explained_variance": explained_variance(old_values, returns, action_mask),
                "value/mean": float(masked_mean(old_values, action_mask)),
                "kl": float(masked_mean(kl, action_mask)),
                "learning_rate": lr,
                "completions/mean_length": float(n_tokens.float().mean()),
                "completions/clipped_ratio": sum(1 for c in completion_ids if not c or c[-1] != tok.eos_token_id)
                / len(completion_ids),
                "step_time": time.perf_counter() - start,
            })
            self.log(step, "train", metrics)
            bar.set_postfix(reward=f"{metrics['reward']:.2f}", aligned=f"{metrics.get('train/aligned', 0):.2f}")
            if step % cfg.save_steps == 0 or step == cfg.max_steps:
                self._save_checkpoint(step)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                self.evaluate(step)
        return model, step, {}

    # --- checkpoints: safetensors for weights, weights_only loading for optimizer state

    def _save_checkpoint(self, step: int) -> None:
        from safetensors.torch import save_file

        from .runlog import write_json

        path = os.path.join(self.checkpoint_dir, f"checkpoint-{step}")
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=self.checkpoint_dir, prefix=f".checkpoint-{step}.")  # never a complete-looking name
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in self.value_head.state_dict().items()},
                  os.path.join(tmp, "value_head.safetensors"))
        if self.critic is not None:  # a loadable model directory, as the policy's
            self.critic.save_pretrained(os.path.join(tmp, "critic"))
            self.tokenizer.save_pretrained(os.path.join(tmp, "critic"))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "rng": torch.get_rng_state()}, os.path.join(tmp, "optimizer.pt"))
        write_json(os.path.join(tmp, "trainer_state.json"), {"global_step": step})
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)  # a checkpoint directory exists only once complete
        prune_checkpoints(self.checkpoint_dir, self.cfg.save_total_limit)

    def _load_checkpoint(self, path: str) -> None:
        from safetensors.torch import load_file

        from .models import load_model

        if self.cfg.lora:
            from peft import PeftModel

            base, _ = load_model(self.init_dir, device=self.device)
            self.model = PeftModel.from_pretrained(base, path, is_trainable=True)
        else:
            self.model, _ = load_model(path, device=self.device)
        self.model.train()
        self.value_head.load_state_dict(load_file(os.path.join(path, "value_head.safetensors")))
        if self.critic is not None:
            self.critic, _ = load_model(os.path.join(path, "critic"), device=self.device)
            self.critic.train()

"""RL run configs: the knobs every algorithm shares, and one config per algorithm with its own knobs.

:class:`RLRunConfig` holds what any RL run on an ffreason environment needs
(the model, the RL problems and reward, the step budget, sampling,
evaluation); :class:`GRPORunConfig` and :class:`PPORunConfig` add what only
that algorithm reads. A knob of one algorithm given to the other is refused
with its name (:func:`check_knobs`), never silently ignored. TRL's names where
TRL has the knob. No torch here: ``--help`` and validation are instant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from ffreason_env import ENV_IDS, ProblemConfig, PromptStyle
from ffreason_env.config import check_int
from ffreason_env.lenient import MODES

from .presets import DEFAULT_PRESET

__all__ = ["RLRunConfig", "GRPORunConfig", "PPORunConfig", "ALGORITHMS", "config_class", "own_knobs",
           "check_knobs", "from_layers", "RESUME_MAY_CHANGE"]


@dataclass
class RLRunConfig:
    """The knobs every RL algorithm reads."""

    algo: ClassVar[str]
    run_class: ClassVar[str]
    """``module:class`` of the algorithm's run (imported only to train)."""

    out: str = ""
    """Run directory (required)."""
    preset: str = DEFAULT_PRESET
    """The preset (trainers/presets/NAME.yaml, sections ``rl`` and the algorithm's) the other values start from."""
    init: str = ""
    """SFT run directory, model directory or hub id to start from (required)."""
    lora: bool = False
    """Train a LoRA adapter (r=64, alpha=128, dropout 0.05) on top of ``init`` and merge it at the end."""
    env: str = "ffreason/Mixed-v0"
    """The environment id; rewards come from its ``score``, the same as its ``step``."""
    problem: ProblemConfig = field(default_factory=ProblemConfig)
    """The RL problems (the environment's ProblemConfig)."""
    format_penalty: float = 0.0
    """Reward: subtract this for a response outside the grammar."""
    process_weight: float = 0.0
    """Reward: add this times the fraction of correct steps."""
    prompt_style: str = "bare"
    """How the questions are put (the environment's argument): bare (the study's), instructed (the answer grammar
    first) or few_shot (solved examples first); evaluations and probes put theirs the same way."""
    shots: int = 2
    """few_shot: solved examples before each question."""
    shot_strategy: str = "aligned"
    """few_shot: the examples' strategy (aligned, misaligned, forward, backward)."""
    answer_mode: str = "strict"
    """How responses are read (the environment's ``answer_mode``): strict (the study's) or lenient
    (``ffreason_env.lenient``, for models never trained on the grammar), in training and in evaluations."""
    prompts: int = 1024
    """Distinct training problems (items 0..prompts-1 of the env's stream); the study used 1024."""
    prompt_seed: int = 1
    """The env's problem stream of the training prompts (SFT data uses 0, validation sets 1000003)."""
    curriculum: tuple[tuple[int, int], ...] = ()
    """An accuracy-driven curriculum (trainers/curriculum.py): (min_steps, max_steps) ranges of the training
    problems, easiest first, each with its own ``prompts`` problems; training starts on the first and moves on when
    the batch accuracy, averaged over the last ``curriculum_window`` batches of the level, reaches
    ``curriculum_threshold`` (``train/curriculum/level`` in metrics.jsonl). The budget, the probe set and the
    validation sets still follow ``problem``: set its range to the hardest level's. Empty: ``problem``'s range
    throughout."""
    curriculum_threshold: float = 0.5
    """The batch accuracy that moves the curriculum to its next level."""
    curriculum_window: int = 5
    """Batches of a level whose mean accuracy is compared with the threshold."""
    max_steps: int = 200
    """Optimizer steps."""
    num_generations: int = 8
    """Completions per prompt (the group that shares one problem)."""
    per_device_train_batch_size: int = 32
    """Completions per optimizer step and device (prompts per step = this / num_generations)."""
    learning_rate: float = 1e-5
    """Peak learning rate (AdamW)."""
    lr_scheduler_type: str = "constant"
    """transformers scheduler name (constant, cosine, linear, ...)."""
    warmup_steps: float = 0.0
    """Warm-up steps; below 1, a fraction of ``max_steps``."""
    weight_decay: float = 0.0
    """AdamW's weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm."""
    beta: float = 0.05
    """KL coefficient to the initial policy (0 skips the reference model)."""
    temperature: float = 0.7
    """Sampling temperature of the rollouts."""
    top_p: float = 1.0
    """Nucleus sampling of the rollouts (1: the whole distribution)."""
    max_completion_length: int = 512
    """Generation budget in tokens: also the study's lever for selection (a long search does not fit)."""
    budget_ratio: float = 0.0
    """The budget in the task's terms: above 0, ``max_completion_length`` becomes this many times the longest
    aligned trace of the RL problems' longest chains, counted in the model's tokenizer (trainers/budget.py), and
    the run's config.yaml records the result; 0: ``max_completion_length`` as given. At least 1."""
    min_budget_ratio: float = 0.0
    """A floor in the same terms: the budget is raised to at least this many times the longest aligned trace
    (longer RL data than the preset's budget was chosen for must not cut direct answers); 0: no floor."""
    epsilon: float = 0.2
    """Clip range of the policy ratio."""
    seed: int = 0
    """Seed of the model's sampling and of the prompt order."""
    bf16: bool = False
    """bfloat16 weights and training (GPU)."""
    save_steps: int = 25
    """Checkpoint every N optimizer steps (and at the end)."""
    save_total_limit: int = 2
    """Checkpoints kept, the newest (0: all): one of a 1.5B model with LoRA, its reference adapter and optimizer
    state is about 1.2 GB."""
    eval_every: int = 25
    """Evaluate on every ``eval_ranges`` set each N optimizer steps (and before the first, and at the end); 0: never."""
    eval_ranges: tuple[tuple[int, int], ...] = ((2, 5), (6, 9))
    """Validation sets as (min_steps, max_steps) pairs, the RL problems' other settings with labels from 1."""
    eval_n: int = 200
    """Problems per validation set."""
    eval_batch_size: int = 64
    """Sequences per generate call of the evaluations."""
    eval_max_new_tokens: int = 0
    """Generation budget of the evaluations; 0: ``max_completion_length``, the budget the policy trains under
    (a search that does not fit it fails in evaluation as in training; ``ffreason eval`` has no such cap)."""
    eval_teacher_forced: bool = True
    """At every evaluation, also the log-probability of each strategy's reference trace on every problem of the
    probe set (``probe/teacher_forced/...``, trainers/probes.py): which strategy the model prefers, without
    sampling. On the probe set, not the validation sets: the search traces are long, and scoring them on two
    100-problem sets made a tiny evaluation 9x slower (``python -m benchmarks probe_cost``)."""
    probe_n: int = 32
    """Problems of the probe set (the first of the validation stream of the RL data's steps, labels from 1),
    sampled ``probe_samples`` times at every evaluation as training samples are: per-problem strategy transitions
    and the accuracy change split into selection and improvement (``probe/...``, ``probes.jsonl``); 0: none."""
    probe_samples: int = 8
    """Samples per probe problem at every evaluation."""
    resume: bool = False
    """Continue from the last checkpoint in ``RUN_DIR/checkpoints``."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""

    def __post_init__(self) -> None:
        self.eval_ranges = tuple(tuple(r) for r in self.eval_ranges)  # YAML gives lists
        self.curriculum = tuple(tuple(r) for r in self.curriculum)

    def style(self) -> PromptStyle:
        """The :class:`~ffreason_env.PromptStyle` of ``prompt_style``, ``shots`` and ``shot_strategy``."""
        return PromptStyle(self.prompt_style, self.shots, self.shot_strategy)

    def batch(self, num_processes: int) -> int:
        """Completions of one optimizer step over all processes."""
        return self.per_device_train_batch_size * num_processes

    def validate(self, num_processes: int = 1) -> None:
        """Raise ``ValueError`` naming the first bad field; called before any model is loaded.

        ``num_processes``: data-parallel processes; the batch that ``num_generations`` must divide is all of theirs.
        """
        if not self.out:
            raise ValueError("out: a run directory is required")
        if not self.init:
            raise ValueError("init: the model to start from is required (an SFT run directory or a hub id)")
        if self.env not in ENV_IDS:
            raise ValueError(f"env: unknown environment id {self.env!r}; known: {', '.join(ENV_IDS)}")
        for name in ("prompts", "max_steps", "num_generations", "per_device_train_batch_size",
                     "max_completion_length", "save_steps", "eval_n", "eval_batch_size"):
            check_int(name, getattr(self, name), 1, 2**31 - 1)
        check_int("eval_max_new_tokens", self.eval_max_new_tokens, 0, 2**31 - 1)
        check_int("save_total_limit", self.save_total_limit, 0, 2**31 - 1)
        check_int("eval_every", self.eval_every, 0, 2**31 - 1)
        check_int("probe_n", self.probe_n, 0, 2**31 - 1)
        check_int("probe_samples", self.probe_samples, 1, 2**31 - 1)
        if self.num_generations < 2:
            raise ValueError(f"num_generations: a group needs at least 2 completions, got {self.num_generations}")
        batch = self.batch(num_processes)
        if batch % self.num_generations:
            raise ValueError(f"num_generations: {self.num_generations} does not divide the batch of {batch} "
                             f"completions ({self.batch_description(num_processes)})")
        for name in ("learning_rate", "temperature", "top_p", "epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        for name in ("budget_ratio", "min_budget_ratio"):
            if getattr(self, name) and getattr(self, name) < 1:
                raise ValueError(f"{name}: below 1 the aligned traces do not fit; expected 0 or >= 1, got "
                                 f"{getattr(self, name)}")
        for name in ("beta", "weight_decay", "warmup_steps", "format_penalty", "process_weight", "budget_ratio",
                     "min_budget_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        self.style()
        if self.answer_mode not in MODES:
            raise ValueError(f"answer_mode: expected one of {MODES}, got {self.answer_mode!r}")
        for name in ("eval_ranges", "curriculum"):
            for r in getattr(self, name):
                if len(r) != 2 or not 1 <= r[0] <= r[1]:
                    raise ValueError(f"{name}: each range is (min_steps, max_steps) with 1 <= min <= max, got {r}")
        if self.curriculum:
            check_int("curriculum_window", self.curriculum_window, 1, 2**31 - 1)
            if not 0 < self.curriculum_threshold <= 1:
                raise ValueError(f"curriculum_threshold: expected in (0, 1], got {self.curriculum_threshold!r}")
        from .envbridge import make_env

        make_env(self)  # an env that refuses the problem settings fails here, with its own message
        for lo, hi in self.curriculum:
            try:
                make_env(self, self.problem.replace(min_steps=lo, max_steps=hi))
            except ValueError as e:
                raise ValueError(f"curriculum: level ({lo}, {hi}): {e}") from None

    def batch_description(self, num_processes: int) -> str:
        return f"per_device_train_batch_size {self.per_device_train_batch_size} x {num_processes} process(es)"


@dataclass
class GRPORunConfig(RLRunConfig):
    """GRPO through TRL's ``GRPOTrainer``: the shared knobs and TRL's own (``GRPOConfig`` names)."""

    algo: ClassVar[str] = "grpo"
    run_class: ClassVar[str] = "trainers.grpo:GRPORun"

    gradient_accumulation_steps: int = 1
    """Batches of ``per_device_train_batch_size`` completions per optimizer step."""
    loss_type: str = "grpo"
    """TRL's loss: grpo | dr_grpo | dapo | bnpo | ..."""
    scale_rewards: str = "group"
    """Advantage scaling: group | batch | none."""
    num_iterations: int = 1
    """Updates per generated batch."""
    logging_steps: int = 1
    """Log TRL's metrics every N optimizer steps (the strategy metrics are logged at every step)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory for a third more compute. TRL's default is on;
    off here, where the tiny model's activations are small (on, a CPU GRPO step ran a second forward)."""
    use_vllm: bool = False
    """Generate with vLLM (GPU; pip install 'ffreason[vllm]')."""
    vllm_mode: str = "colocate"
    """``colocate``: vLLM shares each training process's GPU; ``server``: a separate ``trl vllm-serve`` generates."""
    vllm_gpu_memory_utilization: float = 0.3
    """Colocate mode: the share of each GPU's memory vLLM reserves."""
    vllm_server_base_url: str = ""
    """Server mode: the ``trl vllm-serve`` address (e.g. ``http://10.0.0.5:8000``); empty means localhost:8000."""
    ddp_timeout: int = 1800
    """Seconds a process waits for the others at a collective before the run is stopped (transformers' name and
    default; torch's own is 10 minutes on GPUs). Set when the process group is created."""
    report_to: tuple[str, ...] = ("none",)
    """Extra TRL/transformers loggers (``wandb``, ...); metrics.jsonl and TensorBoard are always written."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.report_to, str):
            self.report_to = (self.report_to,)
        self.report_to = tuple(self.report_to)

    def batch(self, num_processes: int) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * num_processes

    def batch_description(self, num_processes: int) -> str:
        return (f"per_device_train_batch_size {self.per_device_train_batch_size} x gradient_accumulation_steps "
                f"{self.gradient_accumulation_steps} x {num_processes} process(es)")

    def validate(self, num_processes: int = 1) -> None:
        for name in ("gradient_accumulation_steps", "num_iterations", "logging_steps", "ddp_timeout"):
            check_int(name, getattr(self, name), 1, 2**31 - 1)
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"vllm_mode: {self.vllm_mode!r} is not 'colocate' or 'server'")
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ValueError(f"vllm_gpu_memory_utilization: expected in (0, 1], got {self.vllm_gpu_memory_utilization}")
        super().validate(num_processes)


@dataclass
class PPORunConfig(RLRunConfig):
    """The project's PPO (trainers/ppo.py): a value head on the policy, GAE, the clipped objective."""

    algo: ClassVar[str] = "ppo"
    run_class: ClassVar[str] = "trainers.ppo:PPORun"

    gamma: float = 1.0
    """Discount of GAE (1: the outcome reward reaches every token undiminished)."""
    lam: float = 1.0
    """GAE's lambda. With the outcome reward on the last token and a critic that starts knowing nothing, lam < 1
    gives token t about lam**(T - t) of the outcome: the first tokens, where a response commits to its strategy,
    get almost none (lam 0.95 on the tiny recipe: 0.18 mean |advantage| at the first token against 0.93 with 1,
    and the run collapsed; docs/results.md)."""
    cliprange_value: float = 0.2
    """Clip range of the value update around the rollout's values."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    critic: str = "shared"
    """The value head's trunk: ``shared`` (the policy's own last hidden state: no extra model, but the value loss
    trains the policy's trunk too, weighted by ``vf_coef``) or ``separate`` (a copy of the initial model trained on
    the value loss alone, as verl and OpenRLHF run PPO: twice the model's memory and forward passes)."""
    critic_learning_rate: float = 0.0
    """Learning rate of the critic: the value head, and a separate critic's trunk (0: ``learning_rate``); a trunk
    shared with the policy keeps ``learning_rate``."""
    ppo_epochs: int = 2
    """Passes over each batch of rollouts."""
    num_mini_batches: int = 2
    """Mini-batches per pass."""
    whiten_advantages: bool = True
    """Advantages scaled to zero mean and unit variance over the batch's tokens."""

    def validate(self, num_processes: int = 1) -> None:
        for name in ("ppo_epochs", "num_mini_batches"):
            check_int(name, getattr(self, name), 1, 2**31 - 1)
        if self.per_device_train_batch_size % self.num_mini_batches:
            raise ValueError(f"num_mini_batches: {self.num_mini_batches} does not divide "
                             f"per_device_train_batch_size {self.per_device_train_batch_size}")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma/lam: expected in [0, 1], got gamma={self.gamma} lam={self.lam}")
        if self.critic not in ("shared", "separate"):
            raise ValueError(f"critic: expected shared or separate, got {self.critic!r}")
        if self.critic == "separate" and self.lora:
            raise ValueError("critic: a separate critic is a full copy of the model, which lora does not train; use "
                             "critic shared with lora")
        for name in ("vf_coef", "cliprange_value", "critic_learning_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        super().validate(num_processes)


ALGORITHMS: dict[str, type[RLRunConfig]] = {c.algo: c for c in (GRPORunConfig, PPORunConfig)}
"""Algorithm name -> its config class; a new algorithm is a config class here and a module with its run."""

SHARED = frozenset(f.name for f in dataclasses.fields(RLRunConfig))


def config_class(algo: str) -> type[RLRunConfig]:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: {algo!r} is not one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[algo]


def own_knobs(algo: str) -> list[str]:
    """The fields only ``algo`` reads."""
    return [f.name for f in dataclasses.fields(config_class(algo)) if f.name not in SHARED]


def check_knobs(algo: str, names: Iterable[str]) -> None:
    """Refuse, naming it, a knob of another algorithm among ``names`` (keys of a YAML file, given flags)."""
    mine = set(own_knobs(algo))
    for name in names:
        for other in ALGORITHMS:
            if other != algo and name in own_knobs(other) and name not in mine:
                raise ValueError(f"{name}: a {other.upper()} knob; --algo {algo} does not take it (drop it, or "
                                 f"use --algo {other})")


RESUME_MAY_CHANGE = frozenset({"out", "resume", "threads", "max_steps", "save_steps", "save_total_limit",
                               "ddp_timeout", "logging_steps", "report_to",
                               "eval_batch_size", "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization",
                               "vllm_server_base_url"})
"""Settings a resumed run may change: where it lives (a copied or moved run directory), how long it runs, how it
saves, logs and generates; every other one shapes what is learnt or measured."""


def from_layers(algo: str, *layers: dict[str, Any]) -> RLRunConfig:
    """``algo``'s config from layers (a preset's sections, a YAML file, overrides), refusing other algorithms'
    knobs among their keys."""
    from .settings import merge

    for layer in layers:
        check_knobs(algo, layer)
    return merge(config_class(algo), *layers)

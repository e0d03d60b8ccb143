"""reasoning-gym: ffreason's problems as reasoning-gym datasets, with a curriculum over steps, kinds and p.

``register()`` (once; ``pip install reasoning-gym``) adds the dataset ``ffreason`` to reasoning-gym's registry,
so that ``reasoning_gym.create_dataset("ffreason", min_steps=6, max_steps=9, seed=1, size=500)`` and its
curriculum ``reasoning_gym.factory.create_curriculum("ffreason")`` work as for any of its tasks. Item ``i`` is
``generate(config, seed, i)``: the same problem ffreason's envs and exports draw, regenerable alone. Its
``score_answer`` scores the **whole response** with :func:`~ffreason_env.verify` (reasoning-gym usually scores
an extracted answer; here the strategy and the steps are the point), in the config's answer mode.

>>> import reasoning_gym                                      # doctest: +SKIP
>>> register()                                                # doctest: +SKIP
>>> data = reasoning_gym.create_dataset("ffreason", min_steps=2, max_steps=3, seed=1, size=4)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ffreason_env.config import PROBLEM_DEFAULTS, ProblemConfig
from ffreason_env.lenient import MODES
from ffreason_env.problem import Problem, generate
from ffreason_env.prompts import PromptStyle, render_prompt
from ffreason_env.rewards import RewardSpec
from ffreason_env.verifier import verify

__all__ = ["DATASET_NAME", "FFReasonRGConfig", "register", "STEP_LEVELS", "KIND_LEVELS", "P_LEVELS"]

DATASET_NAME = "ffreason"
STEP_LEVELS: tuple[tuple[int, int], ...] = ((1, 3), (2, 5), (4, 7), (6, 9), (8, 12), (10, 15))
"""The curriculum's step ranges, easiest first (the study's are 2-5, 6-9 and 10-15)."""
KIND_LEVELS: tuple[tuple[str, ...], ...] = (("evaluation",), ("evaluation", "inversion"),
                                            ("evaluation", "inversion", "composition"))
P_LEVELS: tuple[int, ...] = (5, 7, 11, 13)


@dataclass
class FFReasonRGConfig:
    """A reasoning-gym config of ffreason problems: the :class:`~ffreason_env.ProblemConfig` fields that a
    curriculum moves, how the question is put and how the response is read, and reasoning-gym's ``seed`` and
    ``size``."""

    min_steps: int = PROBLEM_DEFAULTS.min_steps
    max_steps: int = PROBLEM_DEFAULTS.max_steps
    problem_types: tuple[str, ...] = tuple(PROBLEM_DEFAULTS.problem_types)
    p: int = PROBLEM_DEFAULTS.p
    min_parts: int = PROBLEM_DEFAULTS.min_parts
    max_parts: int = PROBLEM_DEFAULTS.max_parts
    prompt_style: str = "instructed"
    """bare (the study's prompt, for models fine-tuned on the grammar), instructed or few_shot: a reasoning-gym
    user brings a model that never saw the grammar, hence the default."""
    shots: int = 2
    shot_strategy: str = "aligned"
    answer_mode: str = "strict"
    """strict (the study's) or lenient (:mod:`ffreason_env.lenient`)."""
    format_penalty: float = 0.0
    process_weight: float = 0.0
    seed: Optional[int] = None
    size: int = 500
    problem: ProblemConfig = field(init=False, repr=False)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (reasoning-gym calls it before building a dataset)."""
        self.problem = ProblemConfig(p=self.p, min_steps=self.min_steps, max_steps=self.max_steps,
                                     problem_types=list(self.problem_types), min_parts=self.min_parts,
                                     max_parts=self.max_parts)
        PromptStyle(self.prompt_style, self.shots, self.shot_strategy)
        RewardSpec(self.format_penalty, self.process_weight)
        if self.answer_mode not in MODES:
            raise ValueError(f"answer_mode: expected one of {MODES}, got {self.answer_mode!r}")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size: expected an int >= 1, got {self.size!r}")


def register() -> None:
    """Add the ``ffreason`` dataset and its curriculum to reasoning-gym's registry (a second call does nothing)."""
    try:
        import reasoning_gym  # noqa: F401
        from reasoning_gym.coaching import BaseCurriculum, RangeAttributeDefinition, ScalarAttributeDefinition
        from reasoning_gym.dataset import ProceduralDataset
        from reasoning_gym.factory import DATASETS, register_dataset
    except ImportError as e:
        raise ImportError("ffreason_env.rg needs reasoning-gym: pip install reasoning-gym") from e
    if DATASET_NAME in DATASETS:
        return

    class FFReasonDataset(ProceduralDataset):
        """ffreason problems; ``score_answer`` scores the whole response with ``verify``."""

        def __init__(self, config: FFReasonRGConfig):
            super().__init__(config=config, seed=config.seed, size=config.size)
            self.style = PromptStyle(config.prompt_style, config.shots, config.shot_strategy)
            self.reward = RewardSpec(config.format_penalty, config.process_weight)

        def __getitem__(self, idx: int) -> dict[str, Any]:
            problem = generate(self.config.problem, self.seed, idx)
            return {"question": render_prompt(problem, self.style), "answer": problem.symbol(problem.answer),
                    "metadata": {"source_dataset": DATASET_NAME, "source_index": idx, "problem": problem.to_json(),
                                 "kind": problem.kind, "num_steps": problem.num_steps,
                                 "difficulty": {"steps": (self.config.min_steps, self.config.max_steps),
                                                "problem_types": list(self.config.problem_types),
                                                "p": self.config.p}}}

        def score_answer(self, answer: Optional[str], entry: dict[str, Any]) -> float:
            if not isinstance(answer, str):
                return 0.0
            problem = Problem.from_json(entry["metadata"]["problem"])
            return self.reward(verify(problem, answer, self.config.answer_mode))

    class FFReasonCurriculum(BaseCurriculum):
        """Steps (``STEP_LEVELS``), kinds (``KIND_LEVELS``) and field size (``P_LEVELS``), easiest first."""

        def __init__(self):
            super().__init__(FFReasonCurriculum.__name__, FFReasonRGConfig)
            self._define_attributes(
                RangeAttributeDefinition(name="steps", levels=[list(r) for r in STEP_LEVELS], default_level=1,
                                         description="Operations per problem", lower_field_name="min_steps",
                                         upper_field_name="max_steps"),
                ScalarAttributeDefinition(name="kinds", levels=list(KIND_LEVELS), default_level=1,
                                          description="Problem kinds mixed", field_name="problem_types"),
                ScalarAttributeDefinition(name="p", levels=list(P_LEVELS), default_level=2,
                                          description="Field size", field_name="p"),
            )

    register_dataset(DATASET_NAME, FFReasonDataset, FFReasonRGConfig, FFReasonCurriculum)

"""The environment bridge: an RL run's environment, its training problems, and the scores of completions.

The run builds its environment from its config with ``gymnasium.make``, keeps
the training problems it draws from it (item ``i`` of the env's stream,
generated once), and scores every completion with the environment's own
``score(problem, response)``, which its ``step`` uses: a reward here is the
reward a user's own ``env.step`` loop gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ffreason_env import ENV_IDS, Problem, ProblemConfig, ProblemSet, Verdict

__all__ = ["env_kwargs", "make_env", "TrainingProblems", "score"]


def env_kwargs(cfg, problem_config: ProblemConfig | None = None) -> dict[str, Any]:
    """``gymnasium.make`` keyword arguments of an RL config: its problem settings (or ``problem_config``, a
    curriculum level's), training stream, reward, prompt style and answer mode.

    An env fixed to one kind (``ffreason/Composition-v0``, ...) takes its own kinds when the config keeps the
    default mix."""
    problem_config = problem_config or cfg.problem
    problem = problem_config.to_dict()
    fixed = getattr(ENV_IDS.get(cfg.env), "problem_types", None)
    if fixed is not None and problem_config.problem_types == ProblemConfig().problem_types \
            and problem_config.type_weights is None:
        del problem["problem_types"], problem["type_weights"]
    return {"problem_seed": cfg.prompt_seed, "format_penalty": cfg.format_penalty,
            "process_weight": cfg.process_weight, "prompt_style": cfg.prompt_style, "shots": cfg.shots,
            "shot_strategy": cfg.shot_strategy, "answer_mode": cfg.answer_mode, **problem}


def make_env(cfg, problem_config: ProblemConfig | None = None):
    """The run's environment (with ``problem_config`` instead of its problem settings, if given); settings it
    refuses raise ``ValueError`` with its message."""
    import gymnasium as gym

    import ffreason_env  # noqa: F401  (registers the ids)

    try:
        return gym.make(cfg.env, **env_kwargs(cfg, problem_config))
    except (TypeError, ValueError) as e:
        raise ValueError(f"problem: {e}") from None


@dataclass(frozen=True)
class TrainingProblems:
    """Items ``0..n-1`` of the env's problem stream with their prompts, rendered once; looked up by index."""

    problems: list[Problem]
    prompts: list[str]

    @classmethod
    def from_env(cls, env, n: int) -> "TrainingProblems":
        u = env.unwrapped
        problems = list(ProblemSet(u.config, u.problem_seed, n))
        return cls(problems, [u.prompt(p) for p in problems])

    def __add__(self, other: "TrainingProblems") -> "TrainingProblems":
        """Both sets, ``other``'s indices after this one's (a curriculum's levels, one after another)."""
        return TrainingProblems(self.problems + other.problems, self.prompts + other.prompts)

    def rows(self) -> list[dict[str, Any]]:
        """TRL dataset rows: the chat prompt and the index the reward function looks the problem up by."""
        return [{"prompt": [{"role": "user", "content": text}], "index": i} for i, text in enumerate(self.prompts)]


def score(env, problems: Sequence[Problem], texts: Sequence[str]) -> tuple[list[float], list[Verdict]]:
    """``(rewards, verdicts)``, one of each per ``(problem, text)`` pair, from the env's own ``score``."""
    scorer = env.unwrapped.score
    pairs = [scorer(problem, text) for problem, text in zip(problems, texts, strict=True)]
    return [float(r) for r, _ in pairs], [v for _, v in pairs]

"""The gymnasium environments: one class per env id, single-turn text in, reward out."""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from .config import ProblemConfig, check_int
from .problem import Problem, generate
from .lenient import MODES
from .prompts import PromptStyle, render_prompt
from .rewards import RewardSpec
from .verifier import Verdict, verify

__all__ = [
    "AnyText",
    "FFReasonEnv",
    "EvaluationEnv",
    "InversionEnv",
    "MixedEnv",
    "CompositionEnv",
    "ENV_IDS",
]

MAX_PROMPT_CHARS = 1 << 20
MAX_RESPONSE_CHARS = 1 << 16
_SAMPLE_CHARSET = string.ascii_letters + string.digits + " \n:;=,()"


class AnyText(spaces.Text):
    """A Text space that contains every Unicode string up to ``max_length``.

    ``sample()`` draws from the small ``charset``; ``contains()`` ignores it, so
    any model output is a valid action (listing all of Unicode would cost
    ~100 MB per space).
    """

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


class FFReasonEnv(gym.Env[str, str]):
    """Shared machinery of the four envs; use one of the registered ids instead."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    problem_types: tuple[str, ...] | None = None
    """Kinds this env is fixed to (None: taken from the kwargs, as in Mixed-v0)."""

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        problem_seed: int = 0,
        format_penalty: float = 0.0,
        process_weight: float = 0.0,
        max_response_chars: int = MAX_RESPONSE_CHARS,
        prompt_style: str = "bare",
        shots: int = 2,
        shot_strategy: str = "aligned",
        answer_mode: str = "strict",
        **config: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: {render_mode!r} is not one of {self.metadata['render_modes']}")
        if self.problem_types is not None:  # a fixed env accepts its own kinds, so a whole ProblemConfig can be passed
            if tuple(config.get("problem_types", self.problem_types)) != self.problem_types or \
                    config.get("type_weights") is not None:
                key = "type_weights" if config.get("type_weights") is not None else "problem_types"
                raise ValueError(
                    f"{key}: {type(self).__name__} is fixed to {self.problem_types}; use ffreason/Mixed-v0 to mix kinds"
                )
            config["problem_types"] = self.problem_types
        self.config = ProblemConfig.from_dict(config)
        self.reward_spec = RewardSpec(format_penalty=format_penalty, process_weight=process_weight)
        self.prompt_style = PromptStyle(prompt_style, shots, shot_strategy)
        if answer_mode not in MODES:
            raise ValueError(f"answer_mode: expected one of {MODES}, got {answer_mode!r}")
        self.answer_mode = answer_mode
        check_int("problem_seed", problem_seed, 0, 2**64 - 1)
        check_int("max_response_chars", max_response_chars, 1, 2**31 - 1)
        self.problem_seed = problem_seed
        self.render_mode = render_mode
        self.observation_space = AnyText(MAX_PROMPT_CHARS, charset=_SAMPLE_CHARSET)
        self.action_space = AnyText(max_response_chars, min_length=0, charset=_SAMPLE_CHARSET)
        self.problem: Problem | None = None
        self.index: int | None = None
        self._prompt = ""
        self._response: str | None = None
        self.verdict = None
        """The last ``step``'s :class:`~ffreason_env.Verdict` (None before the first step of an episode)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        """Draw a problem. ``options={"index": i}`` picks item i of the stream; ``{"problem": p}`` sets one."""
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"index", "problem"}
        if unknown:
            raise ValueError(f"options: unknown key {sorted(unknown)[0]!r}; expected 'index' or 'problem'")
        if "problem" in options:
            problem = options["problem"]
            self.problem = problem if isinstance(problem, Problem) else Problem.from_dict(problem)
            self.index = None
        else:
            index = options.get("index")
            if index is None:
                index = int(self.np_random.integers(0, 2**63 - 1))
            self.problem = generate(self.config, self.problem_seed, index)
            self.index = int(index)
        self._prompt = self.prompt(self.problem)
        self._response, self.verdict = None, None
        return self._prompt, self._info()

    def prompt(self, problem: Problem) -> str:
        """The question ``reset`` would ask for ``problem``, in this env's prompt style."""
        return render_prompt(problem, self.prompt_style)

    def score(self, problem: Problem, response: str) -> tuple[float, Verdict]:
        """``(reward, verdict)`` of ``response`` to ``problem`` under this env's reward options and answer mode:
        what ``step`` returns, without an episode. Trainers that hold their problems call it directly."""
        verdict = verify(problem, response, self.answer_mode)
        return self.reward_spec(verdict), verdict

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        """Verify ``action`` (the full response) with :meth:`score`; the episode ends here."""
        if self.problem is None or self._response is not None:
            raise RuntimeError("step() needs a fresh episode: call reset() first")
        reward, self.verdict = self.score(self.problem, action)
        self._response = action
        info = self._info()
        # -1 for "none" keeps each key one type across envs, as gymnasium's vector envs need
        info.update({k: -1 if v is None else v for k, v in self.verdict.to_dict().items()})
        return self._prompt, reward, True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        out = [self._prompt]
        if self._response is not None:
            v = self.verdict
            out += [
                "--- response",
                self._response,
                f"--- correct={v.correct} strategy={v.strategy} "
                f"steps {v.steps_correct}/{v.steps_checked} well_formed={v.well_formed}",
            ]
        return "\n".join(out)

    def _info(self) -> dict[str, Any]:
        assert self.problem is not None
        return {
            "problem": self.problem.to_dict(),
            "index": -1 if self.index is None else self.index,
            "problem_kind": self.problem.kind,
            "num_steps": self.problem.num_steps,
        }


_DOC_COMMON = """
    ## Observation
    The prompt text (``str``, in :class:`AnyText`); see docs/environments.md
    for its exact grammar.

    ## Action
    The policy's whole response (any Unicode ``str``). Its last non-empty line
    must be ``answer X``.

    ## Reward
    1.0 if the final answer is right, else 0.0 (the study's outcome reward).
    ``process_weight`` adds that times the fraction of correct steps;
    ``format_penalty`` subtracts that for a response outside the grammar.

    ## Episode end
    Single turn: ``step`` always returns ``terminated=True``. ``info`` holds the
    problem (``Problem.to_dict()``), its ``index`` and every ``Verdict`` field
    (``correct``, ``answer``, ``strategy``, ``steps_correct``, ...), with -1
    standing for None (``answer``, ``first_error``, ``index`` of a set problem).

    ## Arguments
    Any :class:`~ffreason_env.ProblemConfig` field (``p``, ``min_steps``,
    ``max_steps``, ``ops``, ``symbol_seed``, ...), plus ``problem_seed`` (the
    problem stream reset draws from), ``format_penalty``, ``process_weight``,
    ``max_response_chars`` (action space size), ``render_mode="ansi"``,
    ``prompt_style`` (``bare``: the study's; ``instructed``, ``few_shot`` with
    ``shots`` and ``shot_strategy``: :class:`~ffreason_env.PromptStyle`) and
    ``answer_mode`` (``strict``: the study's; ``lenient`` for models never
    trained on the grammar: :mod:`ffreason_env.lenient`).
"""


class EvaluationEnv(FFReasonEnv):
    __doc__ = (
        """Evaluate a chain of GF(p) operations: given x0, find xk.

    ## Description
    The forward strategy (apply op 1..k) solves it directly; the backward
    strategy must search over candidate xk.

    ## Example
    >>> import gymnasium as gym
    >>> import ffreason_env
    >>> env = gym.make("ffreason/Evaluation-v0", p=11, min_steps=2, max_steps=2)
    >>> prompt, info = env.reset(seed=0)
    >>> print(prompt)
    evaluation over GF(11)
    step 1 add e9
    step 2 mul e6
    given x0 = e5 , find x2
    >>> problem = ffreason_env.Problem.from_dict(info["problem"])
    >>> print(ffreason_env.write_trace(problem, "forward"))
    step 1 add e9 : e5 -> e3
    step 2 mul e6 : e3 -> e7
    answer e7
    >>> _, reward, terminated, truncated, info = env.step(ffreason_env.write_trace(problem, "forward"))
    >>> reward, terminated, info["strategy"]
    (1.0, True, 'forward')
    """
        + _DOC_COMMON
    )
    problem_types = ("evaluation",)


class InversionEnv(FFReasonEnv):
    __doc__ = (
        """Invert a chain of GF(p) operations: given xk, find x0.

    ## Description
    The backward strategy (undo op k..1) solves it directly; the forward
    strategy must search over candidate x0.

    ## Example
    >>> import gymnasium as gym
    >>> import ffreason_env
    >>> env = gym.make("ffreason/Inversion-v0", min_steps=2, max_steps=2)
    >>> prompt, info = env.reset(seed=0)
    >>> problem = ffreason_env.Problem.from_dict(info["problem"])
    >>> _, reward, _, _, info = env.step(ffreason_env.write_trace(problem, "forward"))
    >>> reward, info["strategy"], info["aligned"]
    (1.0, 'forward', False)
    """
        + _DOC_COMMON
    )
    problem_types = ("inversion",)


class MixedEnv(FFReasonEnv):
    __doc__ = (
        """Evaluation and inversion problems mixed (the study's setting).

    ## Description
    ``problem_types`` and ``type_weights`` set the mix (default: evaluation
    and inversion, equally likely); ``type_weights=[0.9, 0.1]`` skews it as in
    the amplification experiment.

    ## Example
    >>> import gymnasium as gym
    >>> import ffreason_env
    >>> env = gym.make("ffreason/Mixed-v0", min_steps=6, max_steps=9, type_weights=[3, 1])
    >>> prompt, info = env.reset(seed=1)
    >>> prompt.splitlines()[0] in ("evaluation over GF(11)", "inversion over GF(11)")
    True
    >>> _, reward, terminated, _, info = env.step("answer e0")
    >>> info["strategy"], info["steps_checked"], terminated
    ('unknown', 1, True)
    """
        + _DOC_COMMON
    )


class CompositionEnv(FFReasonEnv):
    __doc__ = (
        """Chains of 2+ sub-problems: part i's answer is part i+1's given value.

    ## Description
    Each part is an evaluation or inversion (``part_types``); the number of
    parts is drawn from ``[min_parts, max_parts]``. The verdict labels each
    part's strategy (``info["part_strategies"]``).

    ## Example
    >>> import gymnasium as gym
    >>> import ffreason_env
    >>> env = gym.make("ffreason/Composition-v0", min_steps=1, max_steps=2, min_parts=2, max_parts=2)
    >>> prompt, info = env.reset(seed=0)
    >>> problem = ffreason_env.Problem.from_dict(info["problem"])
    >>> _, reward, _, _, info = env.step(ffreason_env.write_trace(problem, ["forward", "backward"]))
    >>> reward, info["part_strategies"]
    (1.0, ['forward', 'backward'])
    """
        + _DOC_COMMON
    )
    problem_types = ("composition",)


ENV_IDS: dict[str, type[FFReasonEnv]] = {
    "ffreason/Evaluation-v0": EvaluationEnv,
    "ffreason/Inversion-v0": InversionEnv,
    "ffreason/Mixed-v0": MixedEnv,
    "ffreason/Composition-v0": CompositionEnv,
}


def register_envs() -> None:
    """Register every id with gymnasium (idempotent)."""
    for env_id, cls in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"{__name__}:{cls.__name__}")

"""ffreason_env: finite-field (GF(p)) reasoning problems as gymnasium text environments.

numpy + gymnasium only (never torch). Importing the package registers
``ffreason/Evaluation-v0``, ``ffreason/Inversion-v0``, ``ffreason/Mixed-v0`` and
``ffreason/Composition-v0``.
"""

from .config import KINDS, PART_KINDS, ProblemConfig
from .envs import ENV_IDS, AnyText, CompositionEnv, EvaluationEnv, FFReasonEnv, InversionEnv, MixedEnv, register_envs
from .export import ARMS, read_jsonl, rl_records, sft_records, to_dataset, write_jsonl
from .field import INVERSE, OPS
from .grammar import is_guess
from .problem import Problem, ProblemSet, generate
from .prompts import PROMPT_STYLES, PromptStyle, render_prompt
from .rewards import RewardSpec, format_penalty, outcome_reward, process_score
from .symbols import SymbolTable
from .traces import ALIGNED, STRATEGIES, write_trace
from .verifier import LABELS, Verdict, verify

__all__ = [
    "ALIGNED",
    "ARMS",
    "AnyText",
    "CompositionEnv",
    "ENV_IDS",
    "EvaluationEnv",
    "FFReasonEnv",
    "INVERSE",
    "InversionEnv",
    "KINDS",
    "LABELS",
    "MixedEnv",
    "OPS",
    "PART_KINDS",
    "PROMPT_STYLES",
    "Problem",
    "ProblemConfig",
    "ProblemSet",
    "PromptStyle",
    "RewardSpec",
    "STRATEGIES",
    "SymbolTable",
    "Verdict",
    "format_penalty",
    "generate",
    "is_guess",
    "outcome_reward",
    "process_score",
    "read_jsonl",
    "render_prompt",
    "rl_records",
    "sft_records",
    "to_dataset",
    "verify",
    "write_jsonl",
    "write_trace",
]

__version__ = "0.1.0"

register_envs()

"""The study's setup and published results (arXiv 2606.13125; docs/study.md), printed beside ours.

Kept apart from the experiments so that a report can always say which numbers
are the study's and which were measured here.
"""

from __future__ import annotations

__all__ = ["SOURCE", "TABLE1", "ARM_ORDER", "AMPLIFICATION_SHARES", "COMPOSITION_PARTS", "ROBUSTNESS",
           "ROBUSTNESS_DATA"]

SOURCE = ("Krishnamurthy, Huang, Rajaraman, 'Select and Improve' (arXiv 2606.13125), from its abstract and public "
          "summaries; see docs/study.md")

TABLE1: dict[str, dict[str, tuple[float, float, float]]] = {
    "B": {"sft": (24.5, 38.9, 11.9), "2-5": (18.4, 25.6, 10.1), "6-9": (50.8, 96.0, 11.6)},
    "F": {"sft": (57.0, 10.7, 97.1), "2-5": (48.0, 9.3, 91.7), "6-9": (58.3, 11.0, 99.3)},
    "FB": {"sft": (47.0, 27.1, 64.3), "2-5": (60.0, 32.2, 91.5), "6-9": (95.7, 94.1, 97.1)},
}
"""Pass@1 (%) on the 6-9-step validation set, (all, inversion, evaluation), per SFT arm: after SFT, after RL on
2-5-step data, after RL on 6-9-step data. Qwen2.5-1.5B-Instruct, GF(11)."""

ARM_ORDER = ("B", "F", "FB")
"""SFT arms in the order of the study's Table 1."""
AMPLIFICATION_SHARES = (50, 75, 90)
"""Evaluation share (%) of the RL data in the study's amplification experiment; the rest is inversion."""
COMPOSITION_PARTS = (2, 3, 4, 5, 6)
"""Numbers of parts of our composition validation sets (RL trains on 3-5; 6 is beyond it; the tiny tokenizer
covers up to 6)."""

ROBUSTNESS: dict[str, tuple[float, float, float] | None] = {
    "default": (53.0, 60.0, 97.0), "beta 0.1": (53.0, 58.0, 96.0), "group 16": (58.0, 51.0, 98.0), "lr x5": None,
}
"""Pass@1 (%) after RL on 6-9-step data, (B, F, FB), under the study's hyper-parameter variants (its lr 5e-5, five
times its 1e-5, was unstable and has no numbers)."""
ROBUSTNESS_DATA = {"default": "6-9", "beta 0.1": "6-9-beta0.1", "group 16": "6-9-group16", "lr x5": "6-9-lr5x"}
"""Our RL data label (stage directory ``rl-LABEL``) of each of those variants: all RL on 6-9 steps."""

"""The study's published results (../shared/PAPER.md, from public summaries of arXiv 2606.13125), printed beside ours.

Kept apart from the experiments so that a report can always say which numbers
are the study's and which were measured here.
"""

from __future__ import annotations

__all__ = ["SOURCE", "TABLE1", "CLAIMS"]

SOURCE = "Krishnamurthy, Huang, Rajaraman, 'Select and Improve' (arXiv 2606.13125), as summarised in PAPER.md"

TABLE1: dict[str, dict[str, tuple[float, float, float]]] = {
    "B": {"sft": (24.5, 38.9, 11.9), "2-5": (18.4, 25.6, 10.1), "6-9": (50.8, 96.0, 11.6)},
    "F": {"sft": (57.0, 10.7, 97.1), "2-5": (48.0, 9.3, 91.7), "6-9": (58.3, 11.0, 99.3)},
    "FB": {"sft": (47.0, 27.1, 64.3), "2-5": (60.0, 32.2, 91.5), "6-9": (95.7, 94.1, 97.1)},
}
"""Pass@1 (%) on the 6-9-step validation set, (all, inversion, evaluation), per SFT arm: after SFT, after RL on
2-5-step data, after RL on 6-9-step data. Qwen2.5-1.5B-Instruct, GF(11)."""

CLAIMS: dict[str, list[str]] = {
    "selection": [
        "All three arms start near 80% on 2-5-step validation after SFT.",
        "FB after RL on hard (6-9) data: ~95%; single-strategy arms ~50-60%, at chance on the kind their strategy "
        "does not fit.",
        "RL on same-difficulty data mostly selects (FB evaluation 64 -> 92); RL on harder data improves "
        "(B inversion 39 -> 96).",
    ],
    "improvement": [
        "RL on harder data (6-9, 6-15 steps) makes a strategy work on longer chains than it was supervised on "
        "(B inversion 39 -> 96 on 6-9 steps); RL on 2-5 does not.",
    ],
    "amplification": [
        "With RL data skewed 50/50, 75/25, 90/10 (evaluation/inversion), the fraction of forward responses tracks "
        "the evaluation share.",
    ],
    "composition": [
        "With 2-part compositions in SFT, RL on 3-5-part compositions extends to longer chains; without them in SFT, "
        "RL does not learn composition.",
    ],
    "gf13": [
        "GF(13): all arms 70-80% after SFT on 2-5 steps; after RL on 6-9 only FB is near perfect.",
    ],
}
"""What the study reports per experiment, in words (no table of numbers is available for these)."""

"""One run directory: resolved config, metrics JSONL (one object per line, with its step), TensorBoard."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["MetricsLog", "metrics_callback", "write_json"]


def write_json(path: str, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class MetricsLog:
    """Appends ``{"step": s, "phase": ..., **metrics}`` lines to ``RUN_DIR/metrics.jsonl``."""

    def __init__(self, run_dir: str, filename: str = "metrics.jsonl") -> None:
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, filename)

    def write(self, step: int, phase: str, metrics: dict[str, Any]) -> None:
        record = {"step": int(step), "phase": phase, **metrics}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop the lines of steps after ``step`` (a resumed run redoes them), atomically."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            keep = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(keep)
        os.replace(tmp, self.path)


def metrics_callback(log: MetricsLog, phase: str):
    """A transformers ``TrainerCallback`` that copies every logged dict to ``log``."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                log.write(state.global_step, phase, {k: v for k, v in logs.items() if isinstance(v, (int, float))})

    return _Callback()

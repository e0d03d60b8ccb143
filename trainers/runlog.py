"""One run directory: resolved config, metrics JSONL (one object per line, with its step), TensorBoard.

Crash safety: a JSONL line is appended with one ``write`` call on an ``O_APPEND``
descriptor, so a killed process leaves at most its last line torn (cut short,
no newline); :meth:`MetricsLog.truncate_after`, which a resumed run calls,
drops such a line with the lines past the checkpoint it resumes from.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["METRICS_FILE", "MetricsLog", "last_step", "metrics_callback", "write_json"]

METRICS_FILE = "metrics.jsonl"
"""A run directory's metrics log: written by :class:`MetricsLog`, read by reports and progress bars."""


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

    def __init__(self, run_dir: str, filename: str = METRICS_FILE) -> None:
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, filename)

    def write(self, step: int, phase: str, metrics: dict[str, Any]) -> None:
        record = {"step": int(step), "phase": phase, **metrics}
        data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while data:  # a regular file takes it in one call unless the disk is full or a signal kills us
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def truncate_after(self, step: int) -> list[dict[str, Any]]:
        """Keep the lines of steps up to ``step`` (a resumed run redoes the later ones), drop a torn last line,
        rewrite the file atomically and return the kept records. A bad line before the last is an error."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        kept, records = [], []
        for n, line in enumerate(lines):
            try:
                record = json.loads(line) if line.endswith("\n") else None
            except json.JSONDecodeError:
                record = None
            if record is None:
                if n == len(lines) - 1:
                    break  # torn by a kill in the middle of the last write
                raise ValueError(f"{self.path}:{n + 1}: not a JSON line ({line[:80]!r}); the file was not written by "
                                 f"this run's appends")
            if record["step"] <= step:
                kept.append(line)
                records.append(record)
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)
        return records


def last_step(path: str, tail: int = 1 << 16) -> int | None:
    """The step of the last whole line of a metrics file that may still be written to (None if it has none yet);
    reads its last ``tail`` bytes only, so that polling a long run stays cheap."""
    try:
        with open(path, "rb") as f:
            start = max(0, f.seek(0, os.SEEK_END) - tail)
            f.seek(start)
            lines = f.read().split(b"\n")[:-1]  # what follows the last newline is a line still being written
    except FileNotFoundError:
        return None
    for line in reversed(lines[1:] if start else lines):  # a tail that starts inside a line cuts it
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def metrics_callback(log: MetricsLog, phase: str, drop: tuple[str, ...] = ()):
    """A transformers ``TrainerCallback`` that copies every logged number to ``log``, except the keys in ``drop``."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                numbers = {k: v for k, v in logs.items() if isinstance(v, (int, float)) and k not in drop}
                log.write(state.global_step, phase, numbers)

    return _Callback()

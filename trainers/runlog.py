"""A run directory's life: its files' names, logs (metrics and completions JSONL), checkpoints and resuming.

Crash safety: a JSONL record is appended with one ``write`` call on an
``O_APPEND`` descriptor, so a killed process leaves at most its last line torn
(cut short, no newline); :meth:`MetricsLog.truncate_after`, which a resumed run
calls, drops such a line with the lines past the checkpoint it resumes from.
Every other file is written whole, atomically (:mod:`ffreason_env.atomic`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

from ffreason_env.atomic import atomic_write

__all__ = ["CONFIG_FILE", "METRICS_FILE", "COMPLETIONS_FILE", "CHECKPOINTS", "MetricsLog", "last_step", "prune_checkpoints",
           "metrics_callback", "tensorboard_callback", "write_json", "last_checkpoint", "check_resume_settings"]

CONFIG_FILE = "config.yaml"
"""A run's resolved settings (the command and every field), written before it trains."""
METRICS_FILE = "metrics.jsonl"
"""A run directory's metrics log: written by :class:`MetricsLog`, read by reports and progress bars."""
COMPLETIONS_FILE = "completions.jsonl"
"""An RL run's sampled responses, one line each, with their strategy label and reward."""
CHECKPOINTS = "checkpoints"
"""The sub-directory of resumable ``checkpoint-N`` directories."""


def write_json(path: str, obj: Any) -> None:
    """Write JSON atomically, so a crash never leaves half a file."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


class MetricsLog:
    """Appends ``{"step": s, "phase": ..., **metrics}`` lines to ``RUN_DIR/metrics.jsonl``."""

    def __init__(self, run_dir: str, filename: str = METRICS_FILE) -> None:
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, filename)

    def write(self, step: int, phase: str, metrics: dict[str, Any]) -> None:
        self.write_many(step, phase, [metrics])

    def write_many(self, step: int, phase: str, records: Iterable[dict[str, Any]]) -> None:
        """Append one line per record, all in one ``write`` (a step's completions open the file once)."""
        data = "".join(json.dumps({"step": int(step), "phase": phase, **r}, sort_keys=True) + "\n"
                       for r in records).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while data:  # a regular file takes it in one call unless the disk is full or a signal kills us
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def read(self, up_to: int) -> list[tuple[str, dict[str, Any]]]:
        """``(line, record)`` of every whole line of steps up to ``up_to``, a torn last line dropped. A bad line
        before the last is an error."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        out = []
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
            if record["step"] <= up_to:
                out.append((line, record))
        return out

    def truncate_after(self, step: int) -> list[dict[str, Any]]:
        """Keep the lines of steps up to ``step`` (a resumed run redoes the later ones), drop a torn last line,
        rewrite the file atomically and return the kept records. A bad line before the last is an error."""
        if not os.path.exists(self.path):
            return []
        found = self.read(step)
        kept, records = [line for line, _ in found], [record for _, record in found]
        with atomic_write(self.path) as f:
            f.writelines(kept)
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


def tensorboard_callback(writer):
    """transformers' ``TensorBoardCallback`` on the run's own writer, which it leaves open at the end of training:
    the run logs its final evaluation after that and closes the writer itself (a closed writer reopens into a
    second event file)."""
    from transformers.integrations import TensorBoardCallback

    class _Callback(TensorBoardCallback):
        def on_train_end(self, args, state, control, **kwargs):
            if self.tb_writer:
                self.tb_writer.flush()

    return _Callback(tb_writer=writer)


def prune_checkpoints(directory: str, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (``keep`` 0: delete none), as transformers'
    ``save_total_limit`` does for GRPO."""
    import shutil

    if not keep or not os.path.isdir(directory):
        return
    steps = sorted(int(d.rsplit("-", 1)[1]) for d in os.listdir(directory)
                   if d.startswith("checkpoint-") and d.rsplit("-", 1)[1].isdigit()
                   and os.path.isfile(os.path.join(directory, d, "trainer_state.json")))
    for step in steps[:-keep]:
        shutil.rmtree(os.path.join(directory, f"checkpoint-{step}"))


def last_checkpoint(directory: str) -> str | None:
    """The complete ``checkpoint-N`` sub-directory with the largest N, or None.

    Complete means it holds ``trainer_state.json``, which transformers' Trainer and our PPO write last: a run
    killed while saving leaves a partial directory that resuming must skip.
    """
    if not os.path.isdir(directory):
        return None
    steps = [int(d.rsplit("-", 1)[1]) for d in os.listdir(directory)
             if d.startswith("checkpoint-") and d.rsplit("-", 1)[1].isdigit()
             and os.path.isfile(os.path.join(directory, d, "trainer_state.json"))]
    return os.path.join(directory, f"checkpoint-{max(steps)}") if steps else None


def check_resume_settings(run_dir: str, now: dict[str, Any], may_change: Iterable[str]) -> None:
    """Refuse to resume ``run_dir`` with settings ``now`` (:func:`trainers.settings.to_dict` of the config) that
    differ from its ``config.yaml`` in a field not in ``may_change``: the run would mix two experiments."""
    import yaml

    from .settings import load_yaml

    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    before = load_yaml(path)
    now = yaml.safe_load(yaml.safe_dump(now))  # the same types as the file's
    allowed = set(may_change)
    changed = sorted(k for k in now if k not in allowed and k in before and before[k] != now[k])
    if changed:
        k = changed[0]
        raise ValueError(f"resume: {run_dir!r} was run with {k}={before[k]!r}, not {now[k]!r}"
                         + (f" (also changed: {', '.join(changed[1:])})" if changed[1:] else "")
                         + "; resume with the run's settings (only how long it runs, saves, logs and generates may "
                           "change) or start a new run directory")

"""Stages that only sleep and record when they ran: importable by the worker processes of ``reproduce(jobs=N)``."""

import json
import os
import time
from dataclasses import dataclass, field


@dataclass
class SleepStage:
    name: str
    out: str
    seconds: float
    after: list[str] = field(default_factory=list)
    fail: bool = False
    steps: int = 0
    """Metrics lines to log while sleeping, as a trainer logs its steps."""
    summary_file = "summary.json"

    def total_steps(self) -> int | None:
        return self.steps or None

    def needs(self) -> list[str]:
        return self.after

    def done(self) -> bool:
        return os.path.exists(os.path.join(self.out, self.summary_file))

    def prepare(self, force: bool) -> str:
        return "new"

    def describe(self) -> str:
        return f"sleep {self.seconds} s"

    def run(self) -> None:
        start = time.time()
        print(f"{self.name} in process {os.getpid()}")
        for step in range(1, self.steps + 1):
            time.sleep(self.seconds / (self.steps + 1))
            with open(os.path.join(self.out, "metrics.jsonl"), "a") as f:
                f.write(json.dumps({"step": step}) + "\n")
        time.sleep(self.seconds / (self.steps + 1))
        if self.fail:
            raise RuntimeError(f"{self.name} failed on purpose")
        with open(os.path.join(self.out, self.summary_file), "w") as f:
            json.dump({"start": start, "end": time.time(), "pid": os.getpid()}, f)

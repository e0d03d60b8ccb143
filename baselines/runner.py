"""Running an experiment's stages in order, skipping finished ones, so an interrupted reproduction resumes.

``RUN_DIR/experiment.json`` records what the directory holds (experiment,
preset, algorithm): ``ffreason report`` rebuilds the stage list from it, and a
rerun with other settings is refused instead of mixing two experiments.
``RUN_DIR/stages.jsonl`` gets one line per stage and run: ``ran`` (new,
restarted or resumed from a checkpoint) or ``skipped``, with the seconds spent.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

from trainers.runlog import write_json

from .experiments import MANIFEST, plan, read_manifest
from .report import STAGE_LOG, Report, write_report

__all__ = ["reproduce"]


def reproduce(experiment: str, preset: str, run_dir: str, algo: str = "grpo", force: bool = False,
              echo: Callable[[str], None] = print) -> Report:
    """Run every stage not yet done (all of them with ``force``), then write the report."""
    stages = plan(experiment, preset, run_dir, algo)  # bad names and configs fail here, before any work
    manifest = {"experiment": experiment, "preset": preset, "algo": algo}
    if not force and os.path.exists(os.path.join(run_dir, MANIFEST)):
        held = read_manifest(run_dir)
        if {k: held.get(k) for k in manifest} != manifest:
            raise ValueError(f"out: {run_dir!r} holds {held['experiment']} --preset {held['preset']} --algo "
                             f"{held['algo']}; choose another directory or redo it with --force")
    write_json(os.path.join(run_dir, MANIFEST), manifest)
    for i, stage in enumerate(stages, 1):
        head = f"[{i}/{len(stages)}] {stage.name}"
        if stage.done() and not force:
            echo(f"{head}: done before, skipped")
            _log(run_dir, stage.name, "skipped", 0.0)
            continue
        how = stage.prepare(force)
        echo(f"{head}: {stage.describe()}" + (" (resumed from its last checkpoint)" if how == "resumed" else ""))
        start = time.perf_counter()
        stage.run()
        seconds = time.perf_counter() - start
        _log(run_dir, stage.name, "ran", seconds, how)
        echo(f"{head}: finished in {seconds:.0f} s")
    return write_report(run_dir)


def _log(run_dir: str, stage: str, status: str, seconds: float, how: str | None = None) -> None:
    record = {"stage": stage, "status": status, "seconds": round(seconds, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if how:
        record["start"] = how
    with open(os.path.join(run_dir, STAGE_LOG), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")

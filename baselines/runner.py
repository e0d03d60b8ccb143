"""Running an experiment's stages in order, skipping finished ones, so an interrupted reproduction resumes.

``RUN_DIR/experiment.json`` records what the directory holds (experiment,
preset, algorithm, the replicas run so far): ``ffreason report`` rebuilds the
stage list from it, a rerun with other settings is refused instead of mixing
two experiments, and a rerun with more seeds adds their replicas beside the
ones already there (replica 0 in RUN_DIR itself, replica k in RUN_DIR/seed-k).
``RUN_DIR/stages.jsonl`` gets one line per stage and run: ``ran`` (new,
restarted or resumed from a checkpoint) or ``skipped``, with the seconds spent.

With ``jobs`` above 1, stages whose inputs are ready run at the same time, each
in a fresh process (on a GPU every stage gets one, even with ``jobs`` 1) with ``cores // jobs`` torch threads and its output in
``RUN_DIR/<stage>/stage.log``: the arms of an experiment are independent, so a
machine with more cores than one stage can use runs several at once. Each
running stage then has a progress bar in the terminal, advanced from the steps
its ``metrics.jsonl`` has logged.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from trainers.runlog import METRICS_FILE, last_step

from .experiments import plan, seed_list, write_report
from .report import Report
from .stages import MANIFEST, STAGE_LOG, Builder, Stage, read_manifest, write_manifest

__all__ = ["reproduce"]


def reproduce(experiment: str, preset: str, run_dir: str, algo: str = "grpo", force: bool = False,
              jobs: int = 1, echo: Callable[[str], None] = print, seeds: Sequence[int] = (1,),
              eval_n: int | None = None) -> Report:
    """Run every stage not yet done (all of them with ``force``) of the replicas ``seeds`` names
    (:func:`~baselines.experiments.seed_list`), ``jobs`` at a time, then write the report over every replica the
    directory holds. ``eval_n``: problems per validation set (None: the preset's)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs!r}")
    replicas = seed_list(seeds)
    eval_n = Builder(run_dir, preset, algo, eval_n=eval_n).eval_n  # the size the stages use, given or the preset's
    stages = plan(experiment, preset, run_dir, algo, replicas, eval_n)  # bad names and configs fail here
    manifest = {"experiment": experiment, "preset": preset, "algo": algo, "eval_n": eval_n}
    held_seeds: list[int] = []
    if not force and os.path.exists(os.path.join(run_dir, MANIFEST)):
        held = read_manifest(run_dir)
        if held.get("eval_n") is None:  # a directory older than the record of the size
            held["eval_n"] = eval_n
        if {k: held.get(k) for k in manifest} != manifest:
            raise ValueError(f"out: {run_dir!r} holds {held['experiment']} --preset {held['preset']} --algo "
                             f"{held['algo']} --eval-n {held['eval_n']}; choose another directory or redo it with "
                             f"--force")
        held_seeds = held.get("seeds", [0])
    write_manifest(run_dir, {**manifest, "seeds": sorted(set(held_seeds) | set(replicas))})
    heads = {stage.name: f"[{i}/{len(stages)}] {stage.name}" for i, stage in enumerate(stages, 1)}
    todo = []
    for stage in stages:
        if stage.done() and not force:
            echo(f"{heads[stage.name]}: done before, skipped")
            _log(run_dir, stage.name, "skipped", 0.0)
        else:
            todo.append(stage)
    if jobs == 1 and not _on_gpu():
        for stage in todo:
            how = _start(stage, force, heads, echo)
            begin = time.perf_counter()
            stage.run()
            _finish(run_dir, stage, how, time.perf_counter() - begin, heads, echo)
    else:
        _run_concurrently(run_dir, todo, force, jobs, heads, echo)
    return write_report(run_dir)


def _on_gpu() -> bool:
    """Whether stages run on a GPU: then each runs in a process of its own even one at a time, since a colocated
    vLLM engine keeps its GPU memory and process group when deleted, so a second one in the process would fail."""
    import torch

    return torch.cuda.is_available()


def _start(stage: Stage, force: bool, heads: dict[str, str], echo: Callable[[str], None]) -> str:
    how = stage.prepare(force)
    echo(f"{heads[stage.name]}: {stage.describe()}" + (" (resumed from its last checkpoint)" if how == "resumed" else ""))
    return how


def _finish(run_dir: str, stage: Stage, how: str, seconds: float, heads: dict[str, str],
            echo: Callable[[str], None]) -> None:
    _log(run_dir, stage.name, "ran", seconds, how)
    echo(f"{heads[stage.name]}: finished in {seconds:.0f} s")


POLL_SECONDS = 2.0
"""How often the progress bars of concurrently running stages read their stages' metrics files."""


class StageBars:
    """A progress bar per running stage, at the last step its ``metrics.jsonl`` holds: the stage runs in a
    process of its own, and that file is what it writes as it goes. Bars show on a terminal only (tqdm's
    ``disable=None``) unless ``tqdm_kwargs`` say otherwise."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        # miniters 1: a refresh shows the step it read (tqdm's adaptive miniters can hold a bar back for a while)
        self.tqdm_kwargs = {"disable": None, "leave": False, "unit": "step", "miniters": 1, **tqdm_kwargs}
        self.bars: dict[str, tuple[Stage, tqdm]] = {}

    def open(self, stage: Stage, desc: str) -> None:
        self.bars[stage.name] = (stage, tqdm(total=stage.total_steps(), desc=desc, **self.tqdm_kwargs))

    def refresh(self) -> None:
        for stage, bar in self.bars.values():
            step = last_step(os.path.join(stage.out, METRICS_FILE))
            if step is not None and step > bar.n:
                bar.update(step - bar.n)

    def close(self, stage: Stage) -> None:
        self.bars.pop(stage.name)[1].close()

    def echo(self, echo: Callable[[str], None]) -> Callable[[str], None]:
        """``echo`` that first clears the bars, so that its lines do not land inside them."""
        def write(line: str) -> None:
            with tqdm.external_write_mode():
                echo(line)
        return write


def _run_concurrently(run_dir: str, todo: list[Stage], force: bool, jobs: int, heads: dict[str, str],
                      echo: Callable[[str], None], bars: StageBars | None = None) -> None:
    """Start each stage once the stages it needs have finished; at most ``jobs`` at a time; stop at the first
    failure (stages already running finish first)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running = list(todo), {}
    bars = bars or StageBars()
    echo = bars.echo(echo)
    # a fresh process per stage: its logs go to its own file, and nothing of one stage's torch state leaks
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1) as pool:
        try:
            while pending or running:
                unfinished = {s.name for s in pending} | {s.name for s, _ in running.values()}
                for stage in [s for s in pending if not unfinished.intersection(s.needs())][:jobs - len(running)]:
                    pending.remove(stage)
                    how = _start(stage, force, heads, echo)
                    log = os.path.join(stage.out, "stage.log")
                    echo(f"{heads[stage.name]}: running in a process of its own, output in {log}")
                    running[pool.submit(_run_stage, stage, threads, log)] = (stage, how)
                    bars.open(stage, heads[stage.name])
                if not running:
                    raise RuntimeError(f"stages {[s.name for s in pending]} wait for each other (a cycle in their "
                                       f"needs)")
                finished, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                bars.refresh()
                for future in finished:
                    stage, how = running.pop(future)
                    bars.close(stage)
                    seconds = future.result()  # a stage's exception is raised here, with its log named above
                    _finish(run_dir, stage, how, seconds, heads, echo)
        finally:
            for stage, _ in list(bars.bars.values()):
                bars.close(stage)


def _run_stage(stage: Stage, threads: int, log: str) -> float:
    """Run one stage in a worker process, its stdout and stderr in ``log``; return its wall seconds."""
    import torch

    os.makedirs(os.path.dirname(log), exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.set_num_threads(threads)
    begin = time.perf_counter()
    try:
        stage.run()
    except BaseException:
        traceback.print_exc()  # into the log; the parent re-raises the exception itself
        raise
    return time.perf_counter() - begin


def _log(run_dir: str, stage: str, status: str, seconds: float, how: str | None = None) -> None:
    record = {"stage": stage, "status": status, "seconds": round(seconds, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if how:
        record["start"] = how
    with open(os.path.join(run_dir, STAGE_LOG), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")

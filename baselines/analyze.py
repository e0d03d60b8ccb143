"""``ffreason analyze``: the strategy probes of RL runs, after the fact, from the checkpoints they saved.

For each RL run, at step 0 (the model it started from), at every checkpoint it kept and at its final model: the
teacher-forced preference and the sampled profiles of one probe set (:mod:`trainers.probes`), sampled as the run
sampled its training responses (temperature, top-p, budget); at the first and the last of them, pass@k up to
``pass_samples`` on the first ``pass_n`` problems of that set. Written to ``RUN_DIR/analysis.json``; a reproduce
run directory has each of its RL stages analysed and its report rewritten, which then shows them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import tyro

from ffreason_env import ProblemConfig, PromptStyle, render_prompt
from ffreason_env.config import check_int
from trainers.runlog import CHECKPOINTS, CONFIG_FILE, write_json

__all__ = ["AnalyzeConfig", "ANALYSIS_FILE", "analyze_run", "checkpoints", "main"]

ANALYSIS_FILE = "analysis.json"
"""``RUN_DIR/analysis.json``: what ``ffreason analyze`` measured of an RL run, per checkpoint."""


@dataclass(frozen=True)
class AnalyzeConfig:
    """``ffreason analyze``: the strategy probes of finished RL runs, from their saved checkpoints."""

    run_dirs: tyro.conf.Positional[tuple[str, ...]]
    """RL run directories, or ``ffreason reproduce`` run directories (each of their RL stages, then the report)."""
    probe_n: int = 64
    """Problems of the probe set: the first of the validation stream of the run's RL data, labels from 1."""
    samples: int = 8
    """Samples per probe problem at every checkpoint (transitions, selection / improvement)."""
    pass_n: int = 32
    """Problems (the first of the probe set) sampled ``pass_samples`` times at the first and last checkpoint."""
    pass_samples: int = 256
    """Samples per problem for pass@k (k = 1, 2, 4, ... up to it)."""
    batch_size: int = 256
    """Sequences per generate call."""
    force: bool = False
    """Analyse again a run that already has its analysis.json."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""

    def validate(self) -> None:
        if not self.run_dirs:
            raise ValueError("run_dirs: at least one run directory is required")
        for name in ("probe_n", "samples", "pass_n", "pass_samples", "batch_size"):
            check_int(name, getattr(self, name), 1, 2**31 - 1)
        if self.pass_n > self.probe_n:
            raise ValueError(f"pass_n: the pass@k problems are the first of the probe set; {self.pass_n} > probe_n "
                             f"{self.probe_n}")


def checkpoints(run_dir: str, init: str) -> list[tuple[int, str]]:
    """``(step, model directory)`` of an RL run: its initial model, the checkpoints it kept, its final model."""
    from trainers.models import resolve_model_dir

    folder = os.path.join(run_dir, CHECKPOINTS)
    steps = sorted(int(d.rsplit("-", 1)[1]) for d in os.listdir(folder) if d.startswith("checkpoint-")) \
        if os.path.isdir(folder) else []
    found = {0: resolve_model_dir(init), **{s: os.path.join(folder, f"checkpoint-{s}") for s in steps}}
    summary = os.path.join(run_dir, "rl_summary.json")
    if os.path.isfile(summary):  # a finished run: its final model stands for the checkpoint of its last step
        with open(summary, encoding="utf-8") as f:
            found[json.load(f)["steps"]] = os.path.join(run_dir, "model")
    return sorted(found.items())


def _load(path: str, init_dir: str):
    """A checkpoint as one model: a LoRA checkpoint (an adapter without config.json) on its run's initial model,
    merged."""
    import torch

    from trainers.models import load_model

    device = "cuda" if torch.cuda.is_available() else None
    if os.path.isfile(os.path.join(path, "config.json")):
        return load_model(path, device=device)
    if not os.path.isfile(os.path.join(path, "adapter_config.json")):
        raise FileNotFoundError(f"checkpoint: {path!r} holds neither a model (config.json) nor a LoRA adapter")
    from peft import PeftModel

    model, tokenizer = load_model(init_dir, device=device)
    return PeftModel.from_pretrained(model, path).merge_and_unload(), tokenizer


def analyze_run(run_dir: str, cfg: AnalyzeConfig, init: str | None = None) -> dict[str, Any]:
    """Probe every checkpoint of the RL run in ``run_dir`` (``init``: the model it started from; default its
    config.yaml's) and write ``RUN_DIR/analysis.json``."""
    import torch
    from tqdm.auto import tqdm

    from trainers.evaluation import validation_set
    from trainers.generation import generate
    from trainers.probes import pass_at_k_table, preference, profiles, trace_logprobs, transitions
    from trainers.settings import load_yaml

    settings = load_yaml(os.path.join(run_dir, CONFIG_FILE))
    if not settings:
        raise FileNotFoundError(f"run_dirs: {run_dir!r} holds no {CONFIG_FILE} (not an RL run directory)")
    problem = ProblemConfig.from_dict(settings["problem"]).without_offsets()
    style = PromptStyle(settings.get("prompt_style", "bare"), settings.get("shots", 2),
                        settings.get("shot_strategy", "aligned"))
    mode = settings.get("answer_mode", "strict")
    probe = validation_set(problem, cfg.probe_n)
    sampling = {"temperature": settings["temperature"], "top_p": settings["top_p"],
                "max_new_tokens": settings["max_completion_length"], "batch_size": cfg.batch_size}
    found = checkpoints(run_dir, init or settings["init"])
    init_dir = found[0][1]
    rows = []
    bar = tqdm(found, desc=f"analyze {run_dir}", unit="checkpoint")
    for n, (step, path) in enumerate(bar):
        model, tok = _load(path, init_dir)
        torch.manual_seed(settings.get("seed", 0) + step)
        texts = [[c.text for c in cs] for cs in generate(model, tok, [render_prompt(p, style) for p in probe],
                                                          num_samples=cfg.samples, **sampling)]
        row = {"step": step, "model": path, "profiles": profiles(probe, texts, mode),
               "teacher_forced": preference(probe, trace_logprobs(model, tok, probe, style=style), "teacher_forced")}
        if n in (0, len(found) - 1):
            wide = [[c.text for c in cs] for cs in generate(model, tok, [render_prompt(p, style) for p in probe[:cfg.pass_n]],
                                                             num_samples=cfg.pass_samples, **sampling)]
            row["pass_at_k"] = pass_at_k_table(profiles(probe[:cfg.pass_n], wide, mode))
        rows.append(row)
        del model
    result = {"settings": {**{k: getattr(cfg, k) for k in ("probe_n", "samples", "pass_n", "pass_samples")},
                           **sampling, "problem": problem.to_dict()},
              "checkpoints": rows, "transitions": transitions(rows[0]["profiles"], rows[-1]["profiles"])}
    write_json(os.path.join(run_dir, ANALYSIS_FILE), result)
    return result


def main(cfg: AnalyzeConfig) -> list[str]:
    """Analyse every run ``cfg`` names (skipping those done unless ``force``); return the reports rewritten."""
    import torch

    from .experiments import plan, write_report
    from .stages import MANIFEST, RLStage, read_manifest

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    jobs: list[tuple[str, str | None]] = []
    reports = []
    for run_dir in cfg.run_dirs:
        if os.path.isfile(os.path.join(run_dir, MANIFEST)):
            m = read_manifest(run_dir)
            stages = [s for s in plan(m["experiment"], m["preset"], run_dir, m["algo"], m.get("seeds", [0]),
                                      m.get("eval_n")) if isinstance(s, RLStage) and s.done()]
            jobs += [(s.out, s.config.init) for s in stages]
            reports.append(run_dir)
        elif os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            jobs.append((run_dir, None))
        else:
            raise FileNotFoundError(f"run_dirs: {run_dir!r} is neither an RL run directory ({CONFIG_FILE}) nor a "
                                    f"reproduce run directory ({MANIFEST})")
    for run_dir, init in jobs:
        if cfg.force or not os.path.exists(os.path.join(run_dir, ANALYSIS_FILE)):
            analyze_run(run_dir, cfg, init)
    return [write_report(r).path for r in reports]

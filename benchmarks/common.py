"""Repeat-and-summarise helpers and the results writer shared by every benchmark."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def machine() -> dict[str, Any]:
    import numpy

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "numpy": numpy.__version__, "date": time.strftime("%Y-%m-%d")}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and relative spread ((max - min) / median) of repeated measurements."""
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "n": len(values),
            "spread": (max(values) - min(values)) / med if med else 0.0}


def repeat(fn: Callable[[], float], repeats: int) -> dict[str, float]:
    return summary([fn() for _ in range(repeats)])


def write(name: str, results: dict[str, Any], table: str) -> str:
    """Write ``results/NAME.json`` and ``results/NAME.md``; return the markdown path."""
    os.makedirs(RESULTS, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **results}
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    m = payload["machine"]
    md = os.path.join(RESULTS, f"{name}.md")
    with open(md, "w") as f:
        f.write(table.rstrip() + "\n\n")
        f.write(f"_Measured {m['date']} on {m['platform']}, {m['cpus']} CPUs, Python {m['python']}"
                + (f", torch {m['torch']} ({m['torch_threads']} threads)" if "torch" in m else "") + "._\n")
    return md

"""Repeat-and-summarise helpers, the results writer and the docs include shared by every benchmark."""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import statistics
import sys
import time
from typing import Any, Callable, Sequence

RESULTS = os.path.join(os.path.dirname(__file__), "results")
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def machine() -> dict[str, Any]:
    import numpy

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "numpy": numpy.__version__, "date": time.strftime("%Y-%m-%d")}
    torch = sys.modules.get("torch")  # reported only when the benchmark used it
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and relative spread ((max - min) / median) of repeated measurements."""
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values), "n": len(values),
            "spread": (max(values) - min(values)) / med if med else 0.0}


def repeat(fn: Callable[[], float], repeats: int) -> dict[str, float]:
    return summary([fn() for _ in range(repeats)])


def steps_range(text: str) -> tuple[int, int]:
    """``"2-5"`` -> (2, 5), ``"3"`` -> (3, 3): the ``--steps`` argument of the environment benchmarks."""
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def include_block(name: str, text: str) -> str:
    """The block of a docs page that holds ``results/NAME.md`` verbatim, markers included."""
    return f"<!-- include results/{name}.md -->\n{text.rstrip()}\n<!-- end results/{name}.md -->"


def include_in_docs(name: str, text: str, docs: str = DOCS) -> list[str]:
    """Replace NAME's include block with ``text`` in every page of ``docs`` that has one; return those pages."""
    pattern = re.compile(re.escape(f"<!-- include results/{name}.md -->") + r"\n.*?"
                         + re.escape(f"<!-- end results/{name}.md -->"), re.S)
    updated = []
    for page in sorted(glob.glob(os.path.join(docs, "*.md"))):
        with open(page) as f:
            old = f.read()
        if pattern.search(old):
            with open(page, "w") as f:
                f.write(pattern.sub(lambda _: include_block(name, text), old))
            updated.append(page)
    return updated


def write(name: str, results: dict[str, Any], table: str, out_dir: str = RESULTS) -> str:
    """Write ``OUT_DIR/NAME.json`` and ``OUT_DIR/NAME.md``; return the markdown path.

    Into the committed results folder the table also replaces its include blocks in
    docs/*.md, so the docs quote exactly what was measured.
    """
    os.makedirs(out_dir, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **results}
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    m = payload["machine"]
    text = (table.rstrip() + "\n\n" + f"_Measured {m['date']} on {m['platform']}, {m['cpus']} CPUs, "
            f"Python {m['python']}" + (f", torch {m['torch']} ({m['torch_threads']} threads)" if "torch" in m else "")
            + "._\n")
    md = os.path.join(out_dir, f"{name}.md")
    with open(md, "w") as f:
        f.write(text)
    if os.path.abspath(out_dir) == os.path.abspath(RESULTS) and not include_in_docs(name, text):
        print(f"note: no page in docs/ includes {name}'s table yet ({include_block(name, '...')!r})")
    return md

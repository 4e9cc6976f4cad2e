"""Benchmarks behind ``bin/bench-*``: each writes ``<name>.json`` and ``<name>.md``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path


def write_results(out, name: str, meta: dict, rows: list[dict], table: str) -> None:
    """Writes ``out/<name>.json`` (machine facts, ``meta``, ``rows``) and ``out/<name>.md``
    (``table``), and prints the table."""
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        **meta,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (out / f"{name}.md").write_text(table + "\n")
    print(table)


def median_of(runs: list[dict]) -> dict:
    """Each field's median over repeated measurements (dicts with the same numeric keys)."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def add_repeats_argument(parser) -> None:
    """``--repeats``: how often each worker runs, in turn with the others (cells: medians)."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="times each worker runs, in turn with the others; cells are medians "
        "(default: %(default)s)",
    )

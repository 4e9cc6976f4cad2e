"""Benchmarks behind ``bin/bench-*``: each writes ``<name>.json`` and ``<name>.md``."""

from __future__ import annotations

import json
import os
import platform
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

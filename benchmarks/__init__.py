"""Benchmarks behind ``bin/bench-*``: each writes ``<name>.json`` and ``<name>.md``."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def configure() -> None:
    """jaxuad's runtime defaults (:func:`jaxuad.runtime.configure`, as the CLIs apply them),
    less the persistent compilation cache: a compile time read from the cache would time a
    file load, so every benchmark process compiles afresh."""
    from jaxuad import runtime

    if runtime.configure():
        import jax

        jax.config.update("jax_enable_compilation_cache", False)


def default_out() -> str:
    """``results/<date>-<commit>/bench``: benchmark figures are kept in git beside the
    commit that measured them, so docs/benchmarks.md takes its tables from them
    (``<!-- table: PATH -->`` blocks filled by bin/gen-docs)."""
    from jaxuad.reproduce.runner import default_results

    return str(default_results() / "bench")


class CommandLog:
    """Runs jaxuad command lines one after another for a measurement script, appending each
    to ``path`` (a ``commands.sh`` beside the results) before it runs, as the user would
    type it; a command whose output is already present is only noted. The first failure
    stops the script, naming the command and the end of its stderr."""

    def __init__(self, path, header: str):
        self.path = Path(path)
        self.path.write_text(f"# {header}\n")

    def __call__(self, name: str, *args: str, done: bool = False) -> str:
        """Runs ``name args`` (``name`` a ``jaxuad-*`` console script of this interpreter's
        environment); returns its stdout."""
        shown = " ".join(shlex.quote(a) for a in (name, *args))
        with self.path.open("a") as f:
            f.write(("# output present, not rerun: " if done else "") + shown + "\n")
        if done:
            return ""
        t0 = time.perf_counter()
        argv = [str(Path(sys.executable).parent / name), *args]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"failed ({r.returncode}): {shown}\n{r.stderr[-2000:]}")
        print(f"{time.perf_counter() - t0:6.1f} s  {shown[:110]}", flush=True)
        return r.stdout


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


def in_turn(names, repeats: int, measure, what: str) -> tuple[dict, dict]:
    """``measure(name)`` for every worker name, one after the other, ``repeats`` times, so
    a slow phase of a shared machine hits every worker alike. Returns the measurements per
    name (failed ones, ``None``, left out) and each name's :func:`median_of` (``None`` if
    every one failed)."""
    runs = {name: [] for name in names}
    for rep in range(repeats):
        print(f"measuring {what} ({rep + 1}/{repeats}) ...", file=sys.stderr, flush=True)
        for name in names:
            r = measure(name)
            if r is not None:
                runs[name].append(r)
    return runs, {name: median_of(v) if v else None for name, v in runs.items()}


def add_repeats_argument(parser) -> None:
    """``--repeats``: how often each worker runs, in turn with the others (cells: medians)."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="times each worker runs, in turn with the others; cells are medians "
        "(default: %(default)s)",
    )

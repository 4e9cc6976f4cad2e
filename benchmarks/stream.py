"""``bin/bench-stream``: peak memory, time to the first step and images/s of training against
cohort size, from memory and from the on-disk slice store (``train.stream``).

A cohort of N subjects is a CSV manifest naming ``--unique`` phantom subjects written
once, each listed N / unique times under its own id: every row is read, preprocessed and
sliced like a scan of its own (the files come from the page cache after the first read, so
the store's build time is a lower bound for scans on a slow disk). Each measurement is one
training run in a subprocess of its own: its peak RSS is the child's ``ru_maxrss``, its
data time the time until the slices are in memory or in the store, its images/s the
median over the log intervals after the first (which holds the compile).

The in-memory path is skipped where its slices alone would exceed ``--memory-limit-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import default_out, write_results


def cohort(work: Path, unique: int, n: int) -> Path:
    """A manifest of ``n`` subjects over ``unique`` phantom subjects (written once)."""
    scans = work / "scans"
    if not (scans / "participants.tsv").exists():
        from jaxuad.data import phantom

        phantom.write_cohort(scans, unique, 0, "healthy")
    import dataclasses

    from jaxuad.data import discover
    from jaxuad.data.dataset import write_manifest

    subjects = discover(scans, "T1w")[:unique]
    listed = (dataclasses.replace(subjects[i % len(subjects)], id=f"s{i:05d}") for i in range(n))
    return write_manifest(listed, work / f"cohort-{n}.csv")


def worker(spec: dict) -> None:
    """One training run; prints a JSON line of its timings."""
    import dataclasses

    from benchmarks import configure

    configure()
    from jaxuad.config import load_config
    from jaxuad.train import train, trainer

    cfg = load_config(spec["model"])
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, path=spec["manifest"], modality="T1w"),
        train=dataclasses.replace(cfg.train, stream=spec["stream"], log_every=spec["log_every"],
                                  checkpoint_every=10**9),  # fmt: skip
    )
    timed = {}
    for name in ("training_store", "training_images"):
        inner = getattr(trainer, name)

        def wrapped(*a, _inner=inner, **k):
            t0 = time.perf_counter()
            out = _inner(*a, **k)
            timed["data_s"] = time.perf_counter() - t0
            timed["slices"] = len(out)
            return out

        setattr(trainer, name, wrapped)
    t0 = time.perf_counter()
    train(cfg, spec["workdir"], stop_after=spec["steps"], progress=False)
    total = time.perf_counter() - t0
    logged = [json.loads(x) for x in (Path(spec["workdir"]) / "metrics.jsonl").open()]
    rates = [r["images_per_s"] for r in logged[1:]]
    print(json.dumps({**timed, "total_s": total, "images_per_s": statistics.median(rates),
                      "first_interval_s": spec["log_every"] * cfg.train.batch_size
                      / logged[0]["images_per_s"]}))  # fmt: skip


def _peak_rss_gb(spec: dict) -> tuple[dict, float]:
    """Runs the worker and reads its own peak RSS from wait4."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.stream", "--worker", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait4 reaps the child and gives its own rusage (ru_maxrss in KiB on Linux)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"worker failed: {spec}\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bin/bench-stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    p.add_argument("--unique", type=int, default=20, help="phantom subjects written")
    p.add_argument("--model", default="svae")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--log-every", type=int, default=30)
    p.add_argument("--memory-limit-gb", type=float, default=12.0)
    p.add_argument("--work", default="work/bench-stream", help="scratch folder (deleted runs)")
    p.add_argument("--out", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    slice_gb = None
    for n in args.sizes:
        manifest = cohort(work, args.unique, n)
        for stream in (False, True):
            run = work / f"run-{n}-{'stream' if stream else 'memory'}"
            shutil.rmtree(run, ignore_errors=True)
            if not stream and slice_gb is not None and slice_gb * n > args.memory_limit_gb:
                rows.append({"subjects": n, "loader": "memory", "skipped":
                             f"slices alone ~{slice_gb * n:.0f} GB"})  # fmt: skip
                continue
            spec = dict(model=args.model, manifest=str(manifest.resolve()), stream=stream,
                        workdir=str(run), steps=args.steps, log_every=args.log_every)  # fmt: skip
            r, rss = _peak_rss_gb(spec)
            if slice_gb is None:
                from jaxuad.config import load_config

                s = load_config(args.model).data.image_size
                slice_gb = r["slices"] / n * s * s * 4 / 2**30
            store = sum(f.stat().st_size for f in (run / "slices").glob("*")) / 2**30
            rows.append({"subjects": n, "loader": "stream" if stream else "memory",
                         "slices": r["slices"], "peak_rss_gb": rss, "data_s": r["data_s"],
                         "first_interval_s": r["first_interval_s"],
                         "images_per_s": r["images_per_s"], "store_gb": store})  # fmt: skip
            print(rows[-1], flush=True)
            shutil.rmtree(run, ignore_errors=True)
    table = [
        "| subjects | loader | slices | peak RSS (GB) | data ready (s) | images/s | store (GB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r:
            table.append(f"| {r['subjects']} | memory | | skipped: {r['skipped']} | | | |")
            continue
        table.append(
            f"| {r['subjects']} | {r['loader']} | {r['slices']} | {r['peak_rss_gb']:.2f} | "
            f"{r['data_s']:.1f} | {r['images_per_s']:.1f} | {r['store_gb']:.2f} |"
        )
    meta = {"model": args.model, "steps": args.steps, "unique_subjects": args.unique,
            "command": " ".join(["bin/bench-stream", *(argv or sys.argv[1:])])}  # fmt: skip
    write_results(args.out or default_out(), "stream", meta, rows, "\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())

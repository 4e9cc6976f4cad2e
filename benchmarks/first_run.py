"""``bin/bench-first-run``: a train step's images/s in a first run against a run whose step
comes from the persistent compilation cache, and against PyTorch eager.

Each measurement is ``jaxuad.train.train`` in a subprocess of its own with the commands'
runtime defaults (:func:`jaxuad.runtime.configure`) and a cache folder of its own:

* ``compiled here``: a fresh cache, ``train.precompile=false``: the process compiles its
  own step (what every first run did before the child compile);
* ``compiled in a child``: a fresh cache, ``train.precompile=true`` (the default): a child
  compiles the step into the cache, the training process loads it;
* ``from the cache``: the same cache again (a second run);
* PyTorch eager with jaxuad's allocator options (``benchmarks.train.measure_torch``), the
  fair reference.

images/s is the median over the log intervals after the first (which holds the compile);
"to first step" is the wall time from ``train()``'s start to the end of the first step.
Workers run in turn, ``--repeats`` times, each cell the median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import add_repeats_argument, default_out, in_turn, write_results

MODES = ("compiled here", "compiled in a child", "from the cache")
STEPS = {"vae_chen": (24, 8)}  # (steps, log_every); others: 80, 20


def worker(spec: dict) -> None:
    """One training run in this process; prints a JSON line."""
    import dataclasses

    from jaxuad import runtime

    runtime.configure()
    import numpy as np

    from jaxuad.config import load_config
    from jaxuad.train import train, trainer

    cfg = load_config(spec["model"])
    tc = dataclasses.replace(cfg.train, precompile=spec["precompile"], epochs=10**6,
                             log_every=spec["log_every"], checkpoint_every=10**9)  # fmt: skip
    data = dataclasses.replace(cfg.data, histogram_match=False)  # the slices are given
    cfg = dataclasses.replace(cfg, train=tc, data=data)
    s, n = cfg.data.image_size, 4 * cfg.train.batch_size
    images = np.random.default_rng(0).uniform(size=(n, s, s, 1)).astype(np.float32)
    first = []
    make = trainer.make_train_step

    def timed(*a, **k):
        step = make(*a, **k)

        def call(*args):
            out = step(*args)
            if not first:
                import jax

                jax.block_until_ready(out)
                first.append(time.perf_counter() - t0)
            return out

        return call

    trainer.make_train_step = timed
    t0 = time.perf_counter()
    train(cfg, spec["workdir"], images=images, stop_after=spec["steps"], progress=False)
    logged = [json.loads(x) for x in (Path(spec["workdir"]) / "metrics.jsonl").open()]
    rates = [r["images_per_s"] for r in logged[1:]]
    print(json.dumps({"images_per_s": statistics.median(rates), "first_step_s": first[0]}))


def _run(spec: dict, env: dict) -> dict | None:
    r = subprocess.run([sys.executable, "-m", "benchmarks.first_run", "--worker",
                        json.dumps(spec)], capture_output=True, text=True,
                       env={**os.environ, **env})  # fmt: skip
    if r.returncode:
        print(f"  failed: {spec}\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bin/bench-first-run", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["svae", "vae_chen"])
    add_repeats_argument(p)
    p.add_argument("--out", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return 0
    from benchmarks.train import _worker, torch_available
    from jaxuad.runtime import malloc_env

    names = [*MODES, *(["PyTorch eager"] if torch_available() else [])]
    rows = []
    for model in args.models:
        steps, log_every = STEPS.get(model, (80, 20))
        scratch = Path(tempfile.mkdtemp(prefix="jaxuad-first-run-"))
        counter = iter(range(10**6))

        def measure(name, model=model, steps=steps, log_every=log_every, scratch=scratch,
                    counter=counter):
            if name == "PyTorch eager":
                return _worker("torch", model, steps, False, malloc_env())
            k = next(counter)
            if name != "from the cache":  # a fresh cache; "from the cache" reuses the child's
                shutil.rmtree(scratch / "cache", ignore_errors=True)
            spec = dict(model=model, precompile=name != "compiled here", steps=steps,
                        log_every=log_every, workdir=str(scratch / f"run-{k}"))  # fmt: skip
            return _run(spec, {"JAXUAD_CACHE_DIR": str(scratch / "cache")})

        runs, medians = in_turn(names, args.repeats, measure, model)
        shutil.rmtree(scratch, ignore_errors=True)
        rows.append({"model": model, "runs": runs, **medians})
    lines = [
        "| model | run | images/s | to first step [s] | / from the cache | / PyTorch eager |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        cached, torch = r.get("from the cache"), r.get("PyTorch eager")
        for name in names:
            m = r.get(name)
            if m is None:
                continue
            ips = m["images_per_s"]
            first = f"{m['first_step_s']:.1f}" if "first_step_s" in m else ""
            vs_cache = f"{ips / cached['images_per_s']:.2f}x" if cached else ""
            vs_torch = f"{ips / torch['images_per_s']:.2f}x" if torch else ""
            lines.append(f"| {r['model']} | {name} | {ips:.1f} | {first} | {vs_cache} | "
                         f"{vs_torch} |")  # fmt: skip
    meta = {"repeats": args.repeats, "command": " ".join(["bin/bench-first-run",
            *(argv if argv is not None else sys.argv[1:])])}  # fmt: skip
    write_results(args.out or default_out(), "first_run", meta, rows, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``bin/bench-train``: train-step images/s and compile time per model, JAX vs PyTorch.

Each measurement runs in its own subprocess, so XLA flags can differ between them (they are
read once, when JAX starts) and so the frameworks do not share threads. The workers for one
model run in turn, ``--repeats`` times, and each cell is the median over repeats, so slow
phases of a shared machine hit every framework alike. Results go to a JSON file and a
Markdown table; ratios compare measurements taken in the same run.

PyTorch runs twice: as installed, and with the glibc allocator options that jaxuad sets in
its own process (:data:`jaxuad.runtime.MALLOC_OPTIONS`, through environment variables).
They speed up PyTorch too, so the second ratio shows how much of jaxuad's lead is the
allocator and how much the compiled step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import add_repeats_argument, default_out, in_turn, write_results

MODELS = (
    "dae",
    "sae",
    "sae1",
    "dvae",
    "svae",
    "sae_gan",
    "anovaegan",
    "anogan",
    "vae_chen",
    "aae",
    "gmvae",
)


def _config(model: str):
    from jaxuad.config import load_config

    return load_config("sae", "sae1") if model == "sae1" else load_config(model)


def measure_jax(model: str, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxuad.train import build_model, init_state, make_train_step, phases_for

    cfg = _config(model)
    s, b = cfg.data.image_size, cfg.train.batch_size
    graphdef, params = build_model(cfg, 0)
    phases = phases_for(cfg, steps_per_epoch=1)
    step = make_train_step(graphdef, phases, cfg.train)
    state, key = init_state(params, phases), jax.random.key(0)
    batch = jnp.asarray(np.random.default_rng(0).uniform(size=(b, s, s, 1)), jnp.float32)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch, key).compile()
    compile_s = time.perf_counter() - t0
    for _ in range(3):
        state, m = compiled(state, batch, key)
    jax.block_until_ready(m)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = compiled(state, batch, key)
    jax.block_until_ready(m)
    return {"images_per_s": steps * b / (time.perf_counter() - t0), "compile_s": compile_s}


def measure_torch(model: str, steps: int) -> dict:
    import torch

    from benchmarks.torch_reference import make_step

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    cfg = _config(model)
    s, b = cfg.data.image_size, cfg.train.batch_size
    step = make_step(cfg)
    x = torch.rand(b, 1, s, s)
    for _ in range(3):
        step(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x)
    return {"images_per_s": steps * b / (time.perf_counter() - t0), "compile_s": 0.0}


def _worker(framework: str, model: str, steps: int, defaults: bool, env=None) -> dict | None:
    env = {**os.environ, **(env or {})}
    if not defaults:
        env["JAXUAD_NO_DEFAULTS"] = "1"
    code = (
        "from benchmarks import configure; configure(); "
        f"import json, benchmarks.train as b; "
        f"print(json.dumps(b.measure_{framework}({model!r}, {steps})))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(f"  {framework} {model} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def torch_available() -> bool:
    r = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True)
    return r.returncode == 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bin/bench-train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        help=f"models to measure (default: {' '.join(MODELS)})",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=20,
        help="timed steps per measurement (default: %(default)s), after 3 warm-up steps",
    )
    add_repeats_argument(p)
    p.add_argument(
        "--no-flags-compare",
        action="store_true",
        help="skip the JAX run without jaxuad's process defaults (XLA flags, PRNG, allocator)",
    )
    p.add_argument(
        "--out",
        default=default_out(),
        help="folder for train.json and train.md (default: %(default)s)",
    )
    args = p.parse_args(argv)

    from jaxuad.runtime import malloc_env

    has_torch = torch_available()
    workers = [("jax", "jax", True, None)]
    if not args.no_flags_compare:
        workers.append(("jax_no_defaults", "jax", False, None))
    if has_torch:
        workers.append(("torch", "torch", False, None))
        workers.append(("torch_malloc", "torch", False, malloc_env()))
    by_name = {name: spec for name, *spec in workers}
    rows = []
    for model in args.models:

        def measure(name, model=model):
            framework, defaults, env = by_name[name]
            return _worker(framework, model, args.steps, defaults, env)

        runs, medians = in_turn(by_name, args.repeats, measure, model)
        cfg = _config(model)
        rows.append({"model": model, "batch_size": cfg.train.batch_size, "runs": runs, **medians})

    def ips(r, k):
        return r[k]["images_per_s"] if r.get(k) else None

    lines = [
        "| model | batch | JAX img/s | compile [s] | JAX, no jaxuad defaults "
        "| PyTorch eager img/s | JAX / PyTorch | PyTorch, jaxuad's allocator options "
        "| JAX / that |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.1f}"
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
    for r in rows:
        j, jn = ips(r, "jax"), ips(r, "jax_no_defaults")
        t, tm = ips(r, "torch"), ips(r, "torch_malloc")
        comp = f"{r['jax']['compile_s']:.1f}" if r.get("jax") else "n/a"
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {fmt(j)} | {comp} | {fmt(jn)} | {fmt(t)} "
            f"| {ratio(j, t)} | {fmt(tm)} | {ratio(j, tm)} |"
        )
    table = "\n".join(lines)
    meta = {
        "steps": args.steps,
        "repeats": args.repeats,
        "image_size": 128,
    }
    write_results(args.out, "train", meta, rows, table)
    if not has_torch:
        print("\n(PyTorch not installed: pip install -e '.[bench]' for the reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

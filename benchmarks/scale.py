"""``bin/bench-scale``: throughput against device count, for training, restoration and
post-processing, all data-parallel over a ``jax.sharding.Mesh`` (:mod:`jaxuad.distributed`).

Every device count runs in the same process, in turn, ``--repeats`` times (each cell the
median), so the ratios compare like with like. The global batch stays fixed: a device
count that does not divide it is skipped. On CPU the devices are virtual
(``--xla_force_host_platform_device_count``, set here before JAX starts) and share the
machine's cores, so this measures the cost of sharding, not a speed-up; on a multi-GPU or
TPU machine the same command measures scaling.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _force_host_devices(n: int) -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _timed(fn, repeats_inside: int) -> float:
    import jax

    jax.block_until_ready(fn())  # warm
    t0 = time.perf_counter()
    for _ in range(repeats_inside):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats_inside


def train_workload(model: str, batch: int, steps: int):
    """``measure(n) -> (images/s, compile s)`` for one train step of ``model``."""
    import dataclasses

    import jax
    import numpy as np

    from jaxuad import distributed
    from jaxuad.config import load_config
    from jaxuad.train import build_model, init_state, make_train_step, phases_for

    cfg = load_config(model)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=batch))
    s = cfg.data.image_size
    graphdef, params = build_model(cfg, 0)
    params = jax.tree.map(np.asarray, params)  # on the host: each count puts its own copy
    phases = phases_for(cfg, steps_per_epoch=1)
    host = np.random.default_rng(0).uniform(size=(batch, s, s, 1)).astype(np.float32)

    def measure(n: int):
        mesh = distributed.make_mesh(n)
        rep = distributed.replicated(mesh)
        step = make_train_step(graphdef, phases, cfg.train, mesh)
        state = distributed.put(init_state(params, phases), rep)
        key = distributed.put(jax.random.key(0), rep)
        x = distributed.put(host, distributed.batch_sharding(mesh))
        t0 = time.perf_counter()
        compiled = step.lower(state, x, key).compile()
        compile_s = time.perf_counter() - t0
        box = [state]

        def run():
            box[0], m = compiled(box[0], x, key)
            return m

        return batch / _timed(run, steps), compile_s

    return measure


def restore_workload(model: str, method: str, batch: int, steps: int):
    """``measure(n) -> (slices/s, compile s)`` for a chunk of ``batch`` slices."""
    import dataclasses

    import jax
    import numpy as np

    from jaxuad import distributed
    from jaxuad.config import load_config
    from jaxuad.restore import make_restorer
    from jaxuad.train import build_model

    cfg = load_config(model)
    cfg = dataclasses.replace(cfg, restore=dataclasses.replace(cfg.restore, steps=steps))
    s = cfg.data.image_size
    graphdef, params = build_model(cfg, 0)
    rng = np.random.default_rng(0)
    y = rng.uniform(size=(batch, s, s, 1)).astype(np.float32)
    m = np.ones_like(y)

    def measure(n: int):
        mesh = distributed.make_mesh(n)
        rows, rep = distributed.batch_sharding(mesh), distributed.replicated(mesh)
        fn = make_restorer(method, graphdef, cfg, mesh)
        args = (
            distributed.put(params, rep),
            distributed.put(y, rows),
            distributed.put(m, rows),
            distributed.put(jax.random.key(0), rep),
            distributed.put(np.float32(1.0), rep),
        )
        t0 = time.perf_counter()
        compiled = fn.lower(*args).compile()
        compile_s = time.perf_counter() - t0
        return batch / _timed(lambda: compiled(*args), 1), compile_s

    return measure


def postprocess_workload(volumes: int):
    """``measure(n) -> (volumes/s, compile s)``: median filter and eroded mask of 91x109x91
    residual volumes, one per device at a time."""
    import numpy as np

    from benchmarks.postprocess import residual_volume
    from jaxuad.config import EvaluateConfig
    from jaxuad.postprocess import Postprocessor

    items = []
    for i in range(volumes):
        residual, mask = residual_volume(i)
        items.append((residual, mask, np.ones(mask.shape, bool)))

    def measure(n: int):
        post = Postprocessor(EvaluateConfig(units="voxels"), devices=n)  # 5x5x5 as before
        t0 = time.perf_counter()
        post.filter_many(items[:n])
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        post.filter_many(items)
        return volumes / (time.perf_counter() - t0), compile_s

    return measure


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bin/bench-scale",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    p.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=[1, 2, 4],
        help="device counts to compare (default: %(default)s; on CPU that many virtual "
        "devices are created)",
    )
    p.add_argument("--model", default="svae", help="model to train (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="global train batch (default: 16)")
    p.add_argument("--steps", type=int, default=5, help="timed train steps (default: 5)")
    p.add_argument(
        "--restore-model", default="vae_chen", help="model to restore with (default: vae_chen)"
    )
    p.add_argument("--method", default="lg_est", help="restoration method (default: lg_est)")
    p.add_argument("--restore-batch", type=int, default=16, help="slices per chunk (default: 16)")
    p.add_argument(
        "--restore-steps", type=int, default=10, help="restoration iterations (default: 10)"
    )
    p.add_argument(
        "--volumes", type=int, default=8, help="91x109x91 volumes to filter (default: 8)"
    )
    p.add_argument("--repeats", type=int, default=2, help="median over repeats (default: 2)")
    p.add_argument(
        "--out", default=None, help="output folder (default: results/<date>-<commit>/bench)"
    )
    args = p.parse_args(argv)

    _force_host_devices(max(args.devices))  # before anything imports jax
    import jax

    from benchmarks import configure, default_out, write_results

    configure()  # jaxuad's runtime defaults, compiling afresh

    args.out = args.out or default_out()

    available = jax.device_count()
    counts = [n for n in args.devices if n <= available]
    workloads = {
        f"train {args.model}, batch {args.batch}": (
            "images/s",
            args.batch,
            train_workload(args.model, args.batch, args.steps),
        ),
        f"restore {args.method} ({args.restore_model}), {args.restore_steps} it": (
            "slices/s",
            args.restore_batch,
            restore_workload(
                args.restore_model, args.method, args.restore_batch, args.restore_steps
            ),
        ),
        f"post-process, {args.volumes} volumes": (
            "volumes/s",
            None,
            postprocess_workload(args.volumes),
        ),
    }
    rows = []
    for name, (unit, batch, measure) in workloads.items():
        usable = [n for n in counts if batch is None or batch % n == 0]
        runs = {n: [] for n in usable}
        for _ in range(args.repeats):
            for n in usable:
                runs[n].append(measure(n))
                print(f"{name}: {n} device(s) {runs[n][-1][0]:.2f} {unit}", file=sys.stderr)
        base = statistics.median(r[0] for r in runs[usable[0]])
        for n in usable:
            rate = statistics.median(r[0] for r in runs[n])
            rows.append(
                {
                    "workload": name,
                    "devices": n,
                    "unit": unit,
                    "throughput": rate,
                    "speedup": rate / base,
                    "efficiency": rate / base / (n / usable[0]),
                    "compile_s": statistics.median(r[1] for r in runs[n]),
                }
            )
    platform = jax.devices()[0].platform
    lines = [
        f"Throughput against device count ({platform}, {available} devices"
        + (", virtual: they share the CPU's cores" if platform == "cpu" else "")
        + f"; median of {args.repeats})",
        "",
        "| workload | devices | throughput | speed-up vs 1 | efficiency | compile s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['devices']} | {r['throughput']:.2f} {r['unit']} | "
            f"{r['speedup']:.2f}x | {r['efficiency']:.0%} | {r['compile_s']:.1f} |"
        )
    meta = {
        "platform": platform,
        "device_kind": jax.devices()[0].device_kind,
        "devices_available": available,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "args": vars(args),
    }
    write_results(args.out, "scale", meta, rows, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

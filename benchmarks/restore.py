"""``bin/bench-restore``: seconds per iteration per image of iterative restoration, JAX
(one compiled ``lax.scan``, batched) against a plain PyTorch loop (one Python iteration per
step, as reference implementations run), at batch 1 and 16. Ratios are given against
PyTorch at the same batch and against PyTorch one image at a time (batch 1, the way the
papers' reference code runs). The work per iteration is given twice: XLA's count of what
the compiled loop runs, and PyTorch's count of the convolutions and matrix products of its
step (the useful work: XLA's count includes the redundant taps of transposed convolutions
computed by phases); useful GFLOP/s against the machine's matrix-product rate shows how
close each method runs to the arithmetic limit.

Models are freshly initialised at the paper configs (``vae_chen`` with its variance network
at 128x128 for LG and MAP, ``anogan`` for the latent search): speed does not depend on the
weights, which PyTorch's loop, like JAX's, does not differentiate. Each measurement runs in
its own subprocess; the workers for one method and batch (JAX, PyTorch, PyTorch with the
allocator options) run in turn, ``--repeats`` times, and each cell is the median over
repeats, so a slow phase of a shared machine hits every framework alike. Results go to JSON
and a table.
PyTorch runs twice: as installed, and with the glibc allocator options that jaxuad sets in
its own process (:data:`jaxuad.runtime.MALLOC_OPTIONS`), which speed up PyTorch too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import add_repeats_argument, default_out, in_turn, write_results

METHODS = ("lg_est", "lg_neural", "map", "anogan")
PAPER_ANOGAN_S = 19.8547  # Baur et al. 2018, Table 2: seconds per AnoGAN reconstruction


def _config(method: str):
    import dataclasses

    from jaxuad.config import load_config

    cfg = load_config("anogan" if method == "anogan" else "vae_chen")
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, normalization="minmax"))


def measure_jax(method: str, batch: int, steps: int) -> dict:
    import dataclasses

    import jax
    import jax.numpy as jnp

    from jaxuad.restore import restore
    from jaxuad.train import build_model

    cfg = _config(method)
    rc = dataclasses.replace(cfg.restore, steps=steps, anogan_steps=steps)
    graphdef, params = build_model(cfg, 0)
    s = cfg.data.image_size
    y = jax.random.uniform(jax.random.key(0), (batch, s, s, 1))
    mask = jnp.ones_like(y)

    @jax.jit
    def run(params, y, key):
        from flax import nnx

        model = nnx.merge(graphdef, params)
        return restore(method, model, y, mask, key, rc, 1.0, cfg.train).x

    t0 = time.perf_counter()
    compiled = run.lower(params, y, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older JAX: one dict per device
    jax.block_until_ready(compiled(params, y, jax.random.key(1)))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(params, y, jax.random.key(2)))
    dt = time.perf_counter() - t0
    return {
        "s_per_iter_per_image": dt / steps / batch,
        "compile_s": compile_s,
        # XLA's cost analysis counts a while loop's body once: one iteration's work.
        "gflop_per_iter_per_image": (cost or {}).get("flops", 0.0) / batch / 1e9,
    }


def measure_torch(method: str, batch: int, steps: int) -> dict:
    import torch

    from benchmarks.torch_reference import TorchAutoencoder, TorchGAN

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    cfg = _config(method)
    rc, tc, s = cfg.restore, cfg.train, cfg.data.image_size
    y = torch.rand(batch, 1, s, s)

    def tv(d):
        dx = d[:, :, 1:, :-1] - d[:, :, :-1, :-1]
        dy = d[:, :, :-1, 1:] - d[:, :, :-1, :-1]
        return (torch.sqrt(dx**2 + dy**2 + rc.tv_eps**2) - rc.tv_eps).sum()

    model = TorchGAN(cfg) if method == "anogan" else TorchAutoencoder(cfg)
    # Restoration never updates the weights: without this, backward() would also compute
    # every weight's gradient (AnoGAN: 2.77 against 1.85 GFLOP per iteration, 30 against
    # 20 ms), work the JAX loop does not do.
    for p in model.parameters():
        p.requires_grad_(False)
    if method == "anogan":
        z = torch.randn(batch, cfg.model.z_dim, requires_grad=True)
        opt = torch.optim.Adam([z], lr=rc.anogan_learning_rate)
        f_y = model.disc.body[:-1](y).flatten(1).detach()

        def step():
            h = torch.nn.functional.leaky_relu(model.from_z(z), 0.2)
            g = model.generator(h.view(batch, -1, model.res, model.res))
            feat = model.disc.body[:-1](g).flatten(1)
            loss = 0.9 * (y - g).abs().sum() + 0.1 * (f_y - feat).abs().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        x = y.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=rc.learning_rate)

        def step():
            if method == "map":
                recon, kl = model(x)
                loss = ((x - recon) ** 2).sum() + tc.kl_weight * kl.sum() + tv(x - y)
                opt.zero_grad()
                loss.backward()
            else:
                with torch.no_grad():
                    mean, logvar = model.encode(x)
                    eps = torch.randn(rc.samples, *mean.shape)
                    z = (mean + torch.exp(0.5 * logvar) * eps).flatten(0, 1)
                    g = model.decode(z).view(rc.samples, *x.shape)
                    mu = g.mean(0)
                    var = g.var(0) if method == "lg_est" else model.var_net(x)
                    var = var.clamp_min(rc.min_variance)
                xr = x.detach().requires_grad_(True)
                (g_prior,) = torch.autograd.grad(tv(xr - y), xr)
                x.grad = ((x.detach() - mu) / var + g_prior).detach()
            opt.step()

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # the work of one step, untimed
        step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return {
        "s_per_iter_per_image": (time.perf_counter() - t0) / steps / batch,
        "compile_s": 0.0,
        # PyTorch's count of the convolutions and matrix products a step runs: the useful
        # work, without the redundant taps XLA's count includes (transposed convolutions
        # by phases)
        "gflop_per_iter_per_image": counter.get_total_flops() / batch / 1e9,
    }


def per_image(cell: dict | None) -> float | None:
    """Seconds per iteration per image of one measurement (None if it failed or was off)."""
    return cell["s_per_iter_per_image"] if cell else None


def one_image_at_a_time(rows: list[dict], method: str, key: str = "torch") -> float | None:
    """The PyTorch loop's seconds per iteration at batch 1: the papers' reference way."""
    single = next((r for r in rows if r["method"] == method and r["batch"] == 1), {})
    return per_image(single.get(key))


def _worker(framework: str, method: str, batch: int, steps: int, env=None) -> dict | None:
    code = (
        "from benchmarks import configure; configure(); "
        "import json, benchmarks.restore as b; "
        f"print(json.dumps(b.measure_{framework}({method!r}, {batch}, {steps})))"
    )
    env = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        print(f"  {framework} {method} b{batch} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bin/bench-restore",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=METHODS,
        help=f"restoration methods to time (default: {' '.join(METHODS)})",
    )
    p.add_argument(
        "--batches",
        nargs="+",
        type=int,
        default=[1, 16],
        help="images per compiled call, one measurement each (default: 1 16)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=10,
        help="timed iterations per measurement, after one untimed call (default: %(default)s)",
    )
    add_repeats_argument(p)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    p.add_argument(
        "--out",
        default=default_out(),
        help="folder for restore.json and restore.md (default: %(default)s)",
    )
    args = p.parse_args(argv)
    from benchmarks.train import torch_available
    from jaxuad.runtime import malloc_env

    has_torch = not args.no_torch and torch_available()
    workers = {"jax": ("jax", None)}  # name: (framework, extra environment)
    if has_torch:
        workers.update(torch=("torch", None), torch_malloc=("torch", malloc_env()))
    rows = []
    for method in args.methods:
        for batch in args.batches:

            def measure(name, method=method, batch=batch):
                framework, env = workers[name]
                return _worker(framework, method, batch, args.steps, env)

            runs, medians = in_turn(workers, args.repeats, measure, f"{method} at batch {batch}")
            row = {"method": method, "batch": batch, "torch": None, "torch_malloc": None}
            rows.append({**row, **medians, "runs": runs})
    lines = [
        "| method | batch | JAX s/iter/image | compile [s] | XLA's GFLOP/iter/image "
        "| useful GFLOP/iter/image | JAX useful GFLOP/s | PyTorch loop s/iter/image "
        "| PyTorch / JAX | PyTorch one image at a time / JAX | per image, 100 iterations [s] "
        "| PyTorch loop, jaxuad's allocator options | that, one image at a time / JAX |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v, f=".5f": "n/a" if v is None else format(v, f)
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
    for r in rows:
        j, t, tm = per_image(r["jax"]), per_image(r["torch"]), per_image(r["torch_malloc"])
        gflop = r["jax"]["gflop_per_iter_per_image"] if r["jax"] else None
        useful = r["torch"]["gflop_per_iter_per_image"] if r["torch"] else None
        lines.append(
            f"| {r['method']} | {r['batch']} | {fmt(j)} "
            f"| {fmt(r['jax'] and r['jax']['compile_s'], '.1f')} | {fmt(gflop, '.2f')} "
            f"| {fmt(useful, '.2f')} | {fmt(useful / j if useful and j else None, '.0f')} "
            f"| {fmt(t)} | {ratio(t, j)} "
            f"| {ratio(one_image_at_a_time(rows, r['method']), j)} | {fmt(j and 100 * j, '.3f')} "
            f"| {fmt(tm)} | {ratio(one_image_at_a_time(rows, r['method'], 'torch_malloc'), j)} |"
        )
    table = "\n".join(lines)
    meta = {
        "steps": args.steps,
        "repeats": args.repeats,
        "image_size": 128,
        "paper_anogan_s": PAPER_ANOGAN_S,
    }
    write_results(args.out, "restore", meta, rows, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

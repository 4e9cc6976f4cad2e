"""``bin/bench-postprocess``: JAX against SciPy for each post-processing step, on one
91x109x91 volume and on a cohort, side by side in one run.

The residual is realistic in structure: a phantom FLAIR scan with lesions, minus a blurred
copy of itself, inside the brain mask. JAX times are steady state (the median of
``--repeats`` runs after a compiling call); compile time is reported apart. The cohort runs
JAX batched (``vmap`` over subjects; connected components take the batch whole) and SciPy
one subject after another.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from benchmarks import configure, default_out, write_results


def blur_residual(image: np.ndarray, brainmask: np.ndarray) -> np.ndarray:
    """A residual with a lesion-like structure and no model: the min-max normalised image
    minus a Gaussian blur of it (sigma 1.5), inside the brain mask."""
    from scipy import ndimage

    from jaxuad.data.preprocess import normalize

    x = normalize(image, brainmask, "minmax")
    return np.abs(x - ndimage.gaussian_filter(x, 1.5)) * brainmask


def residual_volume(seed: int):
    from jaxuad.data import phantom

    s = phantom.make_subject(seed, "ms" if seed % 2 else "tumour")
    return blur_residual(s.images["FLAIR"], s.brainmask), s.brainmask


def runs(masks: np.ndarray) -> int:
    """Runs (maximal stretches of foreground along the last axis) in a batch of masks."""
    m = np.asarray(masks, bool)
    return int((m[..., 1:] & ~m[..., :-1]).sum() + m[..., 0].sum())


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def real_cases(folder: str):
    """From an MSLUB-like folder (``sub-<id>_FLAIR``, ``_brainmask``, ``_lesion`` NIfTI):
    each patient's FLAIR :func:`blur_residual`, median filtered and masked by the eroded
    brain, thresholded at its own 95th percentile of brain voxels;
    the lesion masks; and the same residual at its 98th percentile (what lesions are hit by)."""
    from pathlib import Path

    from jaxuad.data.nifti import DataError, read_nifti
    from jaxuad.postprocess import reference as R

    seg, lesions, pred = [], [], []
    for flair in sorted(Path(folder).glob("sub-*_FLAIR.nii.gz")):
        stem = str(flair)[: -len("_FLAIR.nii.gz")]
        brain = read_nifti(stem + "_brainmask.nii.gz")[0] > 0
        f = R.median_filter(blur_residual(read_nifti(flair)[0], brain), 5)
        f = f * R.binary_erosion(brain, 3)
        seg.append(f > np.percentile(f[brain], 95))
        pred.append(f > np.percentile(f[brain], 98))
        lesions.append(read_nifti(stem + "_lesion.nii.gz")[0] > 0)
    if not seg:
        raise DataError(f"no sub-*_FLAIR.nii.gz in {folder}")
    return np.stack(seg), np.stack(lesions), np.stack(pred)


def measure(n_subjects: int, repeats: int, mslub: str | None = None) -> list[dict]:
    import jax

    from jaxuad.postprocess import components as C
    from jaxuad.postprocess import filters as F
    from jaxuad.postprocess import reference as R

    vols = [residual_volume(i) for i in range(n_subjects)]
    res = np.stack([v[0] for v in vols]).astype(np.float32)
    masks = np.stack([v[1] for v in vols])
    filtered = np.stack([R.median_filter(r, 5) for r in res])
    # Thresholds at percentiles of the first subject's filtered residual: 98 is Baur's
    # (a few thousand foreground voxels per volume); lower ones fill the masks more.
    taus = {q: float(np.percentile(filtered[0][masks[0]], q)) for q in (98, 90, 75)}
    tau = taus[98]
    noise = np.random.default_rng(0).uniform(size=masks.shape) < 0.5

    def components(connectivity: int):
        """JAX's and SciPy's removal of components under 6 voxels."""
        return (
            jax.jit(lambda s: C.remove_small_components(s, 6, connectivity)),
            lambda s: R.remove_small_components(s, 6, connectivity),
        )

    cc, scipy_cc = components(26)

    def vm(f):
        return jax.jit(jax.vmap(f))

    steps = {
        "median 5^3": (
            vm(lambda r: F.median_filter(r, 5)),
            lambda r: R.median_filter(r, 5),
            res,
        ),
        "erosion x3": (
            vm(lambda m: F.binary_erosion(m, 3)),
            lambda m: R.binary_erosion(m, 3),
            masks,
        ),
        **{
            f"components (label + remove < 6), {q}th percentile": (
                cc,
                scipy_cc,
                filtered > t,
            )
            for q, t in taus.items()
        },
        # the whole brain as one component of ~140k voxels (but only ~4k runs)
        "components, brain mask": (
            cc,
            scipy_cc,
            masks,
        ),
        # noise: half the voxels, ~230k runs, more than the largest run tier, so the dense
        # kernel runs (the worst case; no post-processed residual looks like this): over
        # 2x2x2 blocks for 26-connectivity, over voxels for 6
        "components, random half of the voxels (dense kernel, 2x2x2 blocks)": (
            cc,
            scipy_cc,
            noise,
        ),
        "components by 6-connectivity, random half of the voxels (dense kernel, voxels)": (
            *components(6),
            noise,
        ),
        "whole pipeline": (
            jax.jit(
                lambda r, m: C.remove_small_components(
                    jax.vmap(lambda r, m: F.median_filter(r, 5) * F.binary_erosion(m, 3))(r, m)
                    > tau,
                    6,
                    26,
                )
            ),
            lambda r, m: R.remove_small_components(
                R.median_filter(r, 5) * R.binary_erosion(m, 3) > tau, 6, 26
            ),
            (res, masks),
        ),
    }
    if mslub:
        seg, lesions, pred = real_cases(mslub)
        steps["components, MSLUB FLAIR residual > its 95th percentile"] = (
            cc,
            scipy_cc,
            seg,
        )
        steps["lesion-wise detection, MSLUB lesions hit by residual > 98th percentile"] = (
            jax.jit(lambda t, p: jax.numpy.stack(C.components_hit(t, p, 26), -1)),
            lambda t, p: np.array(R.components_hit(t, p, 26)),
            (lesions, pred),
        )
    rows = []
    for name, (jfn, sfn, data) in steps.items():
        args = data if isinstance(data, tuple) else (data,)
        cohort = len(args[0])
        for label, batch in (("1 volume", 1), (f"cohort of {cohort}", cohort)):
            a = tuple(x[:batch] for x in args)
            masks_in = "components" in name or "lesion" in name  # a[0] is a mask
            t0 = time.perf_counter()
            compiled = jfn.lower(*a).compile()
            compile_s = time.perf_counter() - t0
            jax.block_until_ready(compiled(*a))
            # check the answer once: the benchmark only means something if they agree
            got = np.asarray(compiled(*a))
            want = np.stack([sfn(*(x[i] for x in a)) for i in range(batch)])
            assert np.array_equal(got, want), f"{name}: JAX and SciPy disagree"
            t_jax = _time(lambda c=compiled, a=a: jax.block_until_ready(c(*a)), repeats)
            t_scipy = _time(
                lambda f=sfn, a=a, b=batch: [f(*(x[i] for x in a)) for i in range(b)], repeats
            )
            rows.append(
                {
                    "step": name,
                    "data": label,
                    "foreground_voxels_per_volume": (
                        int(a[0].sum()) // batch if masks_in else None
                    ),
                    "runs_per_volume": runs(a[0]) // batch if masks_in else None,
                    "jax_s": t_jax,
                    "scipy_s": t_scipy,
                    "speedup": t_scipy / t_jax,
                    "jax_compile_s": compile_s,
                }
            )
            print(f"  {name}, {label}: JAX {t_jax:.4f} s, SciPy {t_scipy:.4f} s", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="bin/bench-postprocess",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--subjects", type=int, default=20, help="cohort size (default: %(default)s)")
    p.add_argument(
        "--repeats", type=int, default=3, help="timed runs per cell (default: %(default)s)"
    )
    p.add_argument(
        "--mslub",
        metavar="DIR",
        help="also time connected components on real scans: a folder of sub-<id>_FLAIR, "
        "_brainmask and _lesion NIfTI (e.g. ../shared/data/mslub)",
    )
    p.add_argument("--out", default=default_out(), help="folder for postprocess.{json,md}")
    args = p.parse_args(argv)

    import jax

    configure()  # jaxuad's runtime defaults, compiling afresh
    from jaxuad.data.nifti import DataError

    try:
        rows = measure(args.subjects, args.repeats, args.mslub)
    except DataError as e:  # no scans, or a missing or unreadable one, under --mslub
        print(f"bin/bench-postprocess: {e}", file=sys.stderr)
        return 2
    lines = [
        "| step | data | foreground voxels / volume | runs / volume | JAX [s] | SciPy [s] "
        "| SciPy / JAX | JAX compile [s] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fg, n = r["foreground_voxels_per_volume"], r["runs_per_volume"]
        lines.append(
            f"| {r['step']} | {r['data']} | {'' if fg is None else fg} | "
            f"{'' if n is None else n} | {r['jax_s']:.4f} | "
            f"{r['scipy_s']:.4f} | "
            f"{r['speedup']:.2f}x | {r['jax_compile_s']:.1f} |"
        )
    table = "\n".join(lines)
    meta = {
        "device": str(jax.devices()[0]),
        "volume": [91, 109, 91],
        "subjects": args.subjects,
        "mslub": args.mslub,
        "repeats": args.repeats,
    }
    write_results(args.out, "postprocess", meta, rows, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

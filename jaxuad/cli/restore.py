"""jaxuad-restore: write restorations and residuals of every subject as NIfTI, or calibrate
the restoration weight lambda on healthy scans."""

from __future__ import annotations

from jaxuad.cli._common import (
    add_devices,
    add_modality,
    add_overrides,
    add_progress,
    add_space,
    flag_overrides,
    parser,
    run,
    start_processes,
)

EPILOG = """\
outputs (in --out, on each input's grid with its affine, openable in FSLeyes / ITK-SNAP):
  sub-<id>_restored.nii.gz    pseudo-healthy restoration (normalised intensities)
  sub-<id>_residual.nii.gz    |input - restoration| inside the brain mask
  sub-<id>_brainmask.nii.gz   copy of the brain mask (for threshold fitting)
  sub-<id>_normalized.nii.gz  the input in the restoration's units
  restore.json                run, method, lambda, timings (compile time; seconds per
                              iteration per image; seconds per subject, I/O included)

methods (--method; default: the run's restore.method, e.g. reconstruction for an
autoencoder, anogan for AnoGAN, atlas for an atlas run):
{methods}
Read every table against the voxel-wise baselines (intensity, atlas): intensity's score
is the scan's distance from its brain's median intensity (with
evaluate.residual_sign=positive the intensity itself, Meissen et al.; negative for
hypointense lesions), --workdir optional (its data settings); atlas needs a run of
jaxuad-train --model atlas.

examples:
  jaxuad-restore --workdir runs/svae --data scans/ --out pred/
  jaxuad-restore --calibrate --workdir runs/chen --data healthy/ --method lg_neural --prior tv
  jaxuad-restore --workdir runs/chen --data scans/ --out pred/ --method lg_neural --prior tv
  jaxuad-restore --workdir runs/chen --data scans/ --out pred/ --method map --lam 3 --steps 200
  jaxuad-restore --method intensity --data scans/ --out pred-intensity/

lambda: --lam, else the value --calibrate stored in RUN/calibration.json for that method and
prior. Calibration restores healthy slices for every value of restore.lam_grid (vmapped over
the grid) and keeps the smallest whose mean SSIM(restored, original) >= restore.ssim_target
(0.95), as Chen et al. do; it also plots RUN/ssim_lambda_<method>_<prior>.png.
Other restoration settings (restore.samples, restore.learning_rate, restore.tv_eps,
restore.min_variance, restore.anogan_*, restore.batch_size, ...) via --set; see
jaxuad/config.py.
"""


def main(argv: list[str] | None = None) -> int:
    from jaxuad.restore import method_names, method_spec, method_table

    p = parser("jaxuad-restore", "Restore images with a trained model and write residuals.")
    p.epilog = EPILOG.format(methods=method_table())
    p.add_argument(
        "--method",
        default=None,
        choices=method_names(),
        help="restoration method, sugar for --set restore.method (default: the run's); "
        "see 'methods' below",
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="a run directory written by jaxuad-train (required but for --method intensity)",
    )
    p.add_argument(
        "--data",
        required=True,
        help="BIDS-like folder or CSV manifest of the scans to restore (healthy scans "
        "with --calibrate)",
    )
    p.add_argument("--out", default=None, help="output folder (created; not with --calibrate)")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="choose lambda on healthy --data by SSIM and store it in the run directory",
    )
    p.add_argument(
        "--fit-normative",
        action="store_true",
        help="fit per-voxel statistics of the method's residuals on healthy --data the model "
        "did not train on (one grid) and store them in the run, for --normative",
    )
    p.add_argument(
        "--normative",
        action="store_const",
        const=True,
        default=None,
        help="write the residual as a z-score against the run's normative statistics "
        "(sugar for --set restore.normative=true)",
    )
    p.add_argument(
        "--per-scan",
        action="store_const",
        const=True,
        default=None,
        help="standardise each scan's score by its own median and spread over the brain "
        "(sugar for --set restore.per_scan=true)",
    )
    p.add_argument(
        "--fuse",
        nargs="+",
        default=None,
        metavar="RUN",
        help="with --normative (and --fit-normative): fuse these runs' voxel-wise z-scores "
        "(e.g. an atlas run) with the run's own, each weighed to count equally at 1 %% "
        "healthy FPR (sugar for --set restore.fuse=RUN,...)",
    )
    p.add_argument(
        "--prior",
        choices=("tv", "l1"),
        default=None,
        help="R(Y, X): tv = smoothed total variation of X - Y, l1 = ||X - Y||_1 "
        "(default: restore.prior, tv)",
    )
    p.add_argument("--lam", type=float, default=None, help="weight of R (default: calibrated)")
    p.add_argument(
        "--steps", type=int, default=None, help="iterations (default: restore.steps, 800)"
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default: %(default)s)")
    add_modality(p, "image contrast (default: the one the run was trained on)")
    add_overrides(p, "restore.KEY=VALUE", "override one restore setting; repeatable")
    p.add_argument(
        "--step", type=int, default=None, help="checkpoint step to use (default: the latest)"
    )
    add_devices(
        p,
        "split each chunk of restore.batch_size slices (with --calibrate: the lambda grid)",
    )
    add_space(p, "the volumes on the grid of --data")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="--out may hold an earlier restoration: its files are removed first (default: "
        "a non-empty --out is refused)",
    )
    add_progress(p)
    args = p.parse_args(argv)

    from jaxuad.config import ConfigError, RestoreConfig, parse_overrides

    if not 0 <= args.seed < 2**32:
        raise ConfigError(f"--seed: must lie in [0, 2**32 - 1], got {args.seed}")
    if args.calibrate and args.fit_normative:
        raise ConfigError("--calibrate and --fit-normative: give one (calibrate first)")
    fitting = args.calibrate or args.fit_normative
    if not fitting and args.out is None:
        raise ConfigError("--out is required (unless --calibrate or --fit-normative)")
    if args.fuse is not None:
        args.fuse = ",".join(args.fuse)
    names = ("prior", "lam", "steps", "method", "normative", "fuse", "per_scan")
    sugar = {n: f"restore.{n}" for n in names}
    changes = parse_overrides(flag_overrides(args, sugar))
    bad = sorted(set(changes) - {"restore"})
    if bad:
        raise ConfigError(f"--set only takes restore.* settings here, got {', '.join(bad)}.*")
    overrides = changes.get("restore", {})
    method = overrides.pop("method", None)
    if method is not None:
        method_spec(method)  # a name the registry knows
    if args.workdir is None and (
        fitting or method is None or method_spec(method).run == "required"
    ):
        raise ConfigError("--workdir is required (but for --method intensity)")
    if args.fit_normative and overrides.get("fuse"):
        overrides["normative"] = True  # fitting fused scores: the fit itself is normative
    # Checked like any config value, before anything is read or written.
    RestoreConfig(**overrides)

    start_processes(args)
    from jaxuad.distributed import is_primary
    from jaxuad.restore import calibrate, fit_normative_cohort, restore_cohort

    common = dict(
        method=method,
        modality=args.modality,
        step=args.step,
        restore_overrides=overrides,
        seed=args.seed,
        progress=not args.no_progress,
        devices=args.devices,
    )
    if args.calibrate:
        e = calibrate(args.workdir, args.data, **common)
        if not is_primary():
            return 0
        from jaxuad.report import calibration_figure

        calibration_figure(args.workdir, e)
        curve = ", ".join(f"{g:g}: {s:.3f}" for g, s in zip(e.grid, e.ssim, strict=True))
        print(f"SSIM by lambda: {curve}")
        print(
            f"lambda = {e.lam:g}"
            + ("" if e.target_met else f" (no lambda reached SSIM {e.ssim_target})")
            + f"; stored in {args.workdir}/calibration.json"
        )
        return 0
    if args.fit_normative:
        fit = fit_normative_cohort(args.workdir, args.data, **common)
        if is_primary():
            fused = "".join(f"; fused with {p} (weight {w:.3g})" for p, w in fit.fuse.items()
                            if p != "self")  # fmt: skip
            print(
                f"normative statistics of {fit.method} on {len(fit.subjects)} healthy scans "
                f"(99th percentile of |z|: {fit.healthy_quantile:.2f}){fused}; stored in "
                f"{args.workdir}/normative/"
            )
        return 0
    s = restore_cohort(args.workdir, args.data, args.out, overwrite=args.overwrite,
                       space=args.space, **common)  # fmt: skip
    if not is_primary():
        return 0
    if not s.network:  # a voxel-wise baseline
        print(f"{s.method}: {len(s.subjects)} subjects into {args.out}")
        return 0
    print(
        f"restored {len(s.subjects)} subjects ({s.slices} slices, "
        f"{s.seconds_per_slice * 1e3:.2f} ms/slice, "
        f"{s.seconds_per_iteration_per_image * 1e3:.3f} ms/iteration/image) into {args.out}"
    )
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

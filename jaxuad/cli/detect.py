"""jaxuad-detect: scans as acquired in, lesion maps on their own grid out."""

from __future__ import annotations

from jaxuad.cli._common import (
    add_modality,
    add_overrides,
    add_progress,
    flag_overrides,
    parser,
    run,
)

EPILOG = """\
a detector is a run, how its restorations are scored, and thresholds fitted on healthy scans
the run did not train on; fit it once (stored in RUN/detector.json):
  jaxuad-detect --fit --workdir runs/dae --data healthy/ --normative --per-scan

then detect (--data: a scan file or a folder of sub-<id>_<modality>.nii[.gz] scans, each with
an optional sub-<id>_brainmask.nii[.gz]; scans not on the run's grid are preprocessed first,
which needs pip install 'jaxuad[preprocess]'):
  jaxuad-detect --workdir runs/dae --data scan.nii.gz --out found/

output (--out, written whole or not at all), on each scan's own grid:
  sub-<id>_lesions.nii.gz    the lesion mask (uint8) at the threshold (--threshold)
  sub-<id>_score.nii.gz      the post-processed score it thresholds
  sub-<id>_lesions.png       an axial panel: scan, score, lesions
  detect.json                per scan: lesion volume (ml), number of lesions; the threshold
  steps/                     every stage's output: preprocessed, restored, evaluated
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-detect", "Find lesions in scans as acquired with a fitted detector.")
    p.epilog = EPILOG
    p.add_argument(
        "--workdir",
        required=True,
        help="the run (holding detector.json): a folder, or the name of an installed run "
        "(jaxuad-models)",
    )
    p.add_argument(
        "--data",
        required=True,
        help="scans to search (a file or folder); with --fit, healthy scans on the run's grid",
    )
    p.add_argument("--out", default=None, help="output folder (new or empty; not with --fit)")
    p.add_argument(
        "--fit",
        action="store_true",
        help="fit the detector: restore healthy --data, fit thresholds, store RUN/detector.json",
    )
    p.add_argument("--method", default=None, help="with --fit: restoration method (the run's)")
    p.add_argument(
        "--normative",
        action="store_const",
        const=True,
        default=None,
        help="with --fit: score z-scores against the run's normative statistics",
    )
    p.add_argument(
        "--per-scan",
        action="store_const",
        const=True,
        default=None,
        help="with --fit: standardise each scan's score by its own median and spread",
    )
    p.add_argument(
        "--fuse",
        nargs="+",
        default=None,
        metavar="RUN",
        help="with --fit and --normative: fuse these runs' z-scores (fitted by "
        "jaxuad-restore --fit-normative --fuse)",
    )
    p.add_argument(
        "--no-n4",
        action="store_true",
        help="with --fit: preprocess scans without N4 bias correction (when the run's "
        "training scans were not bias-corrected)",
    )
    add_overrides(
        p,
        "restore.KEY=VALUE|evaluate.KEY=VALUE",
        "with --fit: a restoration or post-processing setting; repeatable",
    )
    p.add_argument(
        "--threshold",
        default="fpr1",
        help="the fitted threshold to segment at: fpr1 (1 %% healthy false positives, "
        "default), fpr0.1, fpr0.5, fpr5 or percentile",
    )
    add_modality(p, "contrast of the scans (default: T1w)")
    p.add_argument("--overwrite", action="store_true", help="--out may hold an earlier detection")
    add_progress(p)
    args = p.parse_args(argv)

    from jaxuad.config import (
        Config,
        ConfigError,
        EvaluateConfig,
        RestoreConfig,
        override,
        parse_overrides,
    )
    from jaxuad.detect import detect, fit_detector

    modality = args.modality or "T1w"
    if args.fit:
        if args.out is not None:
            raise ConfigError("--fit stores the detector in the run; --out is not used")
        if args.fuse is not None:
            args.fuse = ",".join(args.fuse)
        sugar = {n: f"restore.{n}" for n in ("normative", "per_scan", "fuse")}
        assignments = flag_overrides(args, sugar)
        changes = parse_overrides(assignments)
        bad = sorted(set(changes) - {"restore", "evaluate"})
        if bad:
            raise ConfigError(f"--set takes restore.* and evaluate.* here, got {bad[0]}.*")
        restore = changes.get("restore", {})
        RestoreConfig(**restore)  # checked before anything is restored
        evaluate = [a for a in assignments if a.startswith("evaluate.")]
        cfg = override(Config(evaluate=EvaluateConfig()), evaluate)
        det = fit_detector(args.workdir, args.data, method=args.method,
                           restore_overrides=restore, cfg=cfg.evaluate, modality=modality,
                           n4=not args.no_n4, progress=not args.no_progress)  # fmt: skip
        levels = ", ".join(f"{k} {v['value']:.4g}" for k, v in det.thresholds["thresholds"].items())
        print(f"detector of {args.workdir} ({det.method}) on "
              f"{len(det.healthy['subjects'])} healthy scans: {levels}")  # fmt: skip
        return 0
    if args.out is None:
        raise ConfigError("--out is required (unless --fit)")
    if any((args.overrides, args.method, args.normative, args.per_scan, args.fuse, args.no_n4)):
        raise ConfigError(
            "--method, --normative, --per-scan, --fuse, --no-n4 and --set go with --fit"
        )
    findings = detect(args.data, args.workdir, args.out, threshold=args.threshold,
                      modality=modality, overwrite=args.overwrite,
                      progress=not args.no_progress)  # fmt: skip
    for f in findings:
        print(f"sub-{f.subject}: {f.lesions} lesions, {f.lesion_ml:.2f} ml  "
              f"({args.out}/{f.files['lesions']})")  # fmt: skip
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

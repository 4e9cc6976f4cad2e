"""jaxuad-restore: write restorations and residuals of every subject as NIfTI."""

from __future__ import annotations

from jaxuad.cli._common import add_modality, add_progress, parser, run

EPILOG = """\
outputs (in --out, on each input's grid with its affine, openable in FSLeyes / ITK-SNAP):
  sub-<id>_restored.nii.gz   pseudo-healthy restoration (normalised intensities)
  sub-<id>_residual.nii.gz   |input - restoration| inside the brain mask
  sub-<id>_brainmask.nii.gz  copy of the brain mask (for threshold fitting)
  restore.json               run, method, timings (seconds per slice, compile time)

example:
  jaxuad-restore --method reconstruction --workdir runs/svae --data scans/ --out pred/
"""


def main() -> int:
    p = parser("jaxuad-restore", "Restore images with a trained model and write residuals.")
    p.epilog = EPILOG
    p.add_argument(
        "--method",
        default="reconstruction",
        choices=["reconstruction"],
        help="restoration method (default: %(default)s): reconstruction = one "
        "encode-decode pass (Baur et al. 2018)",
    )
    p.add_argument("--workdir", required=True, help="a run directory written by jaxuad-train")
    p.add_argument(
        "--data", required=True, help="BIDS-like folder or CSV manifest of the scans to restore"
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    add_modality(p, "image contrast (default: the one the run was trained on)")
    p.add_argument(
        "--step", type=int, default=None, help="checkpoint step to use (default: the latest)"
    )
    add_progress(p)
    args = p.parse_args()

    from jaxuad.restore import restore_cohort

    s = restore_cohort(
        args.workdir,
        args.data,
        args.out,
        method=args.method,
        modality=args.modality,
        step=args.step,
        progress=not args.no_progress,
    )
    print(
        f"restored {len(s['subjects'])} subjects ({s['slices']} slices, "
        f"{s['seconds_per_slice'] * 1e3:.2f} ms/slice) into {args.out}"
    )
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

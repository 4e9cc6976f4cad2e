"""jaxuad-phantom: write the procedural brain phantom as NIfTI."""

from __future__ import annotations

from pathlib import Path

from jaxuad.cli._common import add_progress, parser, run

EPILOG = """\
layout (the same BIDS-like layout as real data, MNI152 2 mm grid 91x109x91):
  OUT/healthy/sub-h000_{T1w,T2w,FLAIR,brainmask}.nii.gz, participants.tsv
  OUT/lesion/sub-l000_{T1w,T2w,FLAIR,brainmask,lesion}.nii.gz, participants.tsv
Lesion subjects alternate MS-like (periventricular ovoid lesions) and tumour-like (mass with
necrotic core, rim, oedema and mass effect). The same seed always gives the same volumes.
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-phantom", "Generate healthy and lesion cohorts of the brain phantom.")
    p.epilog = EPILOG
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--n-healthy", type=int, default=16, help="healthy subjects (default: %(default)s)"
    )
    p.add_argument(
        "--n-lesion", type=int, default=6, help="subjects with lesions (default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default: %(default)s)")
    p.add_argument(
        "--preview",
        metavar="PNG",
        default=None,
        help="also draw a healthy, an MS-like and a tumour-like subject to this PNG",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing OUT/healthy and OUT/lesion"
    )
    add_progress(p)
    args = p.parse_args(argv)

    from tqdm.auto import tqdm

    from jaxuad.config import ConfigError
    from jaxuad.data import phantom

    out = Path(args.out)
    if args.n_healthy < 0 or args.n_lesion < 0:
        raise ConfigError("--n-healthy and --n-lesion must be >= 0")
    for name in ("healthy", "lesion"):
        if (out / name).exists() and not args.overwrite:
            raise ConfigError(f"{out / name}: exists; pass --overwrite to replace it")
    with tqdm(
        total=args.n_healthy + args.n_lesion, unit="subject", disable=args.no_progress
    ) as bar:
        for name, n in (("healthy", args.n_healthy), ("lesion", args.n_lesion)):
            if n:
                phantom.write_cohort(out / name, n, args.seed, name, progress=bar)
    print(f"wrote {args.n_healthy} healthy and {args.n_lesion} lesion subjects to {out}")
    if args.preview:
        from jaxuad.report import phantom_figure

        phantom_figure(Path(args.preview), args.seed)
        print(f"preview: {args.preview}")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

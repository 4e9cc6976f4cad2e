"""jaxuad-sample: draw images from a trained generative model's prior."""

from __future__ import annotations

from pathlib import Path

from jaxuad.cli._common import parser, run

EPILOG = """\
examples:
  jaxuad-sample --workdir runs/svae -n 16 --out svae-samples.png
  jaxuad-sample --workdir runs/anogan -n 64 --seed 3 --out grid.png --npy samples.npy

Works for models with a prior: dvae, svae, anovaegan, vae_chen, gmvae, aae, anogan. Images
are in the run's normalised intensity units (data.normalization); the PNG spans the 1st to
99th percentile of all samples. The same --seed gives the same samples.
exit codes: 0 ok, 2 bad input (not a run, not a generative model, bad -n)
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-sample", "Sample images from a trained model's prior.")
    p.epilog = EPILOG
    p.add_argument("--workdir", required=True, help="run directory written by jaxuad-train")
    p.add_argument("-n", type=int, default=16, help="number of samples (default: %(default)s)")
    p.add_argument("--out", required=True, help="PNG file for the grid of samples")
    p.add_argument(
        "--npy", default=None, help="also save the samples as an [n, S, S] float32 .npy array"
    )
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default: %(default)s)")
    p.add_argument(
        "--step", type=int, default=None, help="checkpoint step to load (default: the latest)"
    )
    args = p.parse_args(argv)

    import numpy as np

    from jaxuad.data import atomic_path
    from jaxuad.report import sample_grid
    from jaxuad.sampling import sample_run

    images = sample_run(args.workdir, args.n, seed=args.seed, step=args.step)
    sample_grid(images, Path(args.out), f"{Path(args.workdir).name}: {args.n} prior samples")
    if args.npy:
        with atomic_path(args.npy) as tmp, open(tmp, "wb") as f:
            np.save(f, images.astype(np.float32))
    print(f"wrote {args.n} samples to {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

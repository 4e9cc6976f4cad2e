"""bin/reproduce-baur and bin/reproduce-chen: the papers' Table 1 on real scans and the phantom."""

from __future__ import annotations

import sys
from pathlib import Path

from jaxuad.cli._common import EXIT_DIVERGED, parser, run

EXIT_FAILED_ROWS = EXIT_DIVERGED  # a row's training diverged or a step failed; tables written

EPILOG = """\
protocols:
  real     train on healthy IXI T1 (SHARED/ixi), the last 20 subjects (sorted ids) held out
           for thresholds{lam}; test on MSLUB T1 (SHARED/mslub). 91x109 slices with brain,
           centre-padded to 128x128.
  phantom  the same pipeline on jaxuad's brain phantom (generated into the work folder), once
           per --contrast.

budgets (each table's header prints every setting; see configs/reproduce/PAPER.py):
  paper    the paper's settings: {paper}
  small    {small}
  smoke    tiny models and a few slices, for tests only

outputs:
  RESULTS/<name>/table.md      the paper's Table 1 layout, budget header, and which of the
                               paper's claims hold on this run
  RESULTS/<name>/rows/<row>/   each row's metrics.json, report.md and figures
  RESULTS/<name>/commands.sh   every jaxuad command run, in order; timings.json: wall times
  WORK/<name>/                 training runs, restorations (NIfTI), evaluations
<name> is {paper_name}-real-<budget> or {paper_name}-phantom-<contrast>-<budget>.

A step that fails (e.g. a training run that diverges) is reported under its table with the
error; the rows that depend on it are skipped, the others run, and the exit code is 3.
Interrupted? Run the same command again: finished steps are skipped (WORK/<name>/.done),
a killed training run continues from its last checkpoint, and results go to the same
RESULTS folder (remembered in WORK/<name>/results-path).
"""

PAPER_TEXT = {
    "baur": dict(
        lam="",
        paper="150 epochs (AnoGAN 82), AnoGAN latent search 100 steps",
        small="real: 30 training subjects, 2 epochs, AnoGAN 15 steps;\n"
        "           phantom: 32 central slices, 4 epochs (minutes)",
    ),
    "chen": dict(
        lam=" and lambda",
        paper="150 epochs at Adam 2e-5, 800 restoration iterations, L = 16 samples",
        small="real: 20 training subjects, 8 epochs at Adam 1e-3 (2e-5 barely moves in\n"
        "           so few steps), 5 of the 20 held-out subjects for thresholds and lambda,\n"
        "           50 iterations at step 4e-2 (as far-reaching as 800 at 5e-3), L = 4,\n"
        "           lambda from 16 slices on a decade grid (estimated 1.5 h on 2 cores);\n"
        "           phantom: 10 epochs, 16 central slices, 2 held-out subjects for\n"
        "           thresholds and lambda, lambda from 8 slices",
    ),
}


def main(paper: str, argv: list[str] | None = None) -> int:
    from jaxuad.reproduce import SHARED_DATA_ENV, shared_data

    title = {"baur": "Baur et al. 2018", "chen": "Chen et al. 2019"}[paper]
    p = parser(f"reproduce-{paper}", f"Reproduce {title}, Table 1, on real scans and the phantom.")
    p.epilog = EPILOG.format(paper_name=paper, **PAPER_TEXT[paper])
    p.add_argument(
        "--budget", choices=("small", "paper", "smoke"), default="small", help="(default: small)"
    )
    p.add_argument(
        "--data",
        nargs="+",
        choices=("real", "phantom"),
        default=["real", "phantom"],
        help="protocols to run, in order (default: real phantom)",
    )
    p.add_argument(
        "--contrast",
        nargs="+",
        choices=("FLAIR", "T1w"),
        default=["FLAIR", "T1w"],
        help="phantom contrasts (default: FLAIR T1w); real scans are always T1w",
    )
    p.add_argument(
        "--shared",
        type=Path,
        default=shared_data(),
        help=f"folder holding ixi/ and mslub/, for --data real (default: ${SHARED_DATA_ENV})",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("runs/reproduce"),
        help="work folder (default: %(default)s)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results folder (default: results/<date>-<commit>, or the one an interrupted "
        "run of the same protocol used)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        default=(),
        metavar="ROW",
        help="restrict to these rows (row keys as in rows/, e.g. svae-reconstruction) or "
        "training runs (e.g. svae); default: every row",
    )
    p.add_argument(
        "--phantom",
        type=Path,
        default=None,
        help="use this jaxuad-phantom --out folder (healthy/, lesion/) instead of generating "
        "the budget's phantom in the work folder",
    )
    p.add_argument("--no-progress", action="store_true", help="hide each command's progress bar")
    args = p.parse_args(argv)

    from jaxuad.data import DataError
    from jaxuad.reproduce import ReproduceError, Reproduction, default_results

    failed = False
    jobs = []
    for data in args.data:
        for contrast in ["T1w"] if data == "real" else args.contrast:
            jobs.append((data, contrast))
    if "real" in args.data:
        if args.shared is None:
            raise DataError(
                f"--data real needs the real scans: pass --shared FOLDER (with ixi/ and "
                f"mslub/) or set {SHARED_DATA_ENV} (or run --data phantom)"
            )
        for sub in ("ixi", "mslub"):
            if not (args.shared / sub).is_dir():
                raise DataError(
                    f"{args.shared / sub}: not found; real scans are needed for --data real "
                    "(or run --data phantom)"
                )
    for data, contrast in jobs:
        r = Reproduction(
            paper, data, args.budget, work=Path(), results=Path(), contrast=contrast,
            shared=args.shared, only=tuple(args.only), progress=not args.no_progress,
            phantom=args.phantom,
        )  # fmt: skip
        r.work = args.work / r.name
        remembered = r.work / "results-path"
        if args.results is not None:
            r.results = args.results / r.name
        elif remembered.is_file():
            r.results = Path(remembered.read_text().strip())
        else:
            r.results = default_results() / r.name
        r.work.mkdir(parents=True, exist_ok=True)
        remembered.write_text(f"{r.results}\n")
        print(f"== {r.name}: work {r.work}, results {r.results}", flush=True)
        try:
            r.run(log=lambda s: print(s, flush=True))
        except ReproduceError as e:
            raise DataError(str(e)) from None
        print((r.results / "table.md").read_text())
        failed |= bool(r.failures)
    if failed:
        print(
            "error: some rows failed (listed under their tables); fix and re-run", file=sys.stderr
        )
        return EXIT_FAILED_ROWS
    return 0


if __name__ == "__main__":
    paper = sys.argv[1]
    run(lambda: main(paper, sys.argv[2:]))

"""jaxuad-compare: several evaluations side by side in the papers' table layouts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jaxuad.cli._common import parser, run

EPILOG = """\
Each REPORT is a jaxuad-evaluate --out folder (or its metrics.json). Rows are named by
--name, else by model. Tables: Baur et al. 2018 (model, z, Dice mean ± std, time per
slice) and Chen et al. 2019 (method, prior, Dice at each healthy FPR, AUC, s/iter).

example:
  jaxuad-compare eval/svae eval/sae --name sVAE --name sAE --out comparison.md
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-compare", "Compare evaluations in one table.")
    p.epilog = EPILOG
    p.add_argument("reports", nargs="+", metavar="REPORT", help="evaluation folders")
    p.add_argument(
        "--name", action="append", default=[], help="row name per REPORT, in order (optional)"
    )
    p.add_argument("--out", help="also write the tables to this Markdown file")
    args = p.parse_args(argv)

    from jaxuad.data import DataError
    from jaxuad.evaluate import EvalResult
    from jaxuad.report import compare_markdown

    if args.name and len(args.name) != len(args.reports):
        raise DataError(f"{len(args.name)} --name for {len(args.reports)} reports")
    results = []
    for i, r in enumerate(args.reports):
        path = Path(r) / "metrics.json" if Path(r).is_dir() else Path(r)
        m = EvalResult.read(path)
        if args.name:
            m = dataclasses.replace(m, name=args.name[i])
        results.append(m)
    levels = {tuple(m.settings["fpr_levels"]) for m in results}
    if len(levels) > 1:
        raise DataError(f"reports use different evaluate.fpr_levels: {sorted(levels)}")
    text = compare_markdown(results)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

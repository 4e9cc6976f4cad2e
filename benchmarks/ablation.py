"""The effect of each of issue 26's changes, one at a time, on real scans (IXI T1 -> MSLUB T1).

Rows are restorations (the two voxel-wise baselines, and any trained runs given with
``--run NAME=WORKDIR[:METHOD]``); columns are pipeline variants, each differing from the
one before in one setting:

* ``voxels``: Baur's post-processing in voxels (5x5x5 median, 3 erosions, 6 voxels),
  residuals of both signs, no histogram matching: the pipeline before issue 26;
* ``mm``: the same sizes in mm (5 mm, 3 mm, 6 mm³);
* ``mm+negative``: only residuals where the scan is darker than its restoration (MS
  lesions are hypointense on T1);
* ``mm+negative+match``: the atlas refitted with histogram matching (runs given with
  ``--run`` keep the preprocessing they were trained with).

The 20 held-out IXI subjects (the last by sorted id, as the reproductions hold out) are
split: thresholds are fitted on the first 10, and their false-positive rate is measured on
the other 10 ("healthy FPR on unseen scans" against the 1 % it was fitted for). Every
command is written to ``commands.sh``; ``ablation.json`` and ``table.md`` go to the output
folder (default ``results/<date>-<commit>/ablation-real``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
from pathlib import Path

from benchmarks import CommandLog
from jaxuad.data import discover
from jaxuad.reproduce.runner import default_results, git_commit

SHARED = Path("../shared/data")
VARIANTS = {
    "voxels": ["evaluate.units=voxels"],
    "mm": [],
    "mm+negative": ["evaluate.residual_sign=negative"],
    "mm+negative+match": ["evaluate.residual_sign=negative"],
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=SHARED, help="data folder (ixi/, mslub/)")
    p.add_argument("--work", type=Path, default=Path("work/ablation"), help="scratch folder")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME=WORKDIR[:METHOD]",
        help="also a trained run (restored with METHOD, default reconstruction; an iterative "
        "METHOD needs the run's calibrated lambda, jaxuad-restore --calibrate)",
    )
    p.add_argument(
        "--restore-set",
        action="append",
        default=[],
        metavar="restore.KEY=VALUE",
        help="a restore setting for the --run rows (e.g. restore.steps=50); repeatable",
    )
    args = p.parse_args(argv)
    out = args.out or default_results() / "ablation-real"
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    sh = CommandLog(out / "commands.sh", f"jaxuad ablation on real scans, commit {git_commit()}")

    ixi = sorted(discover(args.shared / "ixi", "T1w"), key=lambda s: s.id)
    train, fit, check = ixi[:-20], ixi[-20:-10], ixi[-10:]
    manifests = {}
    for name, subjects in (("train", train), ("fit", fit), ("check", check)):
        manifests[name] = work / f"{name}.csv"
        with manifests[name].open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject", "image", "brainmask", "lesion"])
            w.writerows(
                [s.id, Path(s.image).resolve(), Path(s.brainmask).resolve(), ""] for s in subjects
            )
    test = str(args.shared / "mslub")
    quiet = "--no-progress"

    atlases = {"plain": work / "atlas", "match": work / "atlas-match"}
    for key, wd in atlases.items():
        if not (wd / "atlas.npz").is_file():
            extra = ["--set", "data.histogram_match=true"] if key == "match" else []
            sh(
                "jaxuad-train",
                "--model",
                "atlas",
                "--data",
                str(manifests["train"]),
                "--modality",
                "T1w",
                "--workdir",
                str(wd),
                *extra,
                quiet,
            )

    # (row, variant) -> (restore argv without --data/--out, evaluate overrides)
    rows: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
    for variant, sets in VARIANTS.items():
        atlas = atlases["match" if variant.endswith("match") else "plain"]
        rows.setdefault("atlas", {})[variant] = (
            ["--method", "atlas", "--workdir", str(atlas)],
            sets,
        )
        # intensity takes its data settings (the landmarks) from a run; on T1 its score is
        # the negative intensity (Meissen et al.'s baseline for hypointense lesions).
        unsigned = [s for s in sets if "residual_sign" not in s]
        rows.setdefault("intensity", {})[variant] = (
            ["--method", "intensity", "--workdir", str(atlas)],
            [*unsigned, "evaluate.residual_sign=negative"],
        )
    for spec in args.run:
        name, rest = spec.split("=", 1)
        wd, _, method = rest.partition(":")
        for variant, sets in VARIANTS.items():
            rows.setdefault(name, {})[variant] = (
                ["--method", method or "reconstruction", "--workdir", wd]
                + [a for kv in args.restore_set for a in ("--set", kv)],
                sets,
            )

    results = {}
    for row, variants in rows.items():
        restored: dict[str, Path] = {}
        for variant, (restore_argv, sets) in variants.items():
            key = shlex.join(restore_argv)
            if key not in restored:
                restored[key] = work / "pred" / f"{row}-{len(restored)}"
                for part, data in (
                    ("fit", manifests["fit"]),
                    ("check", manifests["check"]),
                    ("test", test),
                ):
                    dst = restored[key] / part
                    sh(
                        "jaxuad-restore",
                        *restore_argv,
                        "--data",
                        str(data),
                        "--modality",
                        "T1w",
                        "--out",
                        str(dst),
                        "--overwrite",
                        quiet,
                        done=(dst / "restore.json").is_file(),
                    )
            pred = restored[key]
            overrides = [a for s in sets for a in ("--set", s)]
            ev = work / "eval" / f"{row}-{variant}"
            sh(
                "jaxuad-evaluate",
                "--pred",
                str(pred / "test"),
                "--data",
                test,
                "--healthy",
                str(pred / "fit"),
                "--out",
                str(ev / "test"),
                *overrides,
                quiet,
            )
            sh(
                "jaxuad-evaluate",
                "--pred",
                str(pred / "check"),
                "--data",
                str(manifests["check"]),
                "--thresholds",
                str(ev / "test" / "thresholds.json"),
                "--out",
                str(ev / "check"),
                *overrides,
                quiet,
            )
            m = json.loads((ev / "test" / "metrics.json").read_text())
            c = json.loads((ev / "check" / "metrics.json").read_text())
            results[f"{row}/{variant}"] = {
                "auroc": m["summary"]["auroc"],
                "auprc": m["summary"]["auprc"],
                "dice_fpr1": m["at_threshold"]["fpr1"]["dice_mean"],
                "dice_percentile": m["at_threshold"]["percentile"]["dice_mean"],
                "ceiling_dice": (m.get("ceiling") or {}).get("dice_mean"),
                "fpr1_fitted": m["at_threshold"]["fpr1"]["healthy_fpr"],
                "fpr1_unseen_healthy": c["at_threshold"]["fpr1"]["fpr"],
                "fpr1_patients_normal": m["at_threshold"]["fpr1"]["fpr"],
            }
    (out / "ablation.json").write_text(
        json.dumps({"commit": git_commit(), "rows": results}, indent=2) + "\n"
    )
    f = lambda v, s=".3f": "n/a" if v is None else format(v, s)  # noqa: E731
    lines = [
        "| row | variant | AUROC | AUPRC | Dice @1% FPR | Dice @p98 | ceiling Dice | "
        "FPR (fitted 1 %): unseen healthy | patients' normal tissue |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, r in results.items():
        row, variant = k.split("/")
        lines.append(
            f"| {row} | {variant} | {f(r['auroc'])} | {f(r['auprc'])} | {f(r['dice_fpr1'])} | "
            f"{f(r['dice_percentile'])} | {f(r['ceiling_dice'])} | "
            f"{f(r['fpr1_unseen_healthy'], '.2%')} | {f(r['fpr1_patients_normal'], '.2%')} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

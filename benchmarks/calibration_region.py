"""How lambda calibration moves when SSIM is averaged over brain tissue instead of the whole
padded frame (issue 27, item 5), on the Chen phantom protocol at the small budget.

Trains ``vae_chen`` on the FLAIR-like phantom (8 healthy subjects, 16 central slices, 10
epochs at 1e-3, as ``bin/reproduce-chen --data phantom --budget small``), calibrates lambda
for LG(neural) and MAP with each prior both ways (``restore.ssim_region=brain | frame``),
and restores and evaluates the 6 lesion subjects with each lambda (thresholds from 2
held-out healthy subjects). Writes ``commands.sh``, ``calibration_region.json`` and
``table.md`` (default ``results/<date>-<commit>/calibration-region``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import CommandLog
from jaxuad.reproduce.runner import default_results, git_commit

RESTORE = ["--set", "restore.steps=50", "--set", "restore.learning_rate=0.04",
           "--set", "restore.samples=4"]  # fmt: skip
CALIBRATE = ["--set", "restore.calibrate_slices=8", "--set",
             "restore.lam_grid=0.1,1,10,100,1000,10000"]  # fmt: skip
ROWS = [("lg_neural", "tv"), ("lg_neural", "l1"), ("map", "tv"), ("map", "l1")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("work/calibration-region"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    work, out = args.work, args.out or default_results() / "calibration-region"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    log = CommandLog(
        out / "commands.sh", f"lambda calibration: brain tissue against the frame, {git_commit()}"
    )

    def sh(name: str, *a: str) -> str:
        return log(name, *a, "--no-progress")

    ph, run = work / "phantom", work / "vae_chen"
    if not ph.is_dir():
        sh("jaxuad-phantom", "--out", str(ph), "--n-healthy", "12", "--n-lesion", "6",
           "--seed", "0")  # fmt: skip
    for name, ids in (("train", range(8)), ("heldout", range(8, 10))):
        rows = ["subject,image,brainmask,lesion"] + [
            f"h{i:03d},{(ph / 'healthy' / f'sub-h{i:03d}_FLAIR.nii.gz').resolve()},"
            f"{(ph / 'healthy' / f'sub-h{i:03d}_brainmask.nii.gz').resolve()},"
            for i in ids
        ]
        (work / f"{name}.csv").write_text("\n".join(rows) + "\n")
    if not (run / "checkpoints").is_dir():
        sh("jaxuad-train", "--model", "vae_chen", "--data", str(work / "train.csv"),
           "--modality", "FLAIR", "--workdir", str(run), "--set", "train.epochs=10",
           "--set", "train.learning_rate=0.001", "--set", "data.slices=middle",
           "--set", "data.n_slices=16")  # fmt: skip
    results = {}
    for method, prior in ROWS:
        for region in ("frame", "brain"):
            sh("jaxuad-restore", "--calibrate", "--workdir", str(run), "--data",
               str(work / "heldout.csv"), "--method", method, "--prior", prior, *RESTORE,
               *CALIBRATE, "--set", f"restore.ssim_region={region}")  # fmt: skip
            cal = json.loads((run / "calibration.json").read_text())[f"{method}/{prior}"]
            key = f"{method}-{prior}-{region}"
            pred = work / "pred" / key
            lam = ["--lam", f"{cal['lam']:g}"]
            for part, data in (("healthy", work / "heldout.csv"), ("lesion", ph / "lesion")):
                sh("jaxuad-restore", "--workdir", str(run), "--data", str(data), "--modality",
                   "FLAIR", "--out", str(pred / part), "--overwrite", "--method", method,
                   "--prior", prior, *lam, *RESTORE)  # fmt: skip
            ev = work / "eval" / key
            sh("jaxuad-evaluate", "--pred", str(pred / "lesion"), "--data", str(ph / "lesion"),
               "--healthy", str(pred / "healthy"), "--out", str(ev))  # fmt: skip
            m = json.loads((ev / "metrics.json").read_text())
            results[key] = {
                "lam": cal["lam"],
                "target_met": cal["target_met"],
                "grid": cal["grid"],
                "ssim": cal["ssim"],
                "dice_fpr1": m["at_threshold"]["fpr1"]["dice_mean"],
                "dice_percentile": m["at_threshold"]["percentile"]["dice_mean"],
                "auroc": m["summary"]["auroc"],
            }
    (out / "calibration_region.json").write_text(
        json.dumps({"commit": git_commit(), "rows": results}, indent=2) + "\n"
    )
    lines = [
        "| method | prior | SSIM over | lambda | target met | Dice @1% FPR | Dice @p98 | AUROC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        method, prior, region = key.split("-")
        lines.append(
            f"| {method} | {prior} | {region} | {r['lam']:g} | {r['target_met']} | "
            f"{r['dice_fpr1']:.3f} | {r['dice_percentile']:.3f} | {r['auroc']:.3f} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The effect of each of issue 26's changes, one at a time, on real scans (IXI T1 -> MSLUB T1).

Rows are restorations: the two voxel-wise baselines, and any trained runs given with
``--run NAME=WORKDIR[:METHOD]``. Each row is evaluated under pipeline variants, each
differing from the one before in one setting:

* ``voxels``: Baur's post-processing in voxels (5x5x5 median, 3 erosions, 6 voxels),
  residuals of both signs: the pipeline before issue 26;
* ``mm``: the same sizes in mm (5 mm, 3 mm, 6 mm³);
* ``mm+negative``: only residuals where the scan is darker than its restoration (MS
  lesions are hypointense on T1).

The preprocessing column says what every scan went through before the row's model saw it:
the baselines are fitted three times (``none``; ``match``: histogram matching to the
training cohort; ``match+denoise``: curvature flow first, then matching), the last two
evaluated as ``mm+negative``; a trained run keeps the preprocessing it was trained with
(read from its ``config.json``), and its training budget (steps, epochs, images seen, from
its ``metrics.jsonl``) is recorded beside it.

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
from jaxuad.restore import method_spec
from jaxuad.train.checkpoint import Checkpoints
from jaxuad.train.run import calibrated_lambda

SHARED = Path("../shared/data")
VARIANTS = {
    "voxels": ["evaluate.units=voxels"],
    "mm": [],
    "mm+negative": ["evaluate.residual_sign=negative"],
}
# The baselines' preprocessing: data settings of each refitted atlas.
PREPROCESSING = {
    "none": [],
    "match": ["data.histogram_match=true"],
    "match+denoise": ["data.histogram_match=true", "data.curvature_flow=5"],
}


def preprocessing_of(workdir) -> str:
    """``none``, ``match``, ``denoise`` or ``match+denoise``, from a run's data settings."""
    data = json.loads((Path(workdir) / "config.json").read_text())["data"]
    parts = [k for k, on in (("match", data.get("histogram_match")),
                             ("denoise", data.get("curvature_flow"))) if on]  # fmt: skip
    return "+".join(parts) or "none"


def budget_of(workdir) -> dict:
    """The training behind a run's latest checkpoint, the one its restorations load: steps,
    epochs and images seen. The step is the checkpoint's; epochs follow from the steps per
    epoch in ``metrics.jsonl`` (which may log steps past the checkpoint, when a run was
    killed before it could save them); images from the batch size in ``config.json``."""
    wd = Path(workdir)
    batch = json.loads((wd / "config.json").read_text())["train"]["batch_size"]
    ckpt = Checkpoints(wd)
    step = ckpt.latest_step() or 0
    ckpt.close()
    rows = [json.loads(x) for x in (wd / "metrics.jsonl").read_text().splitlines() if x]
    per_epoch = next((r["step"] / r["epoch"] for r in reversed(rows) if r["epoch"]), None)
    epochs = round(step / per_epoch, 2) if per_epoch else 0.0
    return {"steps": step, "epochs": epochs, "images": step * batch}


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
        help="a restore setting for the --run rows and their lambda calibration (e.g. "
        "restore.steps=50); repeatable",
    )
    p.add_argument(
        "--from-json",
        action="store_true",
        help="do not measure: rebuild table.md and ablation.png from --out's ablation.json",
    )
    args = p.parse_args(argv)
    if args.from_json:
        if args.out is None:
            p.error("--from-json needs --out, the folder holding ablation.json")
        write_outputs(json.loads((args.out / "ablation.json").read_text())["rows"], args.out)
        return 0
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

    atlases = {pre: work / ("atlas" if pre == "none" else f"atlas-{pre}") for pre in PREPROCESSING}
    for pre, wd in atlases.items():
        extra = [a for kv in PREPROCESSING[pre] for a in ("--set", kv)]
        sh("jaxuad-train", "--model", "atlas", "--data", str(manifests["train"]), "--modality",
           "T1w", "--workdir", str(wd), *extra, quiet,
           done=(wd / "atlas.npz").is_file())  # fmt: skip

    # (row, preprocessing, variant) -> (restore argv without --data/--out, evaluate overrides)
    rows: dict[tuple[str, str, str], tuple[list[str], list[str]]] = {}
    budgets: dict[str, dict] = {}
    for pre, atlas in atlases.items():
        for variant, sets in VARIANTS.items():
            if pre != "none" and variant != "mm+negative":
                continue
            rows["atlas", pre, variant] = (["--method", "atlas", "--workdir", str(atlas)], sets)
            # intensity takes its data settings (the landmarks) from a run; on T1 its score
            # is the negative intensity (Meissen et al.'s baseline for hypointense lesions)
            # in every variant, so its `mm` row would repeat `mm+negative`.
            if variant == "mm":
                continue
            unsigned = [s for s in sets if "residual_sign" not in s]
            rows["intensity", pre, variant] = (
                ["--method", "intensity", "--workdir", str(atlas)],
                [*unsigned, "evaluate.residual_sign=negative"],
            )
    settings = [a for kv in args.restore_set for a in ("--set", kv)]
    prior = dict(kv.split("=", 1) for kv in args.restore_set).get("restore.prior", "tv")
    lams: dict[str, float] = {}
    for spec in args.run:
        name, rest = spec.split("=", 1)
        wd, _, method = rest.partition(":")
        budgets[name] = budget_of(wd)
        if method and method_spec(method).needs_lambda:
            # lambda by SSIM >= 0.95 on the fitting subjects' brain tissue, stored in the run
            sh("jaxuad-restore", "--calibrate", "--workdir", wd, "--data",
               str(manifests["fit"]), "--modality", "T1w", "--method", method, *settings, quiet,
               done=calibrated_lambda(wd, method, prior) is not None)  # fmt: skip
            lams[name] = calibrated_lambda(wd, method, prior)
        for variant, sets in VARIANTS.items():
            rows[name, preprocessing_of(wd), variant] = (
                ["--method", method or "reconstruction", "--workdir", wd, *settings],
                sets,
            )

    results = {}
    restored: dict[str, Path] = {}
    for (row, pre, variant), (restore_argv, sets) in rows.items():
        key = shlex.join(restore_argv)
        if key not in restored:
            restored[key] = work / "pred" / f"{row}-{pre}-{len(restored)}"
            for part, data in (("fit", manifests["fit"]), ("check", manifests["check"]),
                               ("test", test)):  # fmt: skip
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
        ev = work / "eval" / f"{row}-{pre}-{variant}"
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
        r = json.loads((pred / "test" / "restore.json").read_text())
        results[f"{row}/{pre}/{variant}"] = {
            "restore": restore_argv,
            "training": budgets.get(row),
            "lam": lams.get(row),
            "auroc": m["summary"]["auroc"],
            "auprc": m["summary"]["auprc"],
            "dice_fpr1": m["at_threshold"]["fpr1"]["dice_mean"],
            "dice_percentile": m["at_threshold"]["percentile"]["dice_mean"],
            "ceiling_dice": (m.get("ceiling") or {}).get("dice_mean"),
            "fpr1_fitted": m["at_threshold"]["fpr1"]["healthy_fpr"],
            "fpr1_unseen_healthy": c["at_threshold"]["fpr1"]["fpr"],
            "fpr1_patients_normal": m["at_threshold"]["fpr1"]["fpr"],
            "seconds_per_subject": r["seconds_per_subject"],
        }
    (out / "ablation.json").write_text(
        json.dumps({"commit": git_commit(), "rows": results}, indent=2) + "\n"
    )
    write_outputs(results, out)
    print(table(results))
    return 0


def _grouped(results: dict) -> list[str]:
    """The keys of ``results``, rows of one name together, in the order names first appear."""
    first: dict[str, int] = {}
    for k in results:
        first.setdefault(k.split("/")[0], len(first))
    return sorted(results, key=lambda k: first[k.split("/")[0]])


def write_outputs(results: dict, out: Path) -> None:
    """``table.md`` and ``ablation.png`` in ``out``, from the rows of ``ablation.json``."""
    (out / "table.md").write_text(table(results) + "\n")
    figure(results, out / "ablation.png")


def figure(results: dict, path: Path, variant: str = "mm+negative") -> None:
    """AUROC, AUPRC and Dice at 1 % FPR of every row under ``variant`` (default: the
    pipeline with every change of issue 26), one bar per row and preprocessing, baselines in
    grey, the ceiling as a dashed line on the Dice panel."""
    from matplotlib.figure import Figure  # the bench extra's matplotlib, only when drawing

    keys = [k for k in _grouped(results) if k.split("/")[2] == variant]
    labels = []
    for k in keys:
        row, pre, _ = k.split("/")
        lam = results[k].get("lam")
        labels.append(row + ("" if pre == "none" else f", {pre}")
                      + ("" if lam is None else f" (λ = {lam:g})"))  # fmt: skip
    grey = [k.split("/")[0] in ("atlas", "intensity") for k in keys]
    colours = ["0.6" if g else "C0" for g in grey]
    y = list(range(len(keys)))[::-1]
    fig = Figure(figsize=(11, 0.32 * len(keys) + 1.4))
    axes = fig.subplots(1, 3, sharey=True)
    metrics = (("auroc", "AUROC"), ("auprc", "AUPRC"), ("dice_fpr1", "Dice at 1 % healthy FPR"))
    for ax, (metric, name) in zip(axes, metrics, strict=True):
        values = [results[k][metric] or 0.0 for k in keys]
        ax.barh(y, values, color=colours)
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:.3f}", va="center", fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0.5 if metric == "auroc" else 0, 1 if metric == "auroc" else None)
    ceilings = {results[k]["ceiling_dice"] for k in keys} - {None}
    for c in ceilings:
        axes[2].axvline(c, color="k", ls="--", lw=0.8)
        axes[2].text(c, y[0] + 0.6, f"ceiling {c:.3f}", fontsize=7, ha="right")
    axes[2].set_xlim(0, max([*ceilings, 0.1]) * 1.15)
    axes[0].set_yticks(y, labels, fontsize=8)
    fig.suptitle(f"IXI T1 → MSLUB T1, post-processing {variant} (baselines grey)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def table(results: dict) -> str:
    """The Markdown table of ``ablation.json``'s rows."""
    f = lambda v, s=".3f": "n/a" if v is None else format(v, s)  # noqa: E731
    lines = [
        "| row | training | preprocessing | variant | AUROC | AUPRC | Dice @1% FPR | Dice @p98 "
        "| ceiling Dice | FPR (fitted 1 %): unseen healthy | patients' normal tissue "
        "| restore [s/subject] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in _grouped(results):
        r = results[k]
        row, pre, variant = k.split("/")
        row += "" if r.get("lam") is None else f" (λ = {r['lam']:g})"
        t = r.get("training")
        trained = "-" if t is None else f"{t['epochs']:g} epochs ({t['images']:,} slices)"
        lines.append(
            f"| {row} | {trained} | {pre} | {variant} | {f(r['auroc'])} | {f(r['auprc'])} | "
            f"{f(r['dice_fpr1'])} | {f(r['dice_percentile'])} | {f(r['ceiling_dice'])} | "
            f"{f(r['fpr1_unseen_healthy'], '.2%')} | {f(r['fpr1_patients_normal'], '.2%')} | "
            f"{f(r['seconds_per_subject'], '.1f')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

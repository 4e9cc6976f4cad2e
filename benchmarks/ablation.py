"""The detection methods one change at a time on real scans (IXI T1 -> MSLUB T1).

Rows are restorations: the two voxel-wise baselines (the atlas fitted without and with
histogram matching, and the intensity), and any trained runs given with
``--run NAME=WORKDIR[:METHOD]``. Every row is scored in each of the scorings of issue 37,
one addition at a time, and evaluated alike (mm post-processing, residuals where the scan is
darker than its restoration, as MS lesions are on T1):

* ``raw``: the restoration's residual;
* ``per-scan``: each scan's signed score standardised by its own median and MAD;
* ``normative``: the residual as a per-voxel z-score against the run's residuals on the
  20 healthy normative subjects (``jaxuad-restore --fit-normative``); trained runs only;
* ``fused`` / ``fused-match``: that z-score fused with the atlas's (without / with
  histogram matching), each weighed to count equally at 1 % healthy FPR;
* and ``+per-scan`` after each of these.

The 120 IXI subjects, sorted by id: the first 100 fit the atlases; trained runs are meant to
train on the first 80 (``model-train.csv``) so that subjects 81-100 (``normative.csv``) are
healthy scans they never saw; thresholds are fitted on subjects 101-110 (``fit.csv``) and
their false-positive rate measured on 111-120 (``check.csv``). Every command is written to
``commands.sh``; ``ablation.json``, ``table.md`` and ``ablation.png`` go to the output
folder (default ``results/<date>-<commit>/ablation-real``). ``--from-json`` redraws them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import CommandLog
from jaxuad.data import discover
from jaxuad.data.dataset import write_manifest
from jaxuad.reproduce.runner import default_results, git_commit
from jaxuad.restore import method_spec
from jaxuad.train.checkpoint import Checkpoints
from jaxuad.train.run import calibrated_lambda

SHARED = Path("../shared/data")
EVALUATE = ["evaluate.residual_sign=negative"]  # mm post-processing, dark lesions on T1
# The baselines' preprocessing: data settings of each refitted atlas.
PREPROCESSING = {"none": [], "match": ["data.histogram_match=true"]}
BASELINE_SCORINGS = ("raw", "per-scan")
RUN_SCORINGS = (
    "raw", "per-scan", "normative", "normative+per-scan", "fused", "fused+per-scan",
    "fused-match", "fused-match+per-scan",
)  # fmt: skip


def scoring_args(scoring: str, atlases: dict) -> list[str]:
    """jaxuad-restore options of a scoring name (``fused-match+per-scan``, ...)."""
    parts, out = scoring.split("+"), []
    if parts[0] in ("normative", "fused", "fused-match"):
        out.append("--normative")
    if parts[0] == "fused":
        out += ["--fuse", str(atlases["none"])]
    if parts[0] == "fused-match":
        out += ["--fuse", str(atlases["match"])]
    if "per-scan" in parts:
        out.append("--per-scan")
    return out


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
        "--scorings",
        nargs="+",
        default=list(RUN_SCORINGS),
        choices=RUN_SCORINGS,
        metavar="SCORING",
        help=f"the scorings of the --run rows (default all: {', '.join(RUN_SCORINGS)})",
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
    splits = {"train": ixi[:100], "model-train": ixi[:80], "normative": ixi[80:100],
              "fit": ixi[100:110], "check": ixi[110:120]}  # fmt: skip
    manifests = {  # healthy scans: their lesion column stays empty
        name: write_manifest(subjects, work / f"{name}.csv") for name, subjects in splits.items()
    }
    test = str(args.shared / "mslub")
    quiet = "--no-progress"

    atlases = {pre: work / ("atlas" if pre == "none" else f"atlas-{pre}") for pre in PREPROCESSING}
    for pre, wd in atlases.items():
        extra = [a for kv in PREPROCESSING[pre] for a in ("--set", kv)]
        sh("jaxuad-train", "--model", "atlas", "--data", str(manifests["train"]), "--modality",
           "T1w", "--workdir", str(wd), *extra, quiet,
           done=(wd / "atlas.npz").is_file())  # fmt: skip

    # (row, preprocessing, scoring) -> jaxuad-restore argv without --data/--out
    rows: dict[tuple[str, str, str], list[str]] = {}
    budgets: dict[str, dict] = {}
    for pre, atlas in atlases.items():
        for scoring in BASELINE_SCORINGS:
            extra = scoring_args(scoring, atlases)
            rows["atlas", pre, scoring] = ["--method", "atlas", "--workdir", str(atlas), *extra]
            if pre == "none":  # intensity: the scan itself (its negative, on T1)
                rows["intensity", pre, scoring] = ["--method", "intensity", *extra]
    settings = [a for kv in args.restore_set for a in ("--set", kv)]
    prior = dict(kv.split("=", 1) for kv in args.restore_set).get("restore.prior", "tv")
    lams: dict[str, float] = {}
    for spec in args.run:
        name, rest = spec.split("=", 1)
        wd, _, method = rest.partition(":")
        method = method or "reconstruction"
        budgets[name] = budget_of(wd)
        if method_spec(method).needs_lambda:
            # lambda by SSIM >= 0.95 on the fitting subjects' brain tissue, stored in the run
            sh("jaxuad-restore", "--calibrate", "--workdir", wd, "--data",
               str(manifests["fit"]), "--modality", "T1w", "--method", method, *settings, quiet,
               done=calibrated_lambda(wd, method, prior) is not None)  # fmt: skip
            lams[name] = calibrated_lambda(wd, method, prior)
        # per-voxel statistics of the run's residuals on the 20 healthy scans it never saw,
        # with the weights of both atlases for fusion
        stem = method if not method_spec(method).needs_lambda else f"{method}-{prior}"
        sh("jaxuad-restore", "--fit-normative", "--workdir", wd, "--data",
           str(manifests["normative"]), "--modality", "T1w", "--method", method, *settings,
           "--fuse", str(atlases["none"]), str(atlases["match"]), quiet,
           done=(Path(wd) / "normative" / f"{stem}.npz").is_file())  # fmt: skip
        for scoring in args.scorings:
            rows[name, preprocessing_of(wd), scoring] = [
                "--method", method, "--workdir", wd, *settings,
                *scoring_args(scoring, atlases),
            ]  # fmt: skip

    results = {}
    overrides = [a for s in EVALUATE for a in ("--set", s)]
    for (row, pre, scoring), restore_argv in rows.items():
        pred = work / "pred" / f"{row}-{pre}-{scoring}"
        for part, data in (("fit", manifests["fit"]), ("check", manifests["check"]),
                           ("test", test)):  # fmt: skip
            dst = pred / part
            sh("jaxuad-restore", *restore_argv, "--data", str(data), "--modality", "T1w",
               "--out", str(dst), "--overwrite", quiet,
               done=_restored_by(dst, restore_argv))  # fmt: skip
        ev = work / "eval" / f"{row}-{pre}-{scoring}"
        sh("jaxuad-evaluate", "--pred", str(pred / "test"), "--data", test, "--healthy",
           str(pred / "fit"), "--out", str(ev / "test"), *overrides, quiet,
           done=_newer(ev / "test" / "metrics.json", pred))  # fmt: skip
        sh("jaxuad-evaluate", "--pred", str(pred / "check"), "--data", str(manifests["check"]),
           "--thresholds", str(ev / "test" / "thresholds.json"), "--out", str(ev / "check"),
           *overrides, quiet, done=_newer(ev / "check" / "metrics.json", pred))  # fmt: skip
        m = json.loads((ev / "test" / "metrics.json").read_text())
        c = json.loads((ev / "check" / "metrics.json").read_text())
        r = json.loads((pred / "test" / "restore.json").read_text())
        results[f"{row}/{pre}/{scoring}"] = {
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


def _restored_by(dst: Path, restore_argv: list[str]) -> bool:
    """Whether ``dst`` holds a restoration by the run ``restore_argv`` names (a row renamed
    to another run must not reuse the old run's restorations)."""
    if not (dst / "restore.json").is_file():
        return False
    run = json.loads((dst / "restore.json").read_text()).get("run")
    wd = restore_argv[restore_argv.index("--workdir") + 1] if "--workdir" in restore_argv else None
    return (run is None) == (wd is None) and (wd is None or Path(run) == Path(wd).resolve())


def _newer(result: Path, pred: Path) -> bool:
    """Whether ``result`` exists and was written after every restoration of ``pred``."""
    parts = [pred / part / "restore.json" for part in ("fit", "check", "test")]
    return result.is_file() and all(
        p.is_file() and p.stat().st_mtime < result.stat().st_mtime for p in parts
    )


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


def figure(results: dict, path: Path) -> None:
    """AUROC, AUPRC and Dice at 1 % FPR of every row, one bar per row, preprocessing and
    scoring, baselines in grey, the ceiling as a dashed line on the Dice panel."""
    from matplotlib.figure import Figure  # the bench extra's matplotlib, only when drawing

    keys = _grouped(results)
    labels = []
    for k in keys:
        row, pre, scoring = k.split("/")
        lam = results[k].get("lam")
        labels.append(row + ("" if pre == "none" else f", {pre}") + f", {scoring}"
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
    fig.suptitle("IXI T1 → MSLUB T1, mm post-processing, dark residuals (baselines grey)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def table(results: dict) -> str:
    """The Markdown table of ``ablation.json``'s rows."""
    f = lambda v, s=".3f": "n/a" if v is None else format(v, s)  # noqa: E731
    lines = [
        "| row | training | preprocessing | scoring | AUROC | AUPRC | Dice @1% FPR | Dice @p98 "
        "| ceiling Dice | FPR (fitted 1 %): unseen healthy | patients' normal tissue "
        "| restore [s/subject] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in _grouped(results):
        r = results[k]
        row, pre, scoring = k.split("/")
        row += "" if r.get("lam") is None else f" (λ = {r['lam']:g})"
        t = r.get("training")
        trained = "-" if t is None else f"{t['epochs']:g} epochs ({t['images']:,} slices)"
        lines.append(
            f"| {row} | {trained} | {pre} | {scoring} | {f(r['auroc'])} | {f(r['auprc'])} | "
            f"{f(r['dice_fpr1'])} | {f(r['dice_percentile'])} | {f(r['ceiling_dice'])} | "
            f"{f(r['fpr1_unseen_healthy'], '.2%')} | {f(r['fpr1_patients_normal'], '.2%')} | "
            f"{f(r['seconds_per_subject'], '.1f')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""Chooses a run's checkpoint without lesion labels, by synthetic lesions in healthy scans.

A longer training is not always a better detector: a denoising autoencoder that learns to
restore ever finer detail also learns to restore lesions. Which checkpoint to use must still
be decided without the patients' lesion masks. This script implants synthetic T1 lesions
(:func:`jaxuad.data.synthetic.implant_lesions`, dark ellipsoids in white matter) into
held-out healthy IXI scans (``--data``, default the ablation's ``fit.csv``: subjects
101-110, which no run trains on) and scores every kept checkpoint of each ``--run`` as the
ablation scores its runs: normative statistics fitted on ``--normative-data`` (subjects
81-100), the residual's z-score, mm post-processing, negative residuals, thresholds from the
same scans without lesions. Each checkpoint is copied into a run folder of its own under
``--work`` (normative statistics belong to a run). The checkpoint with the highest synthetic
AUPRC is chosen. Writes ``select.json``, ``select.md`` and ``commands.sh`` to ``--out``
(default ``results/<date>-<commit>/select``). The choice is a ranking on a proxy; the
patients' numbers come from ``bin/ablate-real`` with the chosen checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from benchmarks import CommandLog
from benchmarks.ablation import EVALUATE
from jaxuad.core.io import OutputFolder
from jaxuad.data import discover
from jaxuad.data.dataset import Subject, write_manifest
from jaxuad.data.nifti import load_volume, write_nifti_like
from jaxuad.data.synthetic import CONTRAST, RADIUS_MM, implant_lesions
from jaxuad.reproduce.runner import default_results, git_commit
from jaxuad.train.checkpoint import Checkpoints


def synthetic_cohort(manifest: Path, folder: Path, seed: int, **lesions) -> Path:
    """Writes each healthy scan of ``manifest`` with implanted lesions, and their lesion
    masks, to ``folder``; returns the manifest of the result (the brain masks are the
    originals, read in place). ``lesions``: keywords of ``implant_lesions``. Deterministic
    in ``seed``; reused when already written."""
    out = folder / "synthetic.csv"
    if out.is_file():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, s in enumerate(sorted(discover(manifest, "T1w"), key=lambda s: s.id)):
        vol = load_volume(s.id, s.image, s.brainmask, None)
        rng = np.random.default_rng([seed, i])
        imp = implant_lesions(vol.image, vol.brainmask, rng, spacing=vol.voxel_size, **lesions)
        image, lesion = folder / f"sub-{s.id}_T1w.nii.gz", folder / f"sub-{s.id}_lesion.nii.gz"
        write_nifti_like(imp.image, vol, image)
        write_nifti_like(imp.lesion, vol, lesion)
        rows.append(Subject(s.id, image, s.brainmask, lesion))
    return write_manifest(rows, out)


def copy_checkpoint(run: Path, step: int, dst: Path) -> Path:
    """``dst``: a run folder holding ``run``'s files (config, log) and only its checkpoint
    ``step``, written whole or not at all; reused when already there."""
    if not (dst / "checkpoints" / str(step)).is_dir():
        with OutputFolder(dst) as folder:
            for f in run.iterdir():
                if f.is_file():
                    shutil.copy2(f, folder.path / f.name)
            shutil.copytree(run / "checkpoints" / str(step),
                            folder.path / "checkpoints" / str(step))  # fmt: skip
            folder.commit()
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, metavar="WORKDIR",
                   help="a trained run; each kept checkpoint is scored (repeatable)")  # fmt: skip
    p.add_argument("--data", type=Path, default=Path("work/ablation/fit.csv"),
                   help="healthy scans no run trained on (a folder or manifest)")  # fmt: skip
    p.add_argument("--normative-data", type=Path,
                   default=Path("work/ablation/normative.csv"),
                   help="other unseen healthy scans, for normative statistics")  # fmt: skip
    p.add_argument("--method", default="reconstruction", help="restoration method")
    p.add_argument("--steps", type=int, nargs="+", default=None,
                   help="only these checkpoint steps (default: every kept one)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the implanted lesions")
    p.add_argument("--radius-mm", type=float, nargs=2, default=RADIUS_MM, metavar=("LO", "HI"),
                   help="range of the lesions' semi-axes in mm")  # fmt: skip
    p.add_argument("--contrast", type=float, nargs=2, default=CONTRAST, metavar=("LO", "HI"),
                   help="range of the lesions' relative intensity change")  # fmt: skip
    p.add_argument("--work", type=Path, default=Path("work/select"), help="scratch folder")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    args = p.parse_args(argv)
    out = args.out or default_results() / "select"
    out.mkdir(parents=True, exist_ok=True)
    sh = CommandLog(out / "commands.sh", f"jaxuad checkpoint selection, commit {git_commit()}")
    lesions = {"radius_mm": tuple(args.radius_mm), "contrast": tuple(args.contrast)}
    tag = "_".join(f"{v:g}" for v in (*args.radius_mm, *args.contrast))
    synthetic = synthetic_cohort(
        args.data, args.work / f"synthetic-{args.seed}-{tag}", args.seed, **lesions
    )
    overrides = [a for s in EVALUATE for a in ("--set", s)]
    quiet = "--no-progress"
    rows = []
    for wd in args.run:
        ckpt = Checkpoints(wd)
        steps = [s for s in ckpt.steps() if args.steps is None or s in args.steps]
        ckpt.close()
        name = Path(wd).name
        for step in steps:
            one = copy_checkpoint(Path(wd), step, args.work / "runs" / f"{name}-{step}")
            sh("jaxuad-restore", "--fit-normative", "--workdir", str(one), "--data",
               str(args.normative_data), "--modality", "T1w", "--method", args.method, quiet,
               done=(one / "normative" / f"{args.method}.npz").is_file())  # fmt: skip
            pred = args.work / "pred" / f"{name}-{step}"
            syn = pred / f"synthetic-{args.seed}-{tag}"
            for dst, data in ((pred / "healthy", args.data), (syn, synthetic)):
                sh("jaxuad-restore", "--method", args.method, "--workdir", str(one),
                   "--normative", "--data", str(data), "--modality", "T1w", "--out",
                   str(dst), "--overwrite", quiet,
                   done=(dst / "restore.json").is_file())  # fmt: skip
            ev = args.work / "eval" / f"{name}-{step}-{args.seed}-{tag}"
            sh("jaxuad-evaluate", "--pred", str(syn), "--data", str(synthetic),
               "--healthy", str(pred / "healthy"), "--out", str(ev), *overrides, quiet,
               done=(ev / "metrics.json").is_file())  # fmt: skip
            m = json.loads((ev / "metrics.json").read_text())
            rows.append({
                "run": str(wd), "step": step, "auroc": m["summary"]["auroc"],
                "auprc": m["summary"]["auprc"],
                "dice_fpr1": m["at_threshold"]["fpr1"]["dice_mean"],
            })  # fmt: skip
    chosen = {}
    for wd in args.run:
        mine = [r for r in rows if r["run"] == str(wd)]
        chosen[str(wd)] = max(mine, key=lambda r: (r["auprc"], r["auroc"]))["step"]
    (out / "select.json").write_text(
        json.dumps(
            {
                "commit": git_commit(),
                "seed": args.seed,
                "lesions": lesions,
                "data": str(args.data),
                "rows": rows,
                "chosen": chosen,
            },
            indent=2,
        )
        + "\n"  # fmt: skip
    )
    lines = ["| run | step | synthetic AUROC | synthetic AUPRC | Dice @1 % FPR | chosen |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {Path(r['run']).name} | {r['step']} | {r['auroc']:.3f} | {r['auprc']:.3f} | "
        f"{r['dice_fpr1']:.3f} | {'yes' if chosen[r['run']] == r['step'] else ''} |"
        for r in rows
    ]
    (out / "select.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Builds the pretrained atlas detector from ../shared/data and measures it end to end.

The run: the voxel atlas (histogram matching) of IXI T1 subjects 11-110 (sorted by id), its
detector fitted on subjects 111-120 with per-scan scores (``jaxuad-detect --fit
--per-scan --no-n4``: the IXI scans it learned from were not bias-corrected, and with N4 the
ten ``ixi-native`` scans had 3.2 % of their brain flagged, 0.6 % without). The first ten IXI
subjects are left out of both, because ``ixi-native/`` holds them as acquired:
``jaxuad-detect`` on those ten (affine registration onto the run's template, the atlas, back
onto each scan's grid) measures the
false-positive rate the 1 % threshold realises after preprocessing, inside each scan's own
brain mask. ``jaxuad-detect`` on the three MSLUB patients (already on the grid) gives the
Dice per patient, and again on the same patients moved off the grid by a known random
rotation (up to 10 degrees about each axis), shift (up to 5 mm) and voxel size (1-1.5 mm
in-plane, 1-2.5 mm across), in the moved space: the Dice should not change.
Writes the run to ``WORK/run/`` with its ``MODEL_CARD.md``, and
``pretrained.json``, ``pretrained.md``, ``MODEL_CARD.md`` and ``commands.sh`` to ``OUT``
(default ``results/<date>-<commit>/pretrained``); with ``--install`` the run is installed as
``atlas-ixi-t1`` (``jaxuad-detect --workdir atlas-ixi-t1``), with ``--wheel`` it is also
packed into the companion wheel ``jaxuad_models_atlas_ixi_t1`` (3.1 MB; CC BY-SA 3.0 like
the IXI data) that ``pip install`` makes known by name on any machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks import CommandLog
from jaxuad import metrics
from jaxuad.data import discover
from jaxuad.data.dataset import write_manifest
from jaxuad.data.synthetic import moved_grid, resample
from jaxuad.reproduce.runner import default_results, git_commit

SHARED = Path("../shared/data")

CARD = """# jaxuad pretrained detector: voxel atlas, IXI T1, 2 mm MNI

- **What**: per-voxel mean and standard deviation of {n_train} healthy T1 scans after
  histogram matching to their cohort (`jaxuad-train --model atlas --set
  data.histogram_match=true`); the score is each scan's negative z-score, standardised by
  its own median and spread (`--per-scan`); thresholds fitted on {n_fit} other healthy
  scans (`jaxuad-detect --fit --per-scan`, post-processing in mm, negative residuals).
- **Data**: IXI T1 (Imperial College London, brain-development.org/ixi-dataset), subjects
  {train_ids} by sorted id for the atlas and {fit_ids} for the thresholds, skull-stripped
  and affinely registered to MNI152 (ICBM 2009a) at the FSL 2 mm grid (91x109x91).
- **Input**: T1 scans as acquired (`jaxuad-detect` brings them onto the grid by affine
  registration to this run's template, without N4, as the IXI scans were, and back) or
  already on this grid with a brain mask.
- **Measured** (commit {commit}, `bin/build-pretrained`): on the ten `ixi-native` scans as
  acquired (healthy, never seen), the 1 % threshold flags {native_fpr:.2%} of brain voxels
  (mean; highest {native_max:.2%}); on three MSLUB MS patients (T1), Dice {dice:.3f} at that
  threshold ({dice_each}). T1 is the hard contrast for MS lesions; this is a baseline, not
  a diagnostic tool.
- **Licence**: derived from IXI, so CC BY-SA 3.0, like the data ("This work uses data from
  the IXI dataset"). Not for clinical use.
"""


def move_patients(src: Path, dst: Path, seed: int = 0) -> Path:
    """The MSLUB T1 scans and brain masks resampled onto randomly moved grids
    (:func:`jaxuad.data.synthetic.moved_grid`) into ``dst``, their lesion masks beside it in
    ``<dst>-truth`` (where the detector does not look). Returns ``dst``."""
    truth = dst.parent / "mslub-moved-truth"
    dst.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for s in sorted(discover(src, "T1w"), key=lambda s: s.id):
        img = nib.load(s.image)
        shape, affine = moved_grid(img.shape, img.affine, rng.uniform(-10, 10, 3),
                                   rng.uniform(-5, 5, 3),
                                   [*rng.uniform(1.0, 1.5, 2), rng.uniform(1.0, 2.5)])  # fmt: skip
        for path, order, folder in ((s.image, 1, dst), (s.brainmask, 0, dst),
                                    (s.lesion, 0, truth)):  # fmt: skip
            part = Path(path).name.split("_")[-1]
            data = resample(nib.load(path).get_fdata(), img.affine, shape, affine, order)
            out = data if order else (data > 0.5).astype(np.uint8)
            nib.save(nib.Nifti1Image(out, affine), folder / f"sub-{s.id}_{part}")
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=SHARED, help="data folder")
    p.add_argument("--work", type=Path, default=Path("work/pretrained"), help="scratch folder")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument("--install", action="store_true",
                   help="install the run as atlas-ixi-t1 (jaxuad-models)")
    p.add_argument("--wheel", type=Path, nargs="?", const=Path("dist"), default=None,
                   metavar="DIR", help="also build the companion wheel "
                   "jaxuad_models_atlas_ixi_t1 into DIR (default dist/): pip install it "
                   "anywhere to use the run by name")  # fmt: skip
    args = p.parse_args(argv)
    out = args.out or default_results() / "pretrained"
    out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    sh = CommandLog(out / "commands.sh", f"jaxuad pretrained atlas, commit {git_commit()}")
    ixi = sorted(discover(args.shared / "ixi", "T1w"), key=lambda s: s.id)
    train, fit = ixi[10:110], ixi[110:120]
    run = args.work / "run"  # the run itself stays out of git (3 MB of binaries)
    q = "--no-progress"
    train_csv, fit_csv = (write_manifest(ss, args.work / f"{name}.csv")
                          for ss, name in ((train, "train"), (fit, "fit")))  # fmt: skip
    sh("jaxuad-train", "--model", "atlas", "--data", str(train_csv),
       "--modality", "T1w", "--workdir", str(run), "--set", "data.histogram_match=true", q,
       done=(run / "atlas.npz").is_file())  # fmt: skip
    sh("jaxuad-detect", "--fit", "--workdir", str(run), "--data",
       str(fit_csv), "--per-scan", "--no-n4", "--set",
       "evaluate.residual_sign=negative", q, done=(run / "detector.json").is_file())  # fmt: skip
    native, mslub = args.work / "native", args.work / "mslub"
    moved = move_patients(args.shared / "mslub", args.work / "mslub-moved-scans")
    for data, dst in ((args.shared / "ixi-native", native), (args.shared / "mslub", mslub),
                      (moved, args.work / "mslub-moved")):  # fmt: skip
        sh("jaxuad-detect", "--workdir", str(run), "--data", str(data), "--out", str(dst),
           "--overwrite", q)  # fmt: skip

    fprs = {}
    for s in json.loads((native / "detect.json").read_text())["subjects"]:
        brain = nib.load(args.shared / "ixi-native" / f"sub-{s['subject']}_brainmask.nii.gz")
        brain = np.asarray(brain.dataobj) > 0
        seg = np.asarray(nib.load(native / s["files"]["lesions"]).dataobj) > 0
        fprs[s["subject"]] = float((seg & brain).sum() / brain.sum())
    dice = {}
    for s in json.loads((mslub / "detect.json").read_text())["subjects"]:
        truth = nib.load(args.shared / "mslub" / f"sub-{s['subject']}_lesion.nii.gz")
        seg = np.asarray(nib.load(mslub / s["files"]["lesions"]).dataobj) > 0
        dice[s["subject"]] = metrics.dice(seg, np.asarray(truth.dataobj) > 0)
    dice_moved = {}
    for s in json.loads((args.work / "mslub-moved" / "detect.json").read_text())["subjects"]:
        truth = nib.load(moved.parent / "mslub-moved-truth" / f"sub-{s['subject']}_lesion.nii.gz")
        seg = np.asarray(nib.load(args.work / "mslub-moved" / s["files"]["lesions"]).dataobj)
        dice_moved[s["subject"]] = metrics.dice(seg > 0, np.asarray(truth.dataobj) > 0.5)
    result = {
        "commit": git_commit(),
        "native_fpr": fprs,
        "native_fpr_mean": float(np.mean(list(fprs.values()))),
        "mslub_dice": dice,
        "mslub_dice_mean": float(np.mean(list(dice.values()))),
        "mslub_moved_dice": dice_moved,
        "mslub_moved_dice_mean": float(np.mean(list(dice_moved.values()))),
        "seconds_native": json.loads((native / "detect.json").read_text())["seconds"],
    }
    (out / "pretrained.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = ["| scans | measure | value |", "|---|---|---|"]
    rows += [f"| ixi-native {k} (healthy, as acquired) | brain voxels flagged | {v:.2%} |"
             for k, v in fprs.items()]  # fmt: skip
    rows += [f"| MSLUB {k} | Dice at the 1 % threshold: on the grid, moved off it | "
             f"{v:.3f}, {dice_moved[k]:.3f} |" for k, v in dice.items()]  # fmt: skip
    (out / "pretrained.md").write_text("\n".join(rows) + "\n")
    ids = lambda ss: f"{ss[0].id}-{ss[-1].id}"  # noqa: E731
    card = CARD.format(
        n_train=len(train), n_fit=len(fit), train_ids=ids(train), fit_ids=ids(fit),
        commit=result["commit"], native_fpr=result["native_fpr_mean"],
        native_max=max(fprs.values()), dice=result["mslub_dice_mean"],
        dice_each=", ".join(f"{k} {v:.3f}" for k, v in dice.items()),
    )  # fmt: skip
    (run / "MODEL_CARD.md").write_text(card)
    (out / "MODEL_CARD.md").write_text(card)
    print("\n".join(rows))
    if args.install:
        from jaxuad.pretrained import install

        print(f"installed as atlas-ixi-t1: {install(run, 'atlas-ixi-t1', overwrite=True)}")
    if args.wheel is not None:
        from jaxuad.pretrained import package_run

        wheel = package_run(run, "atlas-ixi-t1", args.wheel, version="1.0",
                            licence="CC-BY-SA-3.0")  # fmt: skip
        print(f"companion wheel: {wheel} ({wheel.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

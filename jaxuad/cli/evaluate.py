"""jaxuad-evaluate: post-process residuals, threshold on healthy data, report metrics."""

from __future__ import annotations

from jaxuad.cli._common import add_modality, add_overrides, add_progress, add_space, parser, run
from jaxuad.config import EvaluateConfig, override

EPILOG = """\
thresholds (fitted on healthy data only, over eroded brain-mask voxels):
  percentile   evaluate.percentile-th percentile of healthy residuals (Baur; default 98)
  fpr<x>       smallest threshold whose healthy false-positive rate is <= x %, for each x
               in evaluate.fpr_levels (Chen; default 0.1 0.5 1 5)

outputs (in --out):
  metrics.json                every number, with settings, thresholds and timings, and the
                              ceiling: the lesion masks through the same post-processing
  thresholds.json             the fitted thresholds and their source (reuse: --thresholds)
  report.md                   tables in Baur's and Chen's layouts, every threshold, subjects
  histogram.png               residuals of normal and lesion voxels (Baur Fig. 6)
  roc_pr.png                  ROC and precision-recall curves
  dice_threshold.png          Dice against threshold, healthy-fitted thresholds marked
  sub-<id>_panel.png          input | restoration | filtered residual | segmentation vs truth
  sub-<id>_filtered.nii.gz    post-processed residual, on the input grid
  sub-<id>_seg.nii.gz         binary segmentation at evaluate.seg_threshold

post-processing settings (--set evaluate.KEY=VALUE):
  units=mm (mm|voxels)  median_mm=5  erosion_mm=3  min_component_mm3=6: Baur's physical
    sizes, converted per scan from its voxel size; with units=voxels: median_size=5
    erosion_iterations=3  min_component_size=6 (the paper's voxels)  connectivity=26 (6|26)
  percentile=98  fpr_levels=0.1,0.5,1,5  seg_threshold=percentile (or fpr<x>)
  residual_sign=both (both|positive: scan brighter than restoration, hyperintense lesions
    on FLAIR/T2|negative: darker, hypointense on T1)  hyperintensity_quantile=0 (off)
  backend=jax (jax|scipy)  components=auto (auto|jax|scipy; auto: JAX, SciPy where JAX fails)

example:
  jaxuad-evaluate --pred pred/lesion --data phantom/lesion --healthy pred/healthy --out report/
"""


def main(argv: list[str] | None = None) -> int:
    p = parser("jaxuad-evaluate", "Evaluate residual maps against lesion masks.")
    p.epilog = EPILOG
    p.add_argument("--pred", required=True, help="jaxuad-restore output for the test scans")
    p.add_argument(
        "--data",
        required=True,
        help="the test scans (folder or manifest) with sub-<id>_lesion masks",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--healthy",
        help="jaxuad-restore output for healthy scans, on which the thresholds are fitted",
    )
    source.add_argument(
        "--thresholds",
        help="thresholds.json of an earlier evaluation (same post-processing settings), "
        "instead of fitting on --healthy",
    )
    p.add_argument("--out", required=True, help="report folder (created if missing)")
    add_modality(p, "image contrast of --data (default: from pred/restore.json)")
    add_overrides(p, "evaluate.KEY=VALUE", "override a post-processing setting (see below)")
    p.add_argument(
        "--devices",
        type=int,
        default=None,
        metavar="N",
        help="filter volumes on N devices at once, one each (default: every visible device)",
    )
    add_space(p, "the volumes on the grid of --data; native and both write them there too")
    add_progress(p)
    args = p.parse_args(argv)

    from jaxuad.config import Config
    from jaxuad.evaluate import evaluate
    from jaxuad.report import write_report

    cfg = override(Config(evaluate=EvaluateConfig()), args.overrides).evaluate
    m = evaluate(
        args.pred,
        args.data,
        args.out,
        cfg,
        healthy=args.healthy,
        thresholds=args.thresholds,
        modality=args.modality,
        progress=not args.no_progress,
        devices=args.devices,
        space=args.space,
    )
    write_report(args.out, m)
    print(
        f"Dice {m.dice_mean:.4f} ± {m.dice_std:.4f} at {m.seg_threshold}  "
        f"AUROC {m.auroc:.4f}  AUPRC {m.auprc:.4f}  ({m.n_subjects} subjects)"
    )
    print(f"report: {args.out}/report.md")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

"""jaxuad-evaluate: post-process residuals, threshold on healthy data, report metrics."""

from __future__ import annotations

from jaxuad.cli._common import add_modality, add_overrides, add_progress, parser, run
from jaxuad.config import EvaluateConfig, override

EPILOG = """\
outputs (in --out):
  metrics.json                every number, with settings and the fitted threshold
  report.md                   Baur-style table: Dice mean ± std, AUROC, AUPRC, time per slice
  sub-<id>_panel.png          input | restoration | filtered residual | segmentation vs truth
  sub-<id>_filtered.nii.gz    post-processed residual, on the input grid
  sub-<id>_seg.nii.gz         binary segmentation at the healthy-fitted threshold

example:
  jaxuad-evaluate --pred pred/lesion --data phantom/lesion --healthy pred/healthy --out report/
"""


def main() -> int:
    p = parser("jaxuad-evaluate", "Evaluate residual maps against lesion masks.")
    p.epilog = EPILOG
    p.add_argument("--pred", required=True, help="jaxuad-restore output for the test scans")
    p.add_argument(
        "--data",
        required=True,
        help="the test scans (folder or manifest) with sub-<id>_lesion masks",
    )
    p.add_argument(
        "--healthy",
        required=True,
        help="jaxuad-restore output for healthy scans; the threshold is the "
        "evaluate.percentile-th percentile of their post-processed residuals",
    )
    p.add_argument("--out", required=True, help="report folder (created if missing)")
    add_modality(p, "image contrast of --data (default: from pred/restore.json)")
    add_overrides(
        p,
        "evaluate.KEY=VALUE",
        "override post-processing: median_size, erosion_iterations, "
        "min_component_size, connectivity (6|26), percentile",
    )
    add_progress(p)
    args = p.parse_args()

    from jaxuad.config import Config
    from jaxuad.evaluate import evaluate

    cfg = override(Config(evaluate=EvaluateConfig()), args.overrides).evaluate
    m = evaluate(
        args.pred,
        args.data,
        args.healthy,
        args.out,
        cfg,
        modality=args.modality,
        progress=not args.no_progress,
    )
    s = m["summary"]
    print(
        f"Dice {s['dice_mean']:.4f} ± {s['dice_std']:.4f}  AUROC {s['auroc']:.4f}  "
        f"AUPRC {s['auprc']:.4f}  ({s['n_subjects']} subjects)"
    )
    print(f"report: {args.out}/report.md")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":
    entry()

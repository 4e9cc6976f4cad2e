"""Reports of evaluations: Markdown tables (:mod:`~jaxuad.report.tables`) and figures
(:mod:`~jaxuad.report.figures`), drawn after scoring from an
:class:`~jaxuad.evaluate.EvalResult` and the files the evaluation wrote."""

from __future__ import annotations

import functools
from pathlib import Path

from jaxuad.data import read_on_grid
from jaxuad.data.nifti import write_text
from jaxuad.evaluate import EvalResult
from jaxuad.evaluate.folder import read_inputs, read_restoration_info
from jaxuad.report.figures import (
    cohort_figures,
    dice_chart,
    phantom_figure,
    residual_gallery,
    sample_grid,
    ssim_lambda_figure,
    subject_panel,
)
from jaxuad.report.tables import baur_table, chen_table, compare_markdown, markdown

__all__ = [
    "baur_table",
    "chen_table",
    "cohort_figures",
    "compare_markdown",
    "dice_chart",
    "markdown",
    "phantom_figure",
    "residual_gallery",
    "sample_grid",
    "ssim_lambda_figure",
    "subject_panel",
    "write_report",
]


def write_report(out, result: EvalResult) -> None:
    """Draws an evaluation's figures and writes its ``report.md`` into ``out``.

    ``out`` is the folder :func:`jaxuad.evaluate.evaluate` wrote ``result`` to: each
    subject's panel (``sub-<id>_panel.png``: input, restoration, post-processed residual,
    segmentation against the lesion mask) is drawn from the files there and in the
    restoration folder; the cohort figures need ``result.histogram`` (kept in memory by
    :func:`~jaxuad.evaluate.evaluate`, not in ``metrics.json``) and are skipped without it.
    """
    out = Path(out)
    info = read_restoration_info(result.pred)
    vmax = 2 * result.at_threshold[result.seg_threshold].threshold
    inputs = read_inputs(
        result.pred, result.data, result.modality, info.normalization if info else "minmax"
    )
    for v, _, shown, restored, _ in inputs:
        sid = v.subject
        read = functools.partial(
            read_on_grid, shape=v.image.shape, affine=v.affine, ref_name=f"sub-{sid}'s scan"
        )
        subject_panel(
            out / f"sub-{sid}_panel.png",
            f"sub-{sid}",
            shown,
            restored,
            read(out / f"sub-{sid}_filtered.nii.gz"),
            read(out / f"sub-{sid}_seg.nii.gz") > 0.5,
            v.lesion,
            vmax,
        )
    if result.histogram is not None:
        cohort_figures(out, result)
    write_text(markdown(result), out / "report.md")

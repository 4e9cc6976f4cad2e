"""Reports of evaluations: Markdown tables (:mod:`~jaxuad.report.tables`) and figures
(:mod:`~jaxuad.report.figures`), drawn after scoring from an
:class:`~jaxuad.evaluate.EvalResult` and what it holds in memory."""

from __future__ import annotations

from pathlib import Path

from jaxuad.core.io import write_text
from jaxuad.evaluate import EvalResult
from jaxuad.report.figures import (
    calibration_figure,
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
    "calibration_figure",
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

    Everything is drawn from ``result`` as :func:`jaxuad.evaluate.evaluate` returns it: each
    subject's panel (``sub-<id>_panel.png``: input, restoration, post-processed residual,
    segmentation against the lesion mask) from ``result.views``, the cohort figures from
    ``result.histogram``. Both are kept in memory, not in ``metrics.json``: a result read
    back from disk writes ``report.md`` alone.
    """
    out = Path(out)
    vmax = 2 * result.at_threshold[result.seg_threshold].threshold
    for sid, view in (result.views or {}).items():
        subject_panel(out / f"sub-{sid}_panel.png", f"sub-{sid}", view, vmax)
    if result.histogram is not None:
        cohort_figures(out, result)
    write_text(markdown(result), out / "report.md")

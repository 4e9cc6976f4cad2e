"""Evaluation: residuals -> post-processing -> healthy-fitted thresholds -> scores.

* :mod:`~jaxuad.evaluate.thresholds`: :func:`fit_thresholds` (arrays),
  :func:`fit_thresholds_on_folder`, :func:`load_thresholds`;
* :mod:`~jaxuad.evaluate.score`: :func:`score` (arrays) and :class:`Scorer` give an
  :class:`EvalResult` (``metrics.json``, typed);
* :mod:`~jaxuad.evaluate.folder`: :func:`evaluate`, the ``jaxuad-evaluate`` pipeline on
  restoration folders (NIfTI and JSON out; figures are :func:`jaxuad.report.write_report`).
"""

from jaxuad.evaluate.folder import evaluate
from jaxuad.evaluate.score import (
    Ceiling,
    EvalResult,
    Scorer,
    SubjectScores,
    SubjectView,
    ThresholdScores,
    score,
)
from jaxuad.evaluate.thresholds import (
    fit_thresholds,
    fit_thresholds_on_folder,
    load_thresholds,
    threshold_names,
)

__all__ = [
    "Ceiling",
    "EvalResult",
    "Scorer",
    "SubjectScores",
    "SubjectView",
    "ThresholdScores",
    "evaluate",
    "fit_thresholds",
    "fit_thresholds_on_folder",
    "load_thresholds",
    "score",
    "threshold_names",
]

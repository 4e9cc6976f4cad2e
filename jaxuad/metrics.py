"""Segmentation and detection metrics, computed inside the brain mask.

Definitions follow the papers: Dice per subject then mean +- std across subjects (Baur et
al. 2018); voxel-level AUROC and AUPRC pooled over the cohort (Chen et al. 2019).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2|P & T| / (|P| + |T|). Both empty is a perfect answer: 1.0 by definition."""
    p, t = pred.astype(bool), truth.astype(bool)
    denom = p.sum() + t.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(p, t).sum() / denom)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties
    counting 1/2 (the Mann-Whitney U statistic over n_pos * n_neg). NaN if a class is absent.
    """
    scores, labels = np.ravel(scores), np.ravel(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(scores)  # average ranks handle ties
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision: sum over distinct thresholds of (R_k - R_{k-1}) * P_k, scores
    descending, tied scores entering together. NaN if there are no positives."""
    scores, labels = np.ravel(scores), np.ravel(labels).astype(bool)
    n_pos = labels.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # end of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def percentile_threshold(healthy_values: np.ndarray, percentile: float) -> float:
    """Baur's threshold: the given percentile of residuals over healthy brain voxels."""
    if healthy_values.size == 0:
        raise ValueError("no healthy brain voxels to fit a threshold on")
    return float(np.percentile(healthy_values, percentile))

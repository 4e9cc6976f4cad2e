"""Segmentation and detection metrics, computed inside the brain mask.

Definitions follow the papers: Dice per subject then mean +- std across subjects (Baur et
al. 2018); voxel-level AUROC and AUPRC pooled over the cohort (Chen et al. 2019).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxuad.postprocess.bits import from_sortable_keys, sortable_keys


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


def fpr_threshold(healthy_values: np.ndarray, max_fpr_percent: float) -> float:
    """Chen's threshold: the smallest tau with FPR(tau) = #{v > tau} / n <= x % on healthy
    brain voxels. With m = floor(x/100 * n), that is the (m+1)-th largest value: at most m
    values exceed it, and any smaller tau lets it through as well."""
    v = np.ravel(healthy_values)
    if v.size == 0:
        raise ValueError("no healthy brain voxels to fit a threshold on")
    if not 0 <= max_fpr_percent < 100:
        raise ValueError(f"FPR level must be in [0, 100) percent, got {max_fpr_percent}")
    m = int(np.floor(max_fpr_percent / 100.0 * v.size + 1e-9))
    return float(-np.partition(-v, m)[m])


def false_positive_rate(negative_values: np.ndarray, threshold: float) -> float:
    """Fraction of (negative) values flagged by ``value > threshold``."""
    return float(np.mean(np.ravel(negative_values) > threshold))


def best_dice(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Exact oracle: max over thresholds of pooled voxel Dice for ``score >= t``, and that t
    (sort based, for tests and small data; see :class:`CohortHistogram` for cohorts)."""
    scores, labels = np.ravel(scores), np.ravel(labels).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    dice = 2 * tp / (last + 1 + labels.sum())
    k = int(np.argmax(dice))
    return float(dice[k]), float(s[last[k]])


# --- Cohort metrics from histograms: memory fixed by the number of bins, not voxels. ---
#
# Bins are the top 32 - HIST_SHIFT bits of each float's order-preserving key
# (jaxuad.postprocess.bits.sortable_keys): 2**20 bins covering every float32, each
# 2**-11 (0.05 %) of its values wide, so no range has to be known in advance and
# histograms of any subjects merge by addition. Voxels in one bin count as tied.

HIST_SHIFT = 12
N_BINS = 2 ** (32 - HIST_SHIFT)


@jax.jit
def histogram(scores: jax.Array, lesion: jax.Array, brainmask: jax.Array) -> jax.Array:
    """[2, N_BINS] int32 counts of brain-mask voxels: row 0 normal, row 1 lesion."""
    # Subnormals and -0.0 become +0.0, so the zero bin holds exactly one value (residuals
    # are often exactly 0, e.g. outside the eroded mask) and its ties are exact.
    scores = jnp.where(jnp.abs(scores) < jnp.finfo(jnp.float32).tiny, 0.0, scores)
    bins = (sortable_keys(scores) >> HIST_SHIFT).astype(jnp.int32).ravel()
    row = lesion.astype(bool).ravel().astype(jnp.int32)
    counts = jnp.zeros(2 * N_BINS, jnp.int32)
    counts = counts.at[row * N_BINS + bins].add(brainmask.astype(jnp.int32).ravel())
    return counts.reshape(2, N_BINS)


@functools.cache
def bin_lower_edges() -> np.ndarray:
    """The smallest float32 in each histogram bin (bins in increasing value order; the
    bins at both ends hold infinities and NaN patterns, never finite inputs)."""
    keys = np.arange(N_BINS, dtype=np.uint32) << np.uint32(HIST_SHIFT)
    with np.errstate(invalid="ignore"):  # the NaN patterns at the top
        edges = np.asarray(from_sortable_keys(jnp.asarray(keys)), np.float64)
    edges.flags.writeable = False
    return edges


class CohortHistogram:
    """Normal and lesion voxel counts per bin, merged over subjects (int64 on the host)."""

    def __init__(self):
        self.counts = np.zeros((2, N_BINS), np.int64)

    def add(self, counts) -> None:
        """Merges one subject's [2, N_BINS] counts (:func:`histogram`)."""
        self.counts += np.asarray(counts, np.int64)

    @property
    def n_neg(self) -> int:
        """Normal brain voxels counted."""
        return int(self.counts[0].sum())

    @property
    def n_pos(self) -> int:
        """Lesion voxels counted."""
        return int(self.counts[1].sum())

    def _descending(self):
        """Non-empty bins from the highest value down: lower edges, neg, pos, cumulative
        fp and tp for ``score >= edge``."""
        nz = np.flatnonzero(self.counts.sum(0))[::-1]
        neg, pos = self.counts[0, nz], self.counts[1, nz]
        return bin_lower_edges()[nz], neg, pos, np.cumsum(neg), np.cumsum(pos)

    def auroc(self) -> tuple[float, float]:
        """(AUROC, bound): ties within a bin count 1/2, so the exact AUROC lies within
        ``bound`` = sum_b pos_b neg_b / (2 P N) of the value, summed over bins that can
        hold distinct values (all but the zero bin). NaN if a class is absent."""
        p, n = self.n_pos, self.n_neg
        if p == 0 or n == 0:
            return float("nan"), float("nan")
        edges, neg, pos, fp, _ = self._descending()
        neg_below = n - fp  # negatives in lower bins
        auc = np.sum(pos * (neg_below + 0.5 * neg)) / (p * n)
        mixed = edges != 0.0
        return float(auc), float(0.5 * np.sum((pos * neg)[mixed]) / (p * n))

    def auprc(self) -> float:
        """Average precision with each bin as one tie group (= :func:`auprc` when no two
        distinct values share a bin)."""
        if self.n_pos == 0:
            return float("nan")
        _, _, pos, fp, tp = self._descending()
        precision = tp / np.maximum(tp + fp, 1)
        return float(np.sum(pos / self.n_pos * precision))

    def curves(self) -> dict[str, np.ndarray]:
        """Per non-empty bin, for ``score >= threshold``: threshold, tpr, fpr, precision, dice
        (pooled over voxels, before component removal)."""
        edges, _, _, fp, tp = self._descending()
        p, n = max(self.n_pos, 1), max(self.n_neg, 1)
        return {
            "threshold": edges,
            "tpr": tp / p,
            "fpr": fp / n,
            "precision": tp / np.maximum(tp + fp, 1),
            "dice": 2 * tp / (tp + fp + self.n_pos),
        }

    def best_dice(self) -> tuple[float, float]:
        """Oracle: the best pooled voxel Dice over thresholds chosen on this (test) data,
        and the threshold (``score >= t``). Not a fair estimate; report it as oracle."""
        if self.n_pos == 0:
            return float("nan"), float("nan")
        c = self.curves()
        k = int(np.argmax(c["dice"]))
        return float(c["dice"][k]), float(c["threshold"][k])

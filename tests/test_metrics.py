import itertools

import numpy as np
import pytest

from jaxuad import metrics as M


def brute_auroc(scores, labels):
    pos, neg = scores[labels], scores[~labels]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_average_precision(scores, labels):
    """sum over distinct thresholds t (descending) of (R(t) - R(prev)) * P(t)."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        recall = (pred & labels).sum() / labels.sum()
        ap += (recall - prev_recall) * (pred & labels).sum() / pred.sum()
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_auprc_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    labels = rng.uniform(size=40) < 0.3
    assert M.auroc(scores, labels) == pytest.approx(brute_auroc(scores, labels))
    assert M.auprc(scores, labels) == pytest.approx(brute_average_precision(scores, labels))


def test_auroc_extremes():
    labels = np.array([0, 0, 1, 1], bool)
    assert M.auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert M.auroc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert M.auroc(np.ones(4), labels) == 0.5
    assert np.isnan(M.auroc(np.ones(4), np.zeros(4, bool)))


def test_dice_edge_cases():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert M.dice(empty, empty) == 1.0  # documented: nothing to find, nothing found
    assert M.dice(full, empty) == 0.0 and M.dice(empty, full) == 0.0
    half = full.copy()
    half[0] = False
    assert M.dice(half, full) == pytest.approx(2 * 6 / (6 + 9))


def test_percentile_threshold():
    values = np.arange(101, dtype=float)
    assert M.percentile_threshold(values, 98) == pytest.approx(98.0)
    with pytest.raises(ValueError):
        M.percentile_threshold(np.array([]), 98)


@pytest.mark.parametrize("level", [0.1, 0.5, 1.0, 5.0])
def test_fpr_threshold_is_the_smallest_that_keeps_the_rate(level):
    rng = np.random.default_rng(int(level * 10))
    values = np.round(rng.exponential(size=5000), 2)  # many ties
    tau = M.fpr_threshold(values, level)
    assert M.false_positive_rate(values, tau) <= level / 100
    below = np.max(values[values < tau])  # the next smaller candidate
    assert M.false_positive_rate(values, below) > level / 100
    assert tau in values


def test_fpr_threshold_edge_cases():
    assert M.fpr_threshold(np.array([3.0, 1.0, 2.0]), 0.0) == 3.0  # nothing may exceed it
    with pytest.raises(ValueError):
        M.fpr_threshold(np.array([]), 1.0)
    with pytest.raises(ValueError):
        M.fpr_threshold(np.ones(3), 100.0)


def _cohort(seed, distinct_bins):
    rng = np.random.default_rng(seed)
    subjects = []
    for _ in range(3):
        shape = (6, 7, 5)
        lesion = rng.uniform(size=shape) < 0.15
        scores = rng.gamma(2.0, 0.1, shape) + 0.15 * lesion
        if distinct_bins:  # multiples of 1/64: exact floats, each value in its own bin
            scores = np.round(scores * 64) / 64
        brain = rng.uniform(size=shape) < 0.9
        subjects.append((scores.astype(np.float32), lesion, brain))
    return subjects


@pytest.mark.parametrize("distinct_bins", [True, False])
def test_histogram_metrics_match_exact_ones(distinct_bins):
    """Cohort metrics from merged per-subject histograms against sort-based exact ones.

    Tolerance: none when no two distinct values share a bin; otherwise the AUROC is within
    the tie bound the histogram reports itself, and AUPRC / oracle Dice within 1e-3 (bins
    are 2**-11 of their values wide)."""
    subjects = _cohort(0, distinct_bins)
    hist = M.CohortHistogram()
    for scores, lesion, brain in subjects:
        hist.add(M.histogram(scores, lesion, brain))
    scores = np.concatenate([s[b] for s, _, b in subjects])
    labels = np.concatenate([les[b] for _, les, b in subjects])
    assert hist.n_pos == labels.sum() and hist.n_neg == (~labels).sum()
    auc, bound = hist.auroc()
    dice, tau = hist.best_dice()
    exact_dice, exact_tau = M.best_dice(scores, labels)
    if distinct_bins:
        assert auc == pytest.approx(M.auroc(scores, labels), abs=1e-12)
        assert hist.auprc() == pytest.approx(M.auprc(scores, labels), abs=1e-12)
        assert (dice, tau) == pytest.approx((exact_dice, exact_tau), abs=1e-12)
    else:
        assert abs(auc - M.auroc(scores, labels)) <= bound + 1e-12
        assert bound < 1e-3
        assert hist.auprc() == pytest.approx(M.auprc(scores, labels), abs=1e-3)
        assert dice == pytest.approx(exact_dice, abs=1e-3)


def test_histogram_bins_cover_negative_values_in_order():
    edges = M.bin_lower_edges()
    finite = edges[np.isfinite(edges)]
    assert np.all(np.diff(finite) > 0) and finite[0] < -1e38 and finite[-1] > 1e38
    values = np.array([-2.0, -1.0, 0.0, 1.0], np.float32)
    h = np.asarray(M.histogram(values, np.zeros(4, bool), np.ones(4, bool)))
    nz = np.flatnonzero(h[0])
    assert len(nz) == 4
    assert np.all(edges[nz] <= values) and np.all(values < edges[nz + 1])


def test_best_dice_exact():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    labels = np.array([1, 1, 0, 0], bool)
    assert M.best_dice(scores, labels) == (1.0, 0.8)


def test_fit_thresholds_on_arrays_against_brute_force():
    """Thresholds fitted on in-memory volumes of different shapes: with the median filter and
    the erosion off, the percentile is numpy's over the brain voxels of all volumes, and each
    FPR threshold the smallest value that leaves at most x % of them above it."""
    from jaxuad.config import EvaluateConfig
    from jaxuad.evaluate import fit_thresholds

    rng = np.random.default_rng(3)
    shapes = [(10, 12, 9), (8, 8, 8)]
    residuals = [rng.gamma(2.0, size=s).astype(np.float32) for s in shapes]
    masks = [rng.uniform(size=s) < 0.6 for s in shapes]
    cfg = EvaluateConfig(units="voxels", median_size=1, erosion_iterations=0, fpr_levels=(1.0, 5.0))
    fitted = fit_thresholds(residuals, masks, cfg)
    values = np.concatenate([r[m] for r, m in zip(residuals, masks, strict=True)])
    t = fitted["thresholds"]
    assert fitted["n_voxels"] == values.size and fitted["n_subjects"] == 2
    np.testing.assert_allclose(t["percentile"]["value"], np.percentile(values, 98.0), rtol=1e-6)
    for x in (1.0, 5.0):
        tau = t[f"fpr{x:g}"]["value"]
        assert np.mean(values > tau) <= x / 100  # the rate is kept ...
        assert np.mean(values >= tau) > x / 100  # ... and no smaller candidate keeps it
    with pytest.raises(ValueError, match="masks: 1 given for 2 residuals"):
        fit_thresholds(residuals, masks[:1], cfg)

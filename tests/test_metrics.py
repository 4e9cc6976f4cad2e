import itertools

import numpy as np
import pytest
from scipy import ndimage

from jaxuad import metrics as M
from jaxuad import postprocess as P
from jaxuad.config import EvaluateConfig


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


@pytest.mark.parametrize("connectivity", [6, 26])
def test_small_components_removed(connectivity):
    seg = np.zeros((12, 12, 12), bool)
    seg[1:3, 1:3, 1:3] = True  # 8 voxels: kept
    seg[6, 6, 6] = seg[7, 7, 7] = True  # diagonal pair: 2 components (6) or 1 of 2 (26)
    seg[9:11, 9, 9] = True  # 2 voxels
    seg[0, 11, 0:5] = True  # 5 voxels touching the border: removed at min 6
    out = P.remove_small_components(seg, 6, connectivity)
    expected = np.zeros_like(seg)
    expected[1:3, 1:3, 1:3] = True
    np.testing.assert_array_equal(out, expected)
    assert P.remove_small_components(seg, 2, connectivity)[6, 6, 6] == (connectivity == 26)


def test_filter_residual_matches_scipy_pipeline():
    rng = np.random.default_rng(0)
    residual = rng.uniform(size=(20, 22, 18)).astype(np.float32)
    mask = np.zeros(residual.shape, bool)
    mask[3:17, 3:19, 3:15] = True
    cfg = EvaluateConfig(median_size=5, erosion_iterations=2)
    expected = ndimage.median_filter(residual, 5) * ndimage.binary_erosion(
        mask, ndimage.generate_binary_structure(3, 1), iterations=2
    )
    np.testing.assert_allclose(P.filter_residual(residual, mask, cfg), expected)

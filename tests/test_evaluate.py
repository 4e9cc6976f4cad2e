"""Every figure of an evaluation against a brute-force computation written here (issue 27).

A small synthetic cohort with known residuals and lesions: an empty lesion mask, a subject
without a lesion mask, one whose segmentation is empty, one-voxel lesions, residuals on a
coarse grid of values (so thresholds fall on ties). The reference post-processes with
scipy.ndimage directly, thresholds by scanning every candidate value, and scores with
NumPy set counts and scikit-learn's AUROC and average precision.
"""

import dataclasses
import json

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from jaxuad.config import EvaluateConfig
from jaxuad.evaluate import EvalResult, fit_thresholds, score

SHAPE = (18, 20, 16)
CFG = EvaluateConfig(
    units="voxels",
    median_size=3,
    erosion_iterations=1,
    min_component_size=3,
    connectivity=26,
    percentile=90.0,
    fpr_levels=(1.0, 5.0),
    seg_threshold="fpr5",
)
STRUCT = ndimage.generate_binary_structure(3, 3)  # 26-connectivity


def _brain(rng) -> np.ndarray:
    x, y, z = np.indices(SHAPE)
    c = np.array(SHAPE) / 2 + rng.uniform(-1, 1, 3)
    return ((x - c[0]) / 8) ** 2 + ((y - c[1]) / 9) ** 2 + ((z - c[2]) / 7) ** 2 < 1


def _residual(rng, brain) -> np.ndarray:
    # Values on a grid of 1/16: distinct values fall in distinct histogram bins, and ties
    # at every threshold are certain.
    return np.round(rng.gamma(2.0, 0.05, SHAPE) * 16) / 16 * brain


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(7)
    healthy = [(_residual(rng, b), b) for b in (_brain(rng) for _ in range(3))]
    subjects = []
    for name in ("two-lesions", "empty-mask", "no-mask", "missed"):
        brain = _brain(rng)
        residual = _residual(rng, brain)
        lesion = np.zeros(SHAPE, bool)
        if name == "two-lesions":
            lesion[6:10, 7:11, 6:9] = True  # a block the residual marks
            lesion[12, 12, 10] = True  # a one-voxel lesion the median filter erases
            residual[lesion] += 0.75
        if name == "missed":
            lesion[8:11, 8:10, 7:9] = True  # unmarked: its segmentation stays empty
            residual = residual * 0.25
        subjects.append((name, residual, brain, None if name == "no-mask" else lesion))
    return healthy, subjects


def _filtered(residual, brain):
    f = ndimage.median_filter(residual.astype(np.float32), size=CFG.median_size, mode="reflect")
    return f * ndimage.binary_erosion(brain, iterations=CFG.erosion_iterations)


def _segment(filtered, threshold):
    seg = filtered > threshold
    labels, n = ndimage.label(seg, STRUCT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    return seg & (sizes[labels] >= CFG.min_component_size)


def _dice(a, b):
    return 1.0 if a.sum() + b.sum() == 0 else 2 * (a & b).sum() / (a.sum() + b.sum())


def test_thresholds_against_a_scan_of_every_candidate(cohort):
    healthy, _ = cohort
    fitted = fit_thresholds([r for r, _ in healthy], [b for _, b in healthy], CFG)["thresholds"]
    values = np.concatenate(
        [
            _filtered(r, b)[ndimage.binary_erosion(b, iterations=CFG.erosion_iterations)]
            for r, b in healthy
        ]
    )
    assert fitted["percentile"]["value"] == pytest.approx(np.percentile(values, 90.0))
    for level in CFG.fpr_levels:
        fpr = {float(t): np.mean(values > t) for t in np.unique(values)}
        want = min(t for t, f in fpr.items() if f <= level / 100)
        got = fitted[f"fpr{level:g}"]
        assert got["value"] == pytest.approx(want)
        assert got["healthy_fpr"] == pytest.approx(np.mean(values > want))
        assert got["healthy_fpr"] <= level / 100
        assert np.mean(values >= want) > level / 100  # a tie: the value itself would not do


def test_every_metric_against_brute_force(cohort):
    healthy, subjects = cohort
    fitted = fit_thresholds([r for r, _ in healthy], [b for _, b in healthy], CFG)
    names, residuals, brains, lesions = zip(*subjects, strict=True)
    result = score(residuals, brains, lesions, fitted, CFG, subjects=names)

    filtered = [_filtered(r, b) for r, b in zip(residuals, brains, strict=True)]
    truths = [np.zeros(SHAPE, bool) if les is None else les & b
              for les, b in zip(lesions, brains, strict=True)]  # fmt: skip
    for tname, t in fitted["thresholds"].items():
        segs = [_segment(f, t["value"]) & b for f, b in zip(filtered, brains, strict=True)]
        dice = [_dice(s, g) for s, g in zip(segs, truths, strict=True)]
        scored = [d for d, les in zip(dice, lesions, strict=True) if les is not None]
        tp = sum((s & g).sum() for s, g in zip(segs, truths, strict=True))
        fp = sum((s & ~g).sum() for s, g in zip(segs, truths, strict=True))
        fn = sum((~s & g).sum() for s, g in zip(segs, truths, strict=True))
        tn = sum((b & ~s & ~g).sum() for s, g, b in zip(segs, truths, brains, strict=True))
        hit = total = 0
        for s, g, les in zip(segs, truths, lesions, strict=True):
            if les is None:
                continue
            labels, n = ndimage.label(g, STRUCT)
            total += n
            hit += len(set(np.unique(labels[s])) - {0})
        a = result.at_threshold[tname]
        assert a.threshold == t["value"] and a.healthy_fpr == t["healthy_fpr"]
        assert a.dice_mean == pytest.approx(np.mean(scored))
        assert a.dice_std == pytest.approx(np.std(scored))
        assert a.precision == pytest.approx(tp / (tp + fp) if tp + fp else np.nan, nan_ok=True)
        assert a.recall == pytest.approx(tp / (tp + fn))
        assert a.fpr == pytest.approx(fp / (fp + tn))
        assert (a.lesions, a.lesions_detected) == (total, hit)
        assert a.detection_rate == pytest.approx(hit / total)
        for row, d in zip(result.subjects, dice, strict=True):
            assert row.dice[tname] == pytest.approx(d)
    # The ceiling: each lesion mask post-processed as a residual, thresholded at 0.5.
    ceilings, kept, total = [], 0, 0
    for g, b, les in zip(truths, brains, lesions, strict=True):
        if les is None:
            continue
        seg = _segment(_filtered(g.astype(np.float32), b), 0.5) & b
        ceilings.append(_dice(seg, g))
        labels, n = ndimage.label(g, STRUCT)
        total, kept = total + n, kept + len(set(np.unique(labels[seg])) - {0})
    c = result.ceiling
    assert (c.dice_mean, c.dice_std) == pytest.approx((np.mean(ceilings), np.std(ceilings)))
    assert (c.lesions, c.lesions_kept) == (total, kept) == (3, 1)  # the 3x2x2 and 1 voxel go
    assert [r.ceiling_dice for r in result.subjects if r.has_lesion_mask] == pytest.approx(ceilings)
    by = {r.subject: r for r in result.subjects}
    assert by["empty-mask"].dice["fpr5"] in (0.0, 1.0) and by["empty-mask"].has_lesion_mask
    assert not by["no-mask"].has_lesion_mask and result.n_subjects == 3
    assert by["missed"].segmented_voxels == 0 and by["missed"].dice["fpr5"] == 0.0
    assert by["two-lesions"].lesion_voxels == 4 * 4 * 3 + 1
    assert result.at_threshold["fpr5"].lesions == 3  # two lesions + one, one-voxel missed

    # Voxel-level figures over the pooled brain voxels of the post-processed residuals.
    scores = np.concatenate([f[b] for f, b in zip(filtered, brains, strict=True)])
    labels = np.concatenate([g[b] for g, b in zip(truths, brains, strict=True)])
    # Each value has a bin of its own, so the histogram's ties are true ties and the AUROC
    # is exact (its bound, which cannot know that, stays an upper bound).
    assert result.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert 0 < result.auroc_tie_bound < 0.1
    assert result.auprc == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    oracle = max(
        (2 * (labels & (scores >= t)).sum() / ((scores >= t).sum() + labels.sum()), t)
        for t in np.unique(scores)
    )
    assert (result.oracle_dice, result.oracle_threshold) == pytest.approx(oracle)
    assert (result.lesion_voxels, result.normal_voxels) == (labels.sum(), (~labels).sum())

    # metrics.json holds the same figures, and reads back to the same result.
    assert EvalResult.from_json(result.to_json()) == result


def test_score_refuses_mismatched_inputs(cohort):
    healthy, subjects = cohort
    fitted = fit_thresholds([r for r, _ in healthy], [b for _, b in healthy], CFG)
    _, r, b, les = subjects[0]
    with pytest.raises(ValueError, match="masks: 1 given for 2 residuals"):
        score([r, r], [b], [les], fitted, CFG)
    with pytest.raises(ValueError, match="no fitted threshold for fpr0.1"):
        score([r], [b], [les], fitted, EvaluateConfig(units="voxels", fpr_levels=(0.1,)))


def test_thresholds_from_before_units_and_residual_sign_still_load(cohort, tmp_path):
    """A thresholds.json of an earlier jaxuad (no units, positive_only instead of
    residual_sign) means voxel units and the sign it names; other settings are refused."""
    from jaxuad.data import DataError
    from jaxuad.evaluate import load_thresholds

    healthy, _ = cohort
    fitted = fit_thresholds([r for r, _ in healthy], [b for _, b in healthy], CFG)
    old = {k: v for k, v in fitted["settings"].items() if k not in ("units", "residual_sign")}
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({**fitted, "settings": {**old, "positive_only": True}}))
    positive = dataclasses.replace(CFG, residual_sign="positive")
    assert load_thresholds(path, positive)["thresholds"] == fitted["thresholds"]
    with pytest.raises(DataError, match="residual_sign"):
        load_thresholds(path, CFG)  # both signs: not what those thresholds were fitted on
    with pytest.raises(DataError, match="units"):
        load_thresholds(path, EvaluateConfig(residual_sign="positive"))  # mm units

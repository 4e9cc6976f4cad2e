"""Normative scoring (jaxuad/restore/normative.py) against NumPy, and through a restoration."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from jaxuad.data import DataError
from jaxuad.restore.normative import (
    MAD_TO_STD,
    fit_normative,
    fused_score,
    fusion_weights,
)


def _cohort(n=12, shape=(7, 8, 6), seed=0):
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 1, shape)
    scale = rng.uniform(0.5, 2.0, shape)
    d = [loc + scale * rng.standard_normal(shape) for _ in range(n)]
    masks = [rng.uniform(size=shape) > 0.2 for _ in range(n)]
    return d, masks


def test_statistics_are_the_masked_median_and_mad():
    d, masks = _cohort()
    s = fit_normative(d, masks, np.eye(4), smooth_mm=0, min_scale=0.0)
    D, M = np.stack(d), np.stack(masks)
    for v in [(0, 0, 0), (3, 4, 2), (6, 7, 5), (2, 5, 1)]:
        values = D[(slice(None), *v)][M[(slice(None), *v)]]
        assert s.count[v] == len(values)
        med = np.median(values)
        np.testing.assert_allclose(s.location[v], med, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            s.scale[v], MAD_TO_STD * np.median(np.abs(values - med)), rtol=1e-5, atol=1e-6
        )


def test_the_scale_floor_and_coverage():
    d, masks = _cohort()
    masks[0][:] = False
    for m in masks[1:]:
        m[0, 0, 0] = False  # one voxel no scan covers
    s = fit_normative(d, masks, np.eye(4), smooth_mm=0, min_scale=0.5)
    valid = s.count >= 3
    assert not s.valid(np.ones_like(masks[1]))[0, 0, 0]
    assert s.scale[valid].min() >= 0.5 * np.median(s.scale[valid]) - 1e-6
    z = s.standardize(d[1], np.ones_like(masks[1]))
    assert z[0, 0, 0] == 0


def test_smoothing_is_normalised_over_covered_voxels():
    shape = (9, 9, 9)
    d = [np.full(shape, 0.3) + 0.01 * i for i in range(10)]  # location 0.345 everywhere
    masks = [np.zeros(shape, bool) for _ in range(10)]
    for m in masks:
        m[2:7, 2:7, 2:7] = True
    s = fit_normative(d, masks, np.eye(4), voxel_size=(2, 2, 2), smooth_mm=2.0)
    inside = s.valid(masks[0])
    # a constant field stays constant up to the edge of what the scans cover
    np.testing.assert_allclose(s.location[inside], np.median([0.3 + 0.01 * i for i in range(10)]),
                               rtol=1e-5)  # fmt: skip


def test_healthy_residuals_standardise_to_unit_spread():
    d, masks = _cohort(n=200, shape=(4, 4, 4), seed=1)
    s = fit_normative(d[:150], masks[:150], np.eye(4), smooth_mm=0, min_scale=0.0)
    z = np.concatenate([s.standardize(x, m)[m] for x, m in zip(d[150:], masks[150:], strict=True)])
    assert abs(np.median(z)) < 0.1 and 0.85 < np.percentile(np.abs(z), 50) / 0.6745 < 1.15


def test_mismatched_inputs_are_refused():
    d, masks = _cohort(n=3)
    with pytest.raises(ValueError, match="must be N volumes"):
        fit_normative(d, masks[:2], np.eye(4))
    with pytest.raises(DataError, match="no voxel has brain"):
        fit_normative(d, [np.zeros_like(m) for m in masks], np.eye(4))


def test_fused_parts_count_equally_at_the_healthy_fpr():
    """Weights fitted on healthy scores make each part cross 1 on 1 % of unseen healthy
    voxels, and the fused score's own 1 % threshold, fitted on healthy scans, holds on
    unseen ones."""
    rng = np.random.default_rng(0)
    shape = (20, 20, 20)
    mask = np.ones(shape, bool)

    def healthy(n):  # two parts with different spreads, partly correlated
        out = []
        for _ in range(n):
            a = rng.standard_normal(shape)
            b = 3.0 * (0.5 * a + np.sqrt(0.75) * rng.standard_normal(shape))
            out.append((a, b))
        return out

    fit, fresh = healthy(10), healthy(10)
    w = fusion_weights([[a for a, _ in fit], [b for _, b in fit]], [mask] * 10)
    assert w[0] / w[1] == pytest.approx(3.0, rel=0.05)
    for i in range(2):
        exceed = np.mean([np.mean(np.abs(w[i] * p[i]) > 1) for p in fresh])
        assert exceed == pytest.approx(0.01, abs=0.002)
    fused_fit = np.concatenate([np.abs(fused_score(p, w)).ravel() for p in fit])
    t = np.percentile(fused_fit, 99)
    fused_fresh = np.concatenate([np.abs(fused_score(p, w)).ravel() for p in fresh])
    assert np.mean(fused_fresh > t) == pytest.approx(0.01, abs=0.002)


def test_restoration_with_normative_scores_writes_z(trained_run, phantom_dir, tmp_path):
    """--fit-normative on the healthy phantom, then a restoration with normative scoring:
    residual = |(x - restored_raw - location) / scale|, and x - restored has z's sign."""
    import shutil

    from jaxuad.restore import fit_normative_cohort, restore_cohort
    from jaxuad.restore.normative import load_normative

    run = tmp_path / "run"  # a copy: the shared run stays as the other tests expect it
    shutil.copytree(trained_run, run)
    fit = fit_normative_cohort(run, phantom_dir / "healthy", progress=False)
    assert fit.method == "reconstruction" and len(fit.subjects) == 3
    _, stats = load_normative(run, "reconstruction", None)
    lesion = phantom_dir / "lesion"
    restore_cohort(run, lesion, tmp_path / "raw", progress=False)
    summary = restore_cohort(run, lesion, tmp_path / "z", progress=False,
                             restore_overrides={"normative": True})  # fmt: skip
    assert summary.normative["subjects"] == list(fit.subjects)

    def read(folder, part):
        return nib.load(str(tmp_path / folder / f"sub-l000_{part}.nii.gz")).get_fdata()

    x, raw = read("raw", "normalized"), read("raw", "restored")
    mask = read("raw", "brainmask") > 0
    z = stats.standardize(x - raw, mask)
    np.testing.assert_allclose(read("z", "residual"), np.abs(z), rtol=1e-4, atol=1e-4)
    sign = np.sign(read("z", "normalized") - read("z", "restored"))
    big = np.abs(z) > 1e-2
    assert np.array_equal(sign[big], np.sign(z[big]))
    meta = json.loads((tmp_path / "z" / "restore.json").read_text())
    assert meta["normative"]["fuse"] == {}


def test_normative_scoring_without_statistics_says_how_to_fit(trained_run, phantom_dir,
                                                              tmp_path):  # fmt: skip
    import shutil

    from jaxuad.config import ConfigError
    from jaxuad.restore import restore_cohort

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("normative"))
    with pytest.raises(ConfigError, match="no normative statistics for reconstruction.*"
                                          "--fit-normative"):  # fmt: skip
        restore_cohort(run, phantom_dir / "lesion", tmp_path / "out", progress=False,
                       restore_overrides={"normative": True})  # fmt: skip
    assert not (tmp_path / "out").exists()

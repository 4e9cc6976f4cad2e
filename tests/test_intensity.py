"""The papers' intensity preprocessing (issue 26, item 3): curvature flow against SimpleITK,
landmark histogram matching against its definition, and a run that stores the landmarks and
applies them to everything it restores."""

import dataclasses
import json
import subprocess

import nibabel as nib
import numpy as np
import pytest

from jaxuad.config import ConfigError, DataConfig
from jaxuad.data import iter_volumes
from jaxuad.data.intensity import (
    LANDMARK_PERCENTILES,
    curvature_flow,
    fit_standard_landmarks,
    landmarks,
    match_histogram,
)
from jaxuad.data.preprocess import preprocess
from tests.conftest import script


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.5)])
def test_curvature_flow_equals_simpleitk(spacing):
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(0)
    ramp = np.indices((20, 24, 18))[0] * 0.2
    x = (rng.normal(size=ramp.shape) + ramp).astype(np.float32)
    img = sitk.GetImageFromArray(np.transpose(x, (2, 1, 0)))  # SimpleITK is z, y, x
    img.SetSpacing(spacing)
    want = sitk.GetArrayFromImage(sitk.CurvatureFlow(img, timeStep=0.05, numberOfIterations=5))
    got = np.asarray(curvature_flow(x, 5, 0.05, spacing))
    np.testing.assert_allclose(got, np.transpose(want, (2, 1, 0)), atol=1e-5)
    assert np.abs(got - x).max() > 1.0  # it did smooth
    np.testing.assert_array_equal(np.asarray(curvature_flow(x, 0)), x)


def test_histogram_matching_maps_landmarks_and_removes_gain_and_offset():
    rng = np.random.default_rng(1)
    brain = np.zeros((16, 16, 16), bool)
    brain[2:14, 2:14, 2:14] = True
    scans = [rng.gamma(k, 10.0, brain.shape) * brain for k in (2.0, 3.0, 5.0)]
    standard = fit_standard_landmarks([(x, brain) for x in scans])
    assert len(standard) == len(LANDMARK_PERCENTILES) and standard[0] == 0 and standard[-1] == 100
    x = scans[0]
    matched = match_histogram(x, brain, standard)
    np.testing.assert_allclose(landmarks(matched, brain), standard, rtol=1e-3, atol=1e-3)
    order = np.argsort(x[brain], kind="stable")
    assert np.all(np.diff(matched[brain][order]) >= 0)  # monotone: lesions keep their rank
    # A scanner's gain and offset disappear: the same anatomy matches to the same image.
    np.testing.assert_allclose(match_histogram(3.5 * x + 40, brain, standard)[brain],
                               matched[brain], atol=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="11 standard landmarks"):
        match_histogram(x, brain, standard[:5])

    # minmax after matching maps the standard 1st-99th percentile range to [0, 1] for every
    # scan, whatever its extremes (a scan's own max would rescale each one differently).
    import nibabel as nib

    from jaxuad.data import Volume

    cfg = DataConfig(histogram_match=True, histogram_landmarks=standard)
    for scan in (x, np.where(brain, x, 0) + 500.0 * (rng.uniform(size=x.shape) < 1e-3) * brain):
        vol = Volume("s", scan.astype(np.float32), brain, None, np.eye(4), nib.Nifti1Header())
        got = np.percentile(preprocess(vol, cfg)[brain], [1, 99])
        np.testing.assert_allclose(got, [0, 1], atol=2e-3)


def test_preprocess_needs_fitted_landmarks(phantom_dir):
    vol = next(iter_volumes(phantom_dir / "healthy", "FLAIR"))
    with pytest.raises(ConfigError, match="no landmarks were fitted"):
        preprocess(vol, DataConfig(histogram_match=True))
    from jaxuad.train import train
    from tests.conftest import smoke_config

    cfg = smoke_config("vae_chen", histogram_match=True)
    with pytest.raises(ConfigError, match="histogram_match: pass images=None"):
        train(cfg, "/nonexistent/never-written", images=np.zeros((8, 32, 32, 1)))


def test_a_run_stores_its_landmarks_and_matches_what_it_restores(phantom_dir, tmp_path):
    """An atlas run with histogram matching (the cheapest run): jaxuad-train fits the
    landmarks on the training scans and stores them; restoring a copy of the patients whose
    scanner doubled every intensity and added an offset gives the same residuals."""
    workdir = tmp_path / "atlas"
    r = subprocess.run(
        [script("jaxuad-train"), "--model", "atlas", "--data", str(phantom_dir / "healthy"),
         "--modality", "FLAIR", "--workdir", str(workdir), "--set",
         "data.histogram_match=true", "--set", "data.curvature_flow=2", "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads((workdir / "config.json").read_text())["data"]
    assert len(data["histogram_landmarks"]) == len(LANDMARK_PERCENTILES)
    assert data["curvature_flow"] == 2

    brighter = tmp_path / "brighter"
    brighter.mkdir()
    for f in (phantom_dir / "lesion").glob("sub-*.nii.gz"):
        img = nib.load(str(f))
        a = np.asarray(img.dataobj, np.float32)
        if f.name.endswith("_FLAIR.nii.gz"):
            a = 2.0 * a + 100.0 * (a > 0)
        nib.save(nib.Nifti1Image(a, img.affine), str(brighter / f.name))
    from jaxuad.restore import restore_cohort

    for name, src in (("plain", phantom_dir / "lesion"), ("bright", brighter)):
        restore_cohort(workdir, src, tmp_path / name, method="atlas", progress=False)
    for sid in ("l000", "l001"):
        a, b = (nib.load(str(tmp_path / n / f"sub-{sid}_residual.nii.gz")).get_fdata()
                for n in ("plain", "bright"))  # fmt: skip
        # Curvature flow commutes with gain and offset (kappa |grad I| scales with I), and
        # matching maps both to the same standard scale.
        np.testing.assert_allclose(a, b, atol=0.02 * a.max())


def test_chen_configs_match_histograms_and_baur_configs_do_not():
    from jaxuad.config import load_config

    for name in ("vae_chen", "aae", "gmvae"):
        assert load_config(name).data.histogram_match
    for name in ("sae", "svae", "dae"):
        assert not load_config(name).data.histogram_match
    assert dataclasses.replace(DataConfig(), curvature_flow=5).curvature_flow == 5

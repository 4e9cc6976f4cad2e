"""The voxel-wise baselines (issue 26, item 4): the atlas trained by jaxuad-train, both
baselines restored by jaxuad-restore and scored by jaxuad-evaluate, each against a
computation written here."""

import json
import subprocess

import nibabel as nib
import numpy as np
import pytest

from jaxuad.config import ConfigError, load_config
from jaxuad.data import DataError, iter_volumes
from jaxuad.data.preprocess import normalize
from jaxuad.restore import restore_cohort
from jaxuad.train import load_atlas, train
from tests.conftest import script


@pytest.fixture(scope="module")
def atlas_run(phantom_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("atlas") / "run"
    r = subprocess.run(
        [script("jaxuad-train"), "--model", "atlas", "--data", str(phantom_dir / "healthy"),
         "--modality", "FLAIR", "--workdir", str(workdir), "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "atlas of 3 scans" in r.stdout
    return workdir


def _read(folder, sid, part):
    return nib.load(str(folder / f"sub-{sid}_{part}.nii.gz")).get_fdata()


def test_atlas_is_the_per_voxel_mean_and_std_of_the_healthy_scans(atlas_run, phantom_dir):
    config, atlas = load_atlas(atlas_run)
    assert config.model.name == "atlas"
    vols = list(iter_volumes(phantom_dir / "healthy", "FLAIR"))
    xs = np.stack([normalize(v.image, v.brainmask, "minmax") for v in vols]).astype(np.float64)
    ms = np.stack([v.brainmask for v in vols])
    count = ms.sum(0)
    both = count == 3  # every scan has brain here: plain mean and population std
    np.testing.assert_array_equal(atlas.count, count)
    np.testing.assert_allclose(atlas.mean[both], xs.mean(0)[both], atol=1e-6)
    np.testing.assert_allclose(atlas.std[both], np.maximum(xs.std(0), 1e-2)[both], atol=1e-5)
    np.testing.assert_allclose(atlas.affine, vols[0].affine)
    with pytest.raises(ConfigError, match="already holds an atlas"):
        train(load_config("atlas"), atlas_run, progress=False)


def test_atlas_and_intensity_restorations_and_their_evaluation(atlas_run, phantom_dir, tmp_path):
    _, atlas = load_atlas(atlas_run)
    lesion = phantom_dir / "lesion"
    restore_cohort(atlas_run, lesion, tmp_path / "atlas", method="atlas", progress=False)
    restore_cohort(None, lesion, tmp_path / "intensity", method="intensity",
                   modality="FLAIR", progress=False)  # fmt: skip
    for v in iter_volumes(lesion, "FLAIR"):
        x = normalize(v.image, v.brainmask, "minmax")
        valid = v.brainmask & (atlas.count >= 2)
        z = np.where(valid, np.abs(x - atlas.mean) / atlas.std, 0)
        np.testing.assert_allclose(_read(tmp_path / "atlas", v.subject, "residual"), z, rtol=1e-5,
                                   atol=1e-5)  # fmt: skip
        np.testing.assert_allclose(_read(tmp_path / "atlas", v.subject, "normalized"), x,
                                   atol=1e-6)  # fmt: skip
        median = np.median(x[v.brainmask])
        got = _read(tmp_path / "intensity", v.subject, "residual")
        np.testing.assert_allclose(got, np.abs(x - median) * v.brainmask, atol=1e-6)
        # With residual_sign=positive the score is the intensity above the brain's median.
        restored = _read(tmp_path / "intensity", v.subject, "restored")
        np.testing.assert_allclose((x > restored) * got, np.maximum(x - median, 0) * v.brainmask,
                                   atol=1e-6)  # fmt: skip
    info = json.loads((tmp_path / "atlas" / "restore.json").read_text())
    assert info["method"] == info["model"] == "atlas" and info["subjects"] == ["l000", "l001"]

    # Through jaxuad-evaluate like any method: healthy residuals for the thresholds.
    restore_cohort(atlas_run, phantom_dir / "healthy", tmp_path / "atlas-healthy",
                   method="atlas", progress=False)  # fmt: skip
    r = subprocess.run(
        [script("jaxuad-evaluate"), "--pred", str(tmp_path / "atlas"), "--data", str(lesion),
         "--healthy", str(tmp_path / "atlas-healthy"), "--out", str(tmp_path / "report"),
         "--set", "evaluate.residual_sign=positive", "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert m["method"] == "atlas" and m["summary"]["auroc"] > 0.5
    assert "| atlas atlas |" in (tmp_path / "report" / "report.md").read_text()


def test_baseline_errors_are_clear_and_write_nothing(atlas_run, phantom_dir, tmp_path):
    with pytest.raises(ConfigError, match="needs --workdir"):
        restore_cohort(None, phantom_dir / "lesion", tmp_path / "a", method="atlas")
    other = tmp_path / "other"  # a scan on another grid
    other.mkdir()
    src = phantom_dir / "lesion"
    for part in ("FLAIR", "brainmask"):
        img = nib.load(str(src / f"sub-l000_{part}.nii.gz"))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-1], img.affine),
                 str(other / f"sub-l000_{part}.nii.gz"))  # fmt: skip
    with pytest.raises(DataError, match="sub-l000: grid .* differs from the atlas"):
        restore_cohort(atlas_run, other, tmp_path / "b", method="atlas", progress=False)
    assert not (tmp_path / "b").exists()
    r = subprocess.run(
        [script("jaxuad-restore"), "--method", "atlas", "--data", str(src), "--out",
         str(tmp_path / "c")], capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "--workdir is required" in r.stderr
    r = subprocess.run(
        [script("jaxuad-restore"), "--method", "intensity", "--data", str(src), "--modality",
         "FLAIR", "--out", str(tmp_path / "d"), "--no-progress"], capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "intensity: 2 subjects" in r.stdout and (tmp_path / "d" / "restore.json").is_file()

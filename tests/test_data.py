import gzip
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from jaxuad.config import DataConfig
from jaxuad.data import (
    DataError,
    discover,
    iter_volumes,
    load_volume,
    slice_volume,
    write_nifti_like,
)
from jaxuad.data.preprocess import SliceGeometry, normalize
from tests.conftest import require_shared_data

AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


@pytest.fixture
def subject(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.uniform(1, 2, (12, 14, 10)).astype(np.float32)
    mask = np.zeros(img.shape, np.uint8)
    mask[2:10, 2:12, 2:8] = 1
    return {
        "image": _save(tmp_path / "sub-a_T1w.nii.gz", img),
        "brainmask": _save(tmp_path / "sub-a_brainmask.nii.gz", mask),
        "lesion": _save(tmp_path / "sub-a_lesion.nii.gz", np.zeros_like(mask)),
    }


def _load(s):
    return load_volume("a", s["image"], s["brainmask"], s["lesion"])


def test_nifti_round_trip_keeps_affine_and_values(subject, tmp_path):
    vol = _load(subject)
    out = tmp_path / "out" / "x.nii.gz"
    write_nifti_like(vol.image * 2, vol, out)
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, AFFINE)
    np.testing.assert_allclose(img.get_fdata(), vol.image * 2, rtol=1e-6)
    write_nifti_like(vol.brainmask, vol, out)
    assert nib.load(str(out)).get_data_dtype() == np.uint8
    assert [p.name for p in out.parent.iterdir()] == ["x.nii.gz"]  # no temp files left


def _corrupt(subject, kind, tmp_path):
    img = nib.load(str(subject["image"])).get_fdata()
    if kind == "missing":
        subject["image"].unlink()
        return subject["image"], "file not found"
    if kind == "garbage":
        subject["image"].write_bytes(gzip.compress(b"not a nifti file"))
        return subject["image"], "cannot decode"
    if kind == "4d":
        _save(subject["image"], np.stack([img, img], -1))
        return subject["image"], "expected a 3D volume"
    if kind == "nan":
        img[3, 3, 3] = np.nan
        _save(subject["image"], img.astype(np.float32))
        return subject["image"], "non-finite"
    if kind == "shape":
        _save(subject["brainmask"], np.ones((12, 14, 9), np.uint8))
        return subject["brainmask"], "shape"
    if kind == "affine":
        shifted = AFFINE.copy()
        shifted[0, 3] += 4
        _save(subject["lesion"], np.zeros(img.shape, np.uint8), shifted)
        return subject["lesion"], "affine differs"
    if kind == "empty":
        _save(subject["brainmask"], np.zeros(img.shape, np.uint8))
        return subject["brainmask"], "brain mask is empty"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "garbage", "4d", "nan", "shape", "affine", "empty"])
def test_bad_input_names_file_and_problem(subject, tmp_path, kind):
    path, problem = _corrupt(subject, kind, tmp_path)
    with pytest.raises(DataError) as err:
        _load(subject)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_cli_bad_input_exits_nonzero_with_one_line(subject, tmp_path):
    _corrupt(subject, "nan", tmp_path)
    run = tmp_path.parent / f"{tmp_path.name}-run"  # a run folder apart from the data
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxuad.cli.train",
            "--model",
            "svae",
            "--variant",
            "smoke",
            "--data",
            str(tmp_path),
            "--workdir",
            str(run),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: ") and "non-finite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not run.exists()


def test_discover_folder_and_manifest(subject, tmp_path):
    (s,) = discover(tmp_path, "T1w")
    assert s.id == "a" and s.lesion is not None
    with pytest.raises(DataError, match="modalities present: T1w"):
        discover(tmp_path, "FLAIR")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "subject,image,brainmask,lesion\na,sub-a_T1w.nii.gz,sub-a_brainmask.nii.gz,\n"
    )
    (m,) = discover(manifest)
    assert m.image == subject["image"] and m.lesion is None


def test_normalization(subject):
    vol = _load(subject)
    mm = normalize(vol.image, vol.brainmask, "minmax")
    assert mm[vol.brainmask].min() == 0 and mm[vol.brainmask].max() == pytest.approx(1)
    assert np.all(mm[~vol.brainmask] == 0)
    z = normalize(vol.image, vol.brainmask, "zscore")
    assert z[vol.brainmask].mean() == pytest.approx(0, abs=1e-5)
    assert z[vol.brainmask].std() == pytest.approx(1, abs=1e-4)
    assert np.all(z[~vol.brainmask] == -3.5)


@pytest.mark.parametrize("fit", ["pad", "resize"])
def test_slice_geometry_round_trip(fit):
    g = SliceGeometry((91, 109), 128, fit)
    x = np.random.default_rng(0).uniform(size=(3, 91, 109)).astype(np.float32)
    frames = g.to_model(x, fill=0.0)
    assert frames.shape == (3, 128, 128)
    back = g.to_volume(frames)
    assert back.shape == x.shape
    if fit == "pad":
        np.testing.assert_array_equal(back, x)
    else:  # linear resampling up and down: close, not exact
        assert np.abs(back - x).mean() < 0.15


def test_slices_map_back_to_the_volume(subject):
    vol = _load(subject)
    cfg = DataConfig(image_size=16, slices="brain", min_brain_fraction=0.1)
    vs = slice_volume(vol, cfg)
    assert vs.images.shape == (len(vs.index), 16, 16, 1)
    np.testing.assert_array_equal(vs.index, np.arange(2, 8))
    back = vs.to_volume(vs.images)
    np.testing.assert_allclose(back[:, :, vs.index], vs.normalized[:, :, vs.index])


def test_two_real_ixi_subjects():
    root = require_shared_data()
    subjects = discover(root / "ixi", "T1w")[:2]
    cfg = DataConfig(image_size=128, slices="brain")
    for s in subjects:
        vol = load_volume(s.id, s.image, s.brainmask, s.lesion)
        assert vol.image.shape == (91, 109, 91)
        vs = slice_volume(vol, cfg)
        assert vs.images.shape[1:] == (128, 128, 1) and 30 < len(vs.index) < 91
        assert vs.images.max() == pytest.approx(1.0) and vs.images.min() == 0.0


def test_real_mslub_lesions_load():
    root = require_shared_data()
    vols = list(iter_volumes(root / "mslub", "FLAIR"))
    assert len(vols) == 3 and all(v.lesion is not None and v.lesion.any() for v in vols)


def test_a_written_manifest_reads_back_as_the_same_subjects(phantom_dir, tmp_path):
    from jaxuad.data.dataset import write_manifest

    subjects = discover(phantom_dir / "lesion", "T1w") + discover(phantom_dir / "healthy", "T1w")
    path = write_manifest(subjects, tmp_path / "cohort.csv")
    again = discover(path, "T1w")
    assert [s.id for s in again] == [s.id for s in subjects]
    for a, b in zip(again, subjects, strict=True):
        assert a.image == Path(b.image).resolve() and a.brainmask == Path(b.brainmask).resolve()
        assert (a.lesion is None) == (b.lesion is None)

"""A run records the grid its training scans shared; scans on another grid are named, not
restored into residuals of pure misregistration (issue 38, item 2)."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from jaxuad.data import DataError, common_grid
from jaxuad.restore import restore_cohort


def test_training_records_the_common_grid_and_restoration_checks_it(phantom_dir, tmp_path):
    from jaxuad.cli import train as train_cli

    healthy = phantom_dir / "healthy"
    run = tmp_path / "run"
    assert train_cli.main(["--model", "svae", "--variant", "smoke", "--data", str(healthy),
                           "--modality", "FLAIR", "--workdir", str(run), "--set",
                           "train.epochs=1", "--no-progress"]) == 0  # fmt: skip
    grid = json.loads((run / "grid.json").read_text())
    img = nib.load(str(healthy / "sub-h000_FLAIR.nii.gz"))
    assert grid == common_grid(healthy, "FLAIR") and grid["shape"] == list(img.shape)
    np.testing.assert_allclose(grid["affine"], img.affine)

    moved = tmp_path / "moved"  # the same scans, one of them 2 mm off
    shutil.copytree(phantom_dir / "lesion", moved)
    for part in ("FLAIR", "brainmask", "lesion"):
        f = moved / f"sub-l001_{part}.nii.gz"
        i = nib.load(str(f))
        affine = i.affine.copy()
        affine[0, 3] += 2.0
        nib.save(nib.Nifti1Image(np.asarray(i.dataobj), affine, i.header), str(f))
    assert common_grid(moved, "FLAIR") is None
    with pytest.raises(DataError, match="sub-l001: its grid .* is not the one .* trained on"):
        restore_cohort(run, moved, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    restore_cohort(run, phantom_dir / "lesion", tmp_path / "ok", progress=False)

"""From phantom NIfTI files to metrics.json, through the library and the console scripts."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from jaxuad.config import EvaluateConfig
from jaxuad.evaluate import evaluate
from jaxuad.restore import restore_cohort


@pytest.fixture(scope="module")
def restored(trained_run, phantom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred")
    restore_cohort(trained_run, phantom_dir / "lesion", out / "lesion", progress=False)
    restore_cohort(trained_run, phantom_dir / "healthy", out / "healthy", progress=False)
    return out


def test_restore_writes_nifti_on_the_input_grid(restored, phantom_dir):
    src = nib.load(str(phantom_dir / "lesion" / "sub-l000_FLAIR.nii.gz"))
    for kind in ("restored", "residual", "brainmask"):
        img = nib.load(str(restored / "lesion" / f"sub-l000_{kind}.nii.gz"))
        assert img.shape == src.shape
        np.testing.assert_allclose(img.affine, src.affine)
    residual = nib.load(str(restored / "lesion" / "sub-l000_residual.nii.gz")).get_fdata()
    mask = nib.load(str(phantom_dir / "lesion" / "sub-l000_brainmask.nii.gz")).get_fdata() > 0
    assert residual[mask].max() > 0 and np.all(residual[~mask] == 0)
    info = json.loads((restored / "lesion" / "restore.json").read_text())
    assert info["modality"] == "FLAIR" and info["subjects"] == ["l000", "l001"]


def test_evaluate_writes_metrics_and_report(restored, phantom_dir, tmp_path):
    m = evaluate(
        restored / "lesion",
        phantom_dir / "lesion",
        restored / "healthy",
        tmp_path,
        EvaluateConfig(),
        progress=False,
    )
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["summary"] == m["summary"]
    assert m["summary"]["n_subjects"] == 2
    assert 0.0 <= m["summary"]["dice_mean"] <= 1.0 and 0.0 <= m["summary"]["auroc"] <= 1.0
    assert m["threshold"]["percentile"] == 98.0 and m["threshold"]["value"] > 0
    for sid in ("l000", "l001"):
        for suffix in ("_panel.png", "_filtered.nii.gz", "_seg.nii.gz"):
            assert (tmp_path / f"sub-{sid}{suffix}").is_file()
    assert "Dice" in (tmp_path / "report.md").read_text()


def test_console_scripts_end_to_end(trained_run, phantom_dir, tmp_path):
    """The installed commands, as a user runs them, including a clean failure."""
    scripts = Path(sys.executable).parent  # installed beside the interpreter by pip
    jr, je = str(scripts / "jaxuad-restore"), str(scripts / "jaxuad-evaluate")
    run = lambda *a: subprocess.run(a, capture_output=True, text=True)
    for cohort in ("lesion", "healthy"):
        r = run(
            jr,
            "--workdir",
            str(trained_run),
            "--data",
            str(phantom_dir / cohort),
            "--out",
            str(tmp_path / cohort),
            "--no-progress",
        )
        assert r.returncode == 0, r.stderr

    def evaluate_cli(healthy, out, *extra):
        return run(
            je,
            "--pred",
            str(tmp_path / "lesion"),
            "--data",
            str(phantom_dir / "lesion"),
            "--healthy",
            str(healthy),
            "--out",
            str(out),
            *extra,
        )

    r = evaluate_cli(tmp_path / "healthy", tmp_path / "report", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report" / "metrics.json").is_file()
    r = evaluate_cli(tmp_path / "nowhere", tmp_path / "r2")
    assert r.returncode == 2 and "nowhere" in r.stderr
    assert not (tmp_path / "r2").exists()

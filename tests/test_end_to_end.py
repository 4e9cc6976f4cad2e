"""From phantom NIfTI files to metrics.json, through the library and the console scripts."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from jaxuad.config import EvaluateConfig
from jaxuad.data import DataError
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
    for kind in ("restored", "residual", "brainmask", "normalized"):
        img = nib.load(str(restored / "lesion" / f"sub-l000_{kind}.nii.gz"))
        assert img.shape == src.shape
        np.testing.assert_allclose(img.affine, src.affine)
    residual = nib.load(str(restored / "lesion" / "sub-l000_residual.nii.gz")).get_fdata()
    mask = nib.load(str(phantom_dir / "lesion" / "sub-l000_brainmask.nii.gz")).get_fdata() > 0
    assert residual[mask].max() > 0 and np.all(residual[~mask] == 0)
    info = json.loads((restored / "lesion" / "restore.json").read_text())
    assert info["modality"] == "FLAIR" and info["subjects"] == ["l000", "l001"]
    assert info["seconds_per_subject"] >= info["seconds_per_slice"] > 0


@pytest.mark.parametrize("fit", ["pad", "resize"])
def test_residual_is_the_difference_on_restored_slices_and_zero_elsewhere(
    fit, phantom_dir, trained_run, tmp_path, monkeypatch
):
    """Issue 27, item 6: the written normalised scan is normalize(scan); the restoration
    equals the model's reconstruction of the selected slices mapped back to the grid (centred
    crop for data.fit=pad, resampling for resize), and the scan elsewhere; the residual is
    |normalised - restored| inside the brain; shape and affine are the input's."""
    import dataclasses

    import jax.numpy as jnp

    import jaxuad.train
    from jaxuad.data import load_volume, slice_volume
    from jaxuad.data.preprocess import normalize

    real_load_run = jaxuad.train.load_run

    def load_run(workdir, step=None):  # the same weights, restored with data.fit = fit
        run = real_load_run(workdir, step)
        # The smoke run resizes to 32x32; padding needs a frame the 91x109 slice fits in
        # (the spatial model is convolutional, so it takes any multiple of 16).
        size = 112 if fit == "pad" else run.config.data.image_size
        data = dataclasses.replace(run.config.data, fit=fit, image_size=size)
        # the same four downsamplings: a 7x7 code at 112 (a config check asks for it)
        model = dataclasses.replace(run.config.model, bottleneck_res=size // 16)
        config = dataclasses.replace(run.config, data=data, model=model)
        return dataclasses.replace(run, config=config)

    monkeypatch.setattr(jaxuad.train, "load_run", load_run)
    out = tmp_path / "out"
    restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    run = load_run(trained_run)
    src = phantom_dir / "lesion"
    vol = load_volume("l000", src / "sub-l000_FLAIR.nii.gz", src / "sub-l000_brainmask.nii.gz",
                      None)  # fmt: skip
    imgs = {k: nib.load(str(out / f"sub-l000_{k}.nii.gz")) for k in ("normalized", "restored",
                                                                      "residual")}  # fmt: skip
    for img in imgs.values():
        assert img.shape == vol.image.shape
        np.testing.assert_allclose(img.affine, vol.affine)
    read = lambda kind: imgs[kind].get_fdata()
    x = normalize(vol.image, vol.brainmask, run.config.data.normalization)
    np.testing.assert_allclose(read("normalized"), x, atol=1e-6)
    s = slice_volume(vol, run.config.data)
    assert s.geometry.fit == fit
    recon = np.asarray(run.model()(jnp.asarray(s.images)).recon)
    want = x.copy()
    want[:, :, s.index] = s.to_volume(recon)[:, :, s.index]
    others = np.setdiff1d(np.arange(x.shape[2]), s.index)
    assert len(others) > 0 and len(s.index) > 0
    np.testing.assert_allclose(read("restored"), want, atol=1e-4)
    np.testing.assert_array_equal(read("restored")[:, :, others], x[:, :, others])
    np.testing.assert_allclose(read("residual"), np.abs(x - want) * vol.brainmask, atol=1e-4)


def test_evaluate_writes_metrics_and_report(
    restored, phantom_dir, trained_run, tmp_path, monkeypatch
):
    from jaxuad.evaluate import EvalResult
    from jaxuad.report import write_report

    def run(out, cfg=None, **source):
        lesion = (restored / "lesion", phantom_dir / "lesion")
        return evaluate(*lesion, tmp_path / out, cfg, progress=False, **source)

    m = run("report", healthy=restored / "healthy")
    out = tmp_path / "report"
    assert not (out / "report.md").exists()  # figures and report.md are the next step
    with monkeypatch.context() as patch:  # drawn from the result in memory: no scan re-read
        patch.setattr(nib, "load", lambda *a, **k: pytest.fail("the report read a scan"))
        write_report(out, m)
    view = m.views["l000"]
    lesion = nib.load(phantom_dir / "lesion" / "sub-l000_lesion.nii.gz").get_fdata()
    assert view.k == int(np.argmax(lesion.sum(axis=(0, 1)))) and view.lesion.any()
    on_disk = EvalResult.read(out / "metrics.json")
    assert on_disk == m  # metrics.json round-trips (the histogram stays in memory)
    assert m.n_subjects == 2
    assert 0.0 <= m.dice_mean <= 1.0 and 0.0 <= m.auroc <= 1.0
    assert 0.0 <= m.oracle_dice <= 1.0 and m.auroc_tie_bound < 1e-3
    fitted = m.thresholds["thresholds"]
    assert set(fitted) == {"percentile", "fpr0.1", "fpr0.5", "fpr1", "fpr5"}
    for name, level in (("fpr0.1", 0.1), ("fpr0.5", 0.5), ("fpr1", 1.0), ("fpr5", 5.0)):
        assert fitted[name]["healthy_fpr"] <= level / 100  # realised on the fitting data
    assert fitted["fpr5"]["value"] <= fitted["fpr1"]["value"] <= fitted["fpr0.1"]["value"]
    assert m.at_threshold["percentile"].threshold == fitted["percentile"]["value"] > 0
    for sid in ("l000", "l001"):
        for suffix in ("_panel.png", "_filtered.nii.gz", "_seg.nii.gz"):
            assert (out / f"sub-{sid}{suffix}").is_file()
    for fig in ("histogram.png", "roc_pr.png", "dice_threshold.png"):
        assert (out / fig).stat().st_size > 1000
    text = (out / "report.md").read_text()
    assert "Dice @0.1% FPR" in text and "Oracle" in text and "| svae |" in text
    # Thresholds are kept with their source, in the report folder only (issue 24, case 12).
    saved = json.loads((out / "thresholds.json").read_text())
    assert saved["source"] == str((restored / "healthy").absolute())
    assert not (trained_run / "thresholds.json").exists()

    # Reusing the saved thresholds gives the same numbers without the healthy folder.
    again = run("again", thresholds=out / "thresholds.json")
    assert again.at_threshold == m.at_threshold
    with pytest.raises(DataError, match="median_mm"):
        run("mismatch", EvaluateConfig(median_mm=3.0), thresholds=out / "thresholds.json")
    assert not (tmp_path / "mismatch").exists()


def test_console_scripts_end_to_end(restored, phantom_dir, tmp_path):
    """The installed commands, as a user runs them, including clean failures (bin/check-wheel
    runs jaxuad-restore from a wheel; here its outputs come from the fixture)."""
    scripts = Path(sys.executable).parent  # installed beside the interpreter by pip
    je = str(scripts / "jaxuad-evaluate")
    run = lambda *a: subprocess.run(a, capture_output=True, text=True)
    for cohort in ("lesion", "healthy"):
        shutil.copytree(restored / cohort, tmp_path / cohort)

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
    r = evaluate_cli(tmp_path / "healthy", tmp_path / "r1", "--set", "evaluate.seg_threshold=fpr7")
    assert r.returncode == 2 and "seg_threshold" in r.stderr
    assert not (tmp_path / "r1").exists()
    compare = str(scripts / "jaxuad-compare")
    r = run(
        compare, str(tmp_path / "report"), str(tmp_path / "report"), "--name", "a", "--name", "b"
    )
    assert r.returncode == 0, r.stderr
    assert "| a |" in r.stdout and "| b |" in r.stdout and "Dice @5% FPR" in r.stdout
    r = run(compare, str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "nowhere" in r.stderr
    r = evaluate_cli(tmp_path / "nowhere", tmp_path / "r2")
    assert r.returncode == 2 and "nowhere" in r.stderr
    assert not (tmp_path / "r2").exists()

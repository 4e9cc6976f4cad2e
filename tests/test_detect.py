"""jaxuad-detect (issue 38, item 5): a detector fitted on healthy scans, lesion maps on each
scan's own grid, on the phantom; with ANTsPy also from scans moved off the run's grid."""

from __future__ import annotations

import json
import os
import subprocess

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from jaxuad.cli import detect as detect_cli
from jaxuad.cli import train as train_cli
from jaxuad.data.synthetic import moved_grid, resample
from jaxuad.metrics import dice
from tests.conftest import script


@pytest.fixture(scope="module")
def detector(phantom_dir, tmp_path_factory):
    """An atlas of 8 healthy FLAIR phantoms, its detector fitted on 3 others."""
    from jaxuad.data import phantom

    root = tmp_path_factory.mktemp("detect")
    phantom.write_cohort(root / "train", 8, 1, "healthy")
    run = root / "atlas"
    assert train_cli.main(["--model", "atlas", "--data", str(root / "train"), "--workdir",
                           str(run), "--modality", "FLAIR", "--no-progress"]) == 0
    assert detect_cli.main(["--fit", "--workdir", str(run), "--data",
                            str(phantom_dir / "healthy"), "--modality", "FLAIR",
                            "--no-progress"]) == 0  # fmt: skip
    return run


def _detect(run, data, out, *extra) -> int:
    """jaxuad-detect in this process (its compiled functions shared with the other tests)."""
    return detect_cli.main(["--workdir", str(run), "--data", str(data), "--out", str(out),
                            "--modality", "FLAIR", "--no-progress", *extra])  # fmt: skip


def _detect_command(run, data, out, *extra):
    """jaxuad-detect as a command: its exit status and one-line errors."""
    return subprocess.run(
        [script("jaxuad-detect"), "--workdir", str(run), "--data", str(data), "--out",
         str(out), "--modality", "FLAIR", "--no-progress", *extra],
        capture_output=True, text=True,
    )  # fmt: skip


def test_detect_writes_lesion_maps_on_the_scans_grid(detector, phantom_dir, tmp_path):
    assert _detect(detector, phantom_dir / "lesion", tmp_path / "found") == 0
    report = json.loads((tmp_path / "found" / "detect.json").read_text())
    assert report["threshold"]["name"] == "fpr1" and not report["preprocessed"]
    assert report["threshold"]["healthy_fpr"] <= 0.01
    thr = report["threshold"]["value"]
    dices = {}
    for entry in report["subjects"]:
        sid = entry["subject"]
        scan = nib.load(phantom_dir / "lesion" / f"sub-{sid}_FLAIR.nii.gz")
        found = nib.load(tmp_path / "found" / entry["files"]["lesions"])
        assert found.shape == scan.shape and np.allclose(found.affine, scan.affine)
        seg = np.asarray(found.dataobj) > 0
        score = nib.load(tmp_path / "found" / entry["files"]["score"]).get_fdata()
        # the healthy 1 % threshold on the post-processed score, small components removed
        assert seg.any() and (score[seg] > thr).all()
        assert seg.sum() <= (score > thr).sum()
        truth = nib.load(phantom_dir / "lesion" / f"sub-{sid}_lesion.nii.gz").get_fdata() > 0
        dices[sid] = dice(seg, truth)
        # the summary is the mask's: its volume and its 26-connected components
        ml = seg.sum() * np.prod(scan.header.get_zooms()[:3]) / 1000
        assert entry["lesion_ml"] == pytest.approx(ml)
        assert entry["lesions"] == ndimage.label(seg, np.ones((3, 3, 3)))[1]
        assert (tmp_path / "found" / entry["files"]["panel"]).stat().st_size > 0
    assert max(dices.values()) > 0.3  # the tumour; the atlas of 8 phantoms misses small MS
    assert (tmp_path / "found" / "steps" / "restored" / "restore.json").is_file()


def test_detect_names_a_missing_detector_and_an_unknown_threshold(detector, phantom_dir, tmp_path):
    r = _detect_command(detector, phantom_dir / "lesion", tmp_path / "a", "--threshold", "fpr7")
    assert r.returncode == 2 and "fpr7" in r.stderr and "fpr1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _detect_command(detector, phantom_dir / "lesion", tmp_path / "c", "--no-n4")
    assert r.returncode == 2 and "go with --fit" in r.stderr
    assert json.loads((detector / "detector.json").read_text())["preprocess"] == {"n4": True}
    r = _detect_command(phantom_dir, phantom_dir / "lesion", tmp_path / "b")
    assert r.returncode == 2 and "detector.json" in r.stderr and "--fit" in r.stderr
    assert not any((tmp_path / n).exists() for n in "abc")


def test_detect_on_a_scan_moved_off_the_grid_maps_back_onto_it(detector, phantom_dir, tmp_path):
    """A lesion phantom resampled onto a rotated, shifted grid of other voxels, as a scanner
    would write it: preprocessing registers it to the run's template, and the lesion map
    comes back on the moved grid, as good as on the run's own grid."""
    pytest.importorskip("ants", reason="ANTsPy is not installed (pip install 'jaxuad[preprocess]')")
    src = phantom_dir / "lesion"
    sizes = {p.name.split("_")[0][4:]: (nib.load(p).get_fdata() > 0).sum()
             for p in src.glob("sub-*_lesion.nii.gz")}  # fmt: skip
    sid = max(sizes, key=sizes.get)  # the tumour
    scan = nib.load(src / f"sub-{sid}_FLAIR.nii.gz")
    shape, moved_affine = moved_grid(scan.shape, scan.affine, (0, 0, 8), (3, 3, 3), (1.8, 1.8, 2.2))
    moved = tmp_path / "moved"
    moved.mkdir()
    for part, order in (("FLAIR", 1), ("brainmask", 0), ("lesion", 0)):
        data = nib.load(src / f"sub-{sid}_{part}.nii.gz").get_fdata()
        out = resample(data, scan.affine, shape, moved_affine, order)
        nib.save(nib.Nifti1Image(out, moved_affine), moved / f"sub-{sid}_{part}.nii.gz")
    truth = nib.load(moved / f"sub-{sid}_lesion.nii.gz").get_fdata() > 0.5
    (moved / f"sub-{sid}_lesion.nii.gz").unlink()  # the detector never sees it

    single = tmp_path / "single"  # the same scan on the run's grid
    single.mkdir()
    for part in ("FLAIR", "brainmask"):
        (single / f"sub-{sid}_{part}.nii.gz").symlink_to(src / f"sub-{sid}_{part}.nii.gz")
    assert _detect(detector, single, tmp_path / "on-grid") == 0
    assert _detect(detector, moved, tmp_path / "found") == 0
    report = json.loads((tmp_path / "found" / "detect.json").read_text())
    assert report["preprocessed"]
    found = nib.load(tmp_path / "found" / f"sub-{sid}_lesions.nii.gz")
    assert found.shape == tuple(shape) and np.allclose(found.affine, moved_affine, atol=1e-4)
    ref = nib.load(tmp_path / "on-grid" / f"sub-{sid}_lesions.nii.gz")
    ref_dice = dice(np.asarray(ref.dataobj) > 0,
                     nib.load(src / f"sub-{sid}_lesion.nii.gz").get_fdata() > 0)  # fmt: skip
    assert dice(np.asarray(found.dataobj) > 0, truth) > ref_dice - 0.1


def test_an_installed_detector_is_named_instead_of_given(
    detector, phantom_dir, tmp_path, monkeypatch, capsys
):
    from jaxuad.cli import models as models_cli
    from jaxuad.config import ConfigError

    monkeypatch.setenv("JAXUAD_MODELS", str(tmp_path / "models"))
    (detector / "MODEL_CARD.md").write_text("# phantom atlas\n")
    assert models_cli.main(["--install", str(detector), "--name", "phantom-atlas"]) == 0
    with pytest.raises(ConfigError, match="--overwrite"):
        models_cli.main(["--install", str(detector), "--name", "phantom-atlas"])
    capsys.readouterr()
    assert models_cli.main([]) == 0
    listing = capsys.readouterr().out
    assert "phantom-atlas" in listing and "detector" in listing and "phantom atlas" in listing
    single = tmp_path / "single"  # one scan, to keep it short
    single.mkdir()
    sid = "l000"
    for part in ("FLAIR", "brainmask"):
        (single / f"sub-{sid}_{part}.nii.gz").symlink_to(
            phantom_dir / "lesion" / f"sub-{sid}_{part}.nii.gz"
        )
    assert _detect("phantom-atlas", single, tmp_path / "found") == 0
    report = json.loads((tmp_path / "found" / "detect.json").read_text())
    assert report["run"] == str(tmp_path / "models" / "phantom-atlas")
    with pytest.raises(ConfigError, match="phantom-atlas"):  # names what is installed
        _detect("no-such-model", single, tmp_path / "other")


def test_a_run_shipped_as_a_companion_wheel_is_known_by_name(
    detector, phantom_dir, tmp_path, monkeypatch
):
    """package_run (bin/build-pretrained --wheel) builds a wheel holding the run; installed
    with pip, the run is listed by jaxuad-models and detects by name, offline."""
    import sys

    from jaxuad.pretrained import installed, package_run, resolve_run

    monkeypatch.setenv("JAXUAD_MODELS", str(tmp_path / "models"))  # nothing installed there
    (detector / "MODEL_CARD.md").write_text("# phantom atlas\n")
    wheel = package_run(detector, "toy-atlas", tmp_path / "dist", licence="CC0-1.0")
    assert wheel.name == "jaxuad_models_toy_atlas-1.0-py3-none-any.whl"
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", str(site), str(wheel)], check=True)  # fmt: skip
    listing = subprocess.run([script("jaxuad-models")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(site)})  # fmt: skip
    assert listing.returncode == 0 and "toy-atlas" in listing.stdout, listing.stderr
    assert "phantom atlas" in listing.stdout
    monkeypatch.syspath_prepend(str(site))
    assert [m.name for m in installed()] == ["toy-atlas"]
    folder = resolve_run("toy-atlas")
    assert folder == site / "jaxuad_models_toy_atlas" / "toy-atlas"
    assert (folder / "detector.json").is_file() and not (folder / ".lock").exists()
    shipped = sorted(p.name for p in folder.iterdir())
    single = tmp_path / "single"
    single.mkdir()
    for part in ("FLAIR", "brainmask"):
        (single / f"sub-l001_{part}.nii.gz").symlink_to(
            phantom_dir / "lesion" / f"sub-l001_{part}.nii.gz"
        )
    assert _detect("toy-atlas", single, tmp_path / "found") == 0
    assert json.loads((tmp_path / "found" / "detect.json").read_text())["run"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == shipped  # the package is only read


@pytest.fixture(scope="module")
def ixi_detector(tmp_path_factory):
    """An atlas of 20 skull-stripped IXI T1 scans on the MNI grid (histogram matched), its
    thresholds fitted per scan on 6 others: the pretrained detector's recipe, smaller. The
    first ten IXI subjects, which ixi-native/ holds as acquired, are in neither."""
    pytest.importorskip("ants", reason="ANTsPy is not installed (pip install 'jaxuad[preprocess]')")
    from jaxuad.data import discover
    from jaxuad.data.dataset import write_manifest
    from tests.conftest import require_shared_data

    shared = require_shared_data()
    ixi = discover(shared / "ixi", "T1w")
    root = tmp_path_factory.mktemp("ixi-detector")
    run = root / "atlas"
    assert train_cli.main(["--model", "atlas", "--data", str(write_manifest(ixi[20:40],
                           root / "train.csv")), "--modality", "T1w", "--workdir", str(run),
                           "--set", "data.histogram_match=true", "--no-progress"]) == 0
    assert detect_cli.main(["--fit", "--workdir", str(run), "--data", str(write_manifest(
                            ixi[40:46], root / "fit.csv")), "--per-scan", "--no-n4",
                            "--set", "evaluate.residual_sign=negative", "--no-progress"]) == 0
    return run, shared


def test_healthy_scans_as_acquired_get_near_empty_maps_on_their_own_grids(ixi_detector, tmp_path):
    """The ten ixi-native scans straight from the scanner (whole head, sagittal, scanner
    space): jaxuad-detect registers each onto the run, scores it and maps the result back
    onto the scan's own grid, where the healthy 1 % threshold must flag at most 1.5 % of
    the brain (the 100-scan pretrained detector flags 0.3-1.1 %: docs/results.md)."""
    run, shared = ixi_detector
    native = shared / "ixi-native"
    assert detect_cli.main(["--workdir", str(run), "--data", str(native), "--out",
                            str(tmp_path / "found"), "--no-progress"]) == 0  # fmt: skip
    report = json.loads((tmp_path / "found" / "detect.json").read_text())
    assert report["preprocessed"] and len(report["subjects"]) == 10
    for entry in report["subjects"]:
        sid = entry["subject"]
        scan = nib.load(native / f"sub-{sid}_T1w.nii.gz")
        found = nib.load(tmp_path / "found" / entry["files"]["lesions"])
        assert found.shape == scan.shape and np.allclose(found.affine, scan.affine)
        brain = np.asarray(nib.load(native / f"sub-{sid}_brainmask.nii.gz").dataobj) > 0
        flagged = (np.asarray(found.dataobj) > 0)[brain].mean()
        assert flagged <= 0.015, f"sub-{sid}: {flagged:.2%} of a healthy brain flagged"


def test_patients_moved_off_the_grid_keep_their_dice(ixi_detector, tmp_path):
    """MSLUB T1 moved onto randomly rotated, shifted grids of other voxel sizes, detected
    there (registration onto the run and back): the Dice in the moved space is the on-grid
    Dice within 0.02 for each patient."""
    from benchmarks.pretrained import move_patients

    run, shared = ixi_detector
    moved = move_patients(shared / "mslub", tmp_path / "moved")
    dices = {}
    for name, data in (("grid", shared / "mslub"), ("moved", moved)):
        out = tmp_path / f"found-{name}"
        assert detect_cli.main(["--workdir", str(run), "--data", str(data), "--out", str(out),
                                "--no-progress"]) == 0  # fmt: skip
        truth_dir = shared / "mslub" if name == "grid" else tmp_path / "mslub-moved-truth"
        for entry in json.loads((out / "detect.json").read_text())["subjects"]:
            seg = np.asarray(nib.load(out / entry["files"]["lesions"]).dataobj) > 0
            truth = nib.load(truth_dir / f"sub-{entry['subject']}_lesion.nii.gz")
            dices.setdefault(entry["subject"], {})[name] = dice(seg, truth.get_fdata() > 0.5)
    assert len(dices) == 3
    for sid, d in dices.items():
        assert d["moved"] == pytest.approx(d["grid"], abs=0.02), (sid, d)

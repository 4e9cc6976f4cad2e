"""Preprocessing scans as acquired (issue 38): brain extraction, registration onto a run's
template, and the way back. Needs ANTsPy (the `preprocess` extra; skipped without it) and,
for brain extraction, deepbet; the real scans come from ../shared/data."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from jaxuad.data.template import MeanImage
from jaxuad.metrics import dice
from tests.conftest import require_shared_data

ants = pytest.importorskip(
    "ants", reason="ANTsPy is not installed (pip install 'jaxuad[preprocess]')"
)

SUBJECT = "IXI013"


@pytest.fixture(scope="module")
def ixi_template(tmp_path_factory):
    """The mean of ten skull-stripped IXI scans on their 2 mm MNI grid, as a run writes it
    (those ten exclude the subject registered in the tests)."""
    from jaxuad.data import discover, load_volume
    from jaxuad.data.preprocess import normalize

    shared = require_shared_data()
    mean = MeanImage()
    for s in discover(shared / "ixi", "T1w")[10:20]:
        v = load_volume(s.id, s.image, s.brainmask, None)
        mean.add(normalize(v.image, v.brainmask, "minmax"), v.brainmask, v.affine)
    return mean.write(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="module")
def preprocessed(ixi_template, tmp_path_factory):
    """sub-IXI013 as acquired, with its own brain mask, through jaxuad-preprocess."""
    from jaxuad.cli import preprocess as cli

    shared = require_shared_data()
    raw = tmp_path_factory.mktemp("raw")
    for part in ("T1w", "brainmask"):
        src = shared / "ixi-native" / f"sub-{SUBJECT}_{part}.nii.gz"
        (raw / src.name).symlink_to(src)
    out = tmp_path_factory.mktemp("prep") / "out"
    assert cli.main(["--data", str(raw), "--template", str(ixi_template), "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    return out


def test_registration_matches_the_shared_registration(preprocessed, ixi_template):
    """Brain-mask Dice >= 0.94 against the mask of the same subject registered to MNI by the
    data's own pipeline, and the images correlate."""
    shared = require_shared_data()
    ours = nib.load(str(preprocessed / f"sub-{SUBJECT}_brainmask.nii.gz"))
    theirs = nib.load(str(shared / "ixi" / f"sub-{SUBJECT}_brainmask.nii.gz"))
    np.testing.assert_allclose(ours.affine, nib.load(str(ixi_template)).affine, atol=1e-4)
    a, b = np.asarray(ours.dataobj) > 0, np.asarray(theirs.dataobj) > 0
    assert dice(a, b) >= 0.94
    x = nib.load(str(preprocessed / f"sub-{SUBJECT}_T1w.nii.gz")).get_fdata()
    y = nib.load(str(shared / "ixi" / f"sub-{SUBJECT}_T1w.nii.gz")).get_fdata()
    both = a & b
    assert np.corrcoef(x[both], y[both])[0, 1] > 0.8
    record = json.loads((preprocessed / f"sub-{SUBJECT}_native.json").read_text())
    assert record["shape"] == list(nib.load(record["source"]).shape)


def test_the_mask_goes_back_onto_the_scan_as_acquired(preprocessed):
    from jaxuad.preprocess import NativeSpace, to_native

    shared = require_shared_data()
    record = NativeSpace.read(preprocessed, SUBJECT)
    mask = nib.load(str(preprocessed / f"sub-{SUBJECT}_brainmask.nii.gz")).get_fdata() > 0
    back = to_native(mask, preprocessed, record, label=True)
    native = nib.load(str(shared / "ixi-native" / f"sub-{SUBJECT}_brainmask.nii.gz"))
    assert back.shape == native.shape
    assert dice(back, np.asarray(native.dataobj) > 0) >= 0.95


def test_the_inverse_transform_is_exact_to_half_a_voxel(ixi_template, tmp_path):
    """A scan made from the template by a known rotation and shift, onto another grid:
    registered and brought back, a template-space blob lands where the known transform puts
    it (centroid error under half a voxel)."""
    from jaxuad.preprocess import preprocess_scan, to_native

    t = nib.load(str(ixi_template))
    template = t.get_fdata()
    angle = np.deg2rad(8.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                    [0, 0, 1]])  # fmt: skip
    move = np.eye(4)
    move[:3, :3], move[:3, 3] = rot, [6.0, -4.0, 3.0]  # world -> world, mm
    # the moved scan's grid: 2.5 mm voxels, its own origin; voxel -> world
    native_affine = np.diag([*(2.5 * np.sign(np.diag(t.affine)[:3])), 1.0])  # same axes
    native_affine[:3, 3] = t.affine[:3, 3] + [-5.0, 10.0, -5.0]
    native_shape = (80, 96, 80)
    from scipy import ndimage

    # native voxel -> world -> (inverse move) -> template world -> template voxel
    to_template_voxel = np.linalg.inv(t.affine) @ np.linalg.inv(move) @ native_affine
    native = ndimage.affine_transform(template, to_template_voxel[:3, :3], to_template_voxel[:3, 3],
                                      output_shape=native_shape, order=1)  # fmt: skip
    brain = native > 0.05
    nib.save(nib.Nifti1Image(native.astype(np.float32), native_affine), str(tmp_path / "s.nii.gz"))
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), native_affine), str(tmp_path / "m.nii.gz"))
    out = tmp_path / "out"
    out.mkdir()
    record = preprocess_scan(tmp_path / "s.nii.gz", tmp_path / "m.nii.gz", ixi_template, out,
                             "synthetic", n4=False)  # fmt: skip
    blob = np.zeros(template.shape, np.float32)
    centre = np.array([45, 60, 40])
    blob[tuple(slice(c - 3, c + 4) for c in centre)] = 1.0
    back = to_native(blob, out, record)
    got = np.array(ndimage.center_of_mass(back))
    world = move @ t.affine @ np.append(centre, 1.0)
    want = (np.linalg.inv(native_affine) @ world)[:3]
    assert np.abs(got - want).max() < 0.5, (got, want)


def test_a_missing_extra_is_named(monkeypatch):
    import builtins

    from jaxuad.config import ConfigError
    from jaxuad.preprocess import _ants

    real = builtins.__import__

    def no_ants(name, *args, **kw):
        if name == "ants":
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ants)
    with pytest.raises(ConfigError, match=r"pip install 'jaxuad\[preprocess\]'"):
        _ants()


def test_brain_extraction_on_scans_as_acquired():
    """deepbet's brain masks of three IXI scans as acquired against the data's own (Dice
    >= 0.93 each)."""
    pytest.importorskip("deepbet", reason="deepbet is not installed (brain extraction)")
    from jaxuad.preprocess import extract_brain

    shared = require_shared_data()
    for sid in ("IXI013", "IXI014", "IXI033"):
        mask = extract_brain(shared / "ixi-native" / f"sub-{sid}_T1w.nii.gz")
        ref = nib.load(str(shared / "ixi-native" / f"sub-{sid}_brainmask.nii.gz"))
        assert dice(mask, np.asarray(ref.dataobj) > 0) >= 0.93, sid


def test_restorations_go_back_onto_the_scan_as_acquired(preprocessed, tmp_path):
    """An atlas on the template's grid restores the preprocessed scan; --space both writes
    its volumes on the template grid and, in native/, on the scan as acquired."""
    from jaxuad.cli import restore as restore_cli
    from jaxuad.cli import train as train_cli

    shared = require_shared_data()
    manifest = tmp_path / "ten.csv"
    rows = ["subject,image,brainmask,lesion"]
    for sid in ("IXI033", "IXI034", "IXI039", "IXI049", "IXI051"):
        rows.append(
            f"{sid},{shared}/ixi/sub-{sid}_T1w.nii.gz,{shared}/ixi/sub-{sid}_brainmask.nii.gz,"
        )
    manifest.write_text("\n".join(rows) + "\n")
    atlas = tmp_path / "atlas"
    assert train_cli.main(["--model", "atlas", "--data", str(manifest), "--workdir", str(atlas),
                           "--no-progress"]) == 0  # fmt: skip
    out = tmp_path / "pred"
    assert restore_cli.main(["--workdir", str(atlas), "--data", str(preprocessed), "--out",
                             str(out), "--space", "both", "--no-progress"]) == 0  # fmt: skip
    native = nib.load(str(shared / "ixi-native" / f"sub-{SUBJECT}_T1w.nii.gz"))
    back = nib.load(str(out / "native" / f"sub-{SUBJECT}_residual.nii.gz"))
    assert back.shape == native.shape and np.allclose(back.affine, native.affine, atol=1e-4)
    assert (out / f"sub-{SUBJECT}_residual.nii.gz").is_file()
    assert np.asarray(back.dataobj).max() > 0
    summary = json.loads((out / "restore.json").read_text())
    assert summary["space"] == "both"

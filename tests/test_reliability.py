"""Reliability, round 3 (issue 36): each case of the issue, named after it. Inputs are never
touched, output folders appear whole or not at all, and every failure is one line."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest

from jaxuad.cli import _common
from jaxuad.config import ConfigError
from jaxuad.core.io import OutputFolder
from jaxuad.restore import cohort, restore_cohort
from jaxuad.restore.summary import owned_files
from tests.conftest import script


def _digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _cli(name, *args, cwd):
    r = subprocess.run([script(f"jaxuad-{name}"), *args], capture_output=True, text=True, cwd=cwd)
    return r.returncode, r.stderr


# 1. --out equal to --data deleted the input brain masks.
@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_case1_an_output_folder_never_is_inside_or_holds_an_input_folder(
    where, trained_run, phantom_dir, tmp_path
):
    data = tmp_path / "w" / "p"
    shutil.copytree(phantom_dir / "lesion", data)
    before = _digest(data)
    out = {"same": data, "inside": data / "pred", "holding": tmp_path / "w"}[where]
    with pytest.raises(ConfigError, match="must be a folder apart from the inputs"):
        restore_cohort(trained_run, data, out, overwrite=True, progress=False)
    assert _digest(data) == before and sorted(os.listdir(data)) == sorted(before)


def test_case1_the_command_refuses_out_equal_to_data_in_one_line(trained_run, phantom_dir,
                                                                  tmp_path):  # fmt: skip
    data = tmp_path / "p"
    shutil.copytree(phantom_dir / "lesion", data)
    before = _digest(data)
    code, err = _cli("restore", "--workdir", str(trained_run), "--data", str(data), "--out",
                     str(data), "--overwrite", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "apart from the inputs" in err and _digest(data) == before


def test_case1_overwrite_removes_only_what_restore_json_lists(trained_run, phantom_dir,
                                                               tmp_path):  # fmt: skip
    out = tmp_path / "pred"
    restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    (out / "notes.txt").write_text("mine")
    before = _digest(out)
    with pytest.raises(ConfigError, match=r"holds files an earlier jaxuad result does not list "
                                          r"\(notes.txt\)"):  # fmt: skip
        restore_cohort(trained_run, phantom_dir / "healthy", out, overwrite=True, progress=False)
    assert _digest(out) == before


# 2. A restoration is not atomic as a folder.
def test_case2_a_failed_overwrite_keeps_the_earlier_restoration(
    trained_run, phantom_dir, tmp_path, monkeypatch
):
    out = tmp_path / "pred"
    restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    before = _digest(out)
    real, calls = cohort.write_nifti_like, []

    def full_disk(array, ref, path):
        calls.append(path)
        if len(calls) == 5:  # the second subject's first file
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(array, ref, path)

    monkeypatch.setattr(cohort, "write_nifti_like", full_disk)
    with pytest.raises(OSError, match="No space left"):
        restore_cohort(trained_run, phantom_dir / "healthy", out, overwrite=True, progress=False)
    assert _digest(out) == before  # the earlier result, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [".pred.jaxuad-lock", "pred"]


def test_case2_a_second_writer_of_one_folder_fails_at_once(trained_run, phantom_dir, tmp_path):
    out = tmp_path / "pred"
    with OutputFolder(out):  # another jaxuad-restore, mid-way
        with pytest.raises(ConfigError, match="another jaxuad command is writing this folder"):
            restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    assert not out.exists()


def test_case2_a_killed_writers_leftovers_are_removed_by_the_next(trained_run, phantom_dir,
                                                                   tmp_path):  # fmt: skip
    out = tmp_path / "pred"
    restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    before = _digest(out)
    partial = tmp_path / ".pred.partial-99999"  # SIGKILL while writing
    partial.mkdir()
    (partial / "sub-x_residual.nii.gz").write_bytes(b"")
    os.replace(out, tmp_path / ".pred.old-99998")  # SIGKILL inside the swap
    restore_cohort(trained_run, phantom_dir / "healthy", tmp_path / "other", progress=False)
    with OutputFolder(out, overwrite=True, owned=owned_files):
        pass  # the next writer of pred: puts the earlier result back, drops the partial one
    assert _digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".pred")) == [
        ".pred.jaxuad-lock"
    ]


# 3. The training lock raced.
def test_case3_two_trainings_started_at_once_on_a_new_folder(phantom_dir, tmp_path):
    """Both start before either has a checkpoint: exactly one trains, the other stops with
    one line; config.json and the checkpoints agree, and each step is logged once."""
    work = tmp_path / "w"
    args = ["--model", "svae", "--variant", "smoke", "--data", str(phantom_dir / "healthy"),
            "--modality", "FLAIR", "--workdir", str(work), "--no-progress"]  # fmt: skip
    procs = [
        subprocess.Popen([script("jaxuad-train"), *args, *extra], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)  # fmt: skip
        for extra in ([], ["--set", "model.z_channels=8"])
    ]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    (err,) = [e for code, e in results if code == 2]
    assert err.startswith("error: ") and err.count("\n") == 1
    from jaxuad.config import load_json
    from jaxuad.train import load_run

    assert load_json(work / "config.json") == load_run(work).config
    steps = [line.split(",")[0] for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps))


# 4. Signals during restoration.
def test_case4_sigterm_during_a_restoration_ends_it_with_nothing_written(
    trained_run, phantom_dir, tmp_path, monkeypatch
):
    """The commands' SIGTERM handler fires while a file is being written (where nibabel's
    __del__ once swallowed it): the signal is held until the subject is done, then stops
    the run; the folder does not appear and nothing temporary is left."""
    previous = signal.signal(signal.SIGTERM, _common._interrupt)
    real, calls = cohort.write_nifti_like, []

    def write_then_signal(array, ref, path):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        real(array, ref, path)

    monkeypatch.setattr(cohort, "write_nifti_like", write_then_signal)
    out = tmp_path / "pred"
    try:
        with pytest.raises(KeyboardInterrupt):
            restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(calls) == 4  # the first subject finished, the second never started
    assert sorted(p.name for p in tmp_path.iterdir()) == [".pred.jaxuad-lock"]


def test_case4_a_signal_held_in_a_thread_free_section_is_never_lost():
    from jaxuad.core.signals import held_interrupts

    previous = signal.signal(signal.SIGTERM, _common._interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), held_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(0.01)  # nothing raised inside the block
            reached = True
        assert reached
    finally:
        signal.signal(signal.SIGTERM, previous)


# 5. Hangs and memory blow-ups from settings and headers.
@pytest.mark.parametrize(
    "setting, needle",
    [
        ("evaluate.median_mm=1000", "evaluate.median_mm: must lie in [0, 50]"),
        ("evaluate.erosion_mm=1000", "evaluate.erosion_mm: must lie in [0, 50]"),
        ("data.image_size=1000000000", "data.image_size: must lie in [8, 1024]"),
    ],
)
def test_case5_settings_that_would_hang_are_refused_when_read(setting, needle):
    from jaxuad.config import Config, override

    with pytest.raises(ConfigError, match=re.escape(needle)):
        override(Config(), [setting])


def _header_only(path, shape, *, nifti2=False):
    """A tiny .nii.gz whose header claims ``shape`` float32 voxels it does not hold."""
    import gzip

    import nibabel as nib

    cls = nib.Nifti2Header if nifti2 else nib.Nifti1Header
    h = cls()
    h.set_data_shape(shape)
    h.set_data_dtype(np.float32)
    raw = h.binaryblock + b"\0" * (int(h.get_data_offset()) - len(h.binaryblock)) + b"\0" * 64
    path.write_bytes(gzip.compress(raw))
    return path


@pytest.mark.parametrize(
    "shape, nifti2, needle",
    [
        ((1024, 1024, 512), False, "but the file holds"),
        ((1, 1, 100000), True, "too few in-plane"),
    ],
)
def test_case5_a_header_claiming_more_than_its_file_is_refused_before_reading(
    shape, nifti2, needle, tmp_path
):
    import resource

    from jaxuad.data import DataError, read_nifti

    path = _header_only(tmp_path / "x.nii.gz", shape, nifti2=nifti2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match=needle):
        read_nifti(path)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200_000  # the claimed 2 GB were never allocated


# 6. "internal error" where a one-line error and exit 2 are promised.
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "data.image_size=100"], "data.image_size / model.bottleneck_res"),
        (["--model", "anogan", "--variance-net"], "anogan has no encoder"),
        (["--set", "train.seed=100000000000000000000"], "train.seed: must lie in"),
    ],
)
def test_case6_bad_settings_are_one_line_errors(args, needle, tmp_path):
    model = [] if "--model" in args else ["--model", "svae"]
    code, err = _cli("train", *model, "--variant", "smoke", "--workdir", "w", *args, cwd=tmp_path)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err and not (tmp_path / "w").exists()


def test_case6_more_middle_slices_than_the_scan_has(phantom_dir):
    from jaxuad.config import DataConfig
    from jaxuad.data import load_volume, slice_volume

    src = phantom_dir / "healthy"
    vol = load_volume("h000", src / "sub-h000_FLAIR.nii.gz", src / "sub-h000_brainmask.nii.gz",
                      None)
    with pytest.raises(ConfigError, match="data.n_slices: 500 is more than the scan's"):
        slice_volume(vol, DataConfig(slices="middle", n_slices=500, modality="FLAIR"))


def test_case6_resuming_a_finished_run_says_so_and_succeeds(trained_run, smoke_images,
                                                           tmp_path, capsys):  # fmt: skip
    from jaxuad.config import load_json
    from jaxuad.train import Checkpoints, train

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    done = Checkpoints(run).latest_step()
    result = train(load_json(run / "config.json"), run, resume=True, progress=False,
                   images=smoke_images)  # fmt: skip
    assert result.steps == done and f"already at step {done}" in capsys.readouterr().out
    assert Checkpoints(run).steps()[-1] == done


# 7. Silent wrong results.
def test_case7_a_tiny_scale_slope_still_normalises_to_the_unit_range():
    from jaxuad.data.preprocess import normalize

    rng = np.random.default_rng(0)
    image = rng.uniform(100, 200, (8, 8, 8)) * 1e-30
    mask = np.ones(image.shape, bool)
    x = normalize(image, mask, "minmax")
    assert x.min() == pytest.approx(0.0) and x.max() == pytest.approx(1.0)
    z = normalize(image, mask, "zscore")
    assert z.std() == pytest.approx(1.0, rel=1e-3)


def test_case7_flipped_bytes_in_a_checkpoint_are_named_not_trained_on(trained_run, tmp_path):
    from jaxuad.core.errors import CheckpointError
    from jaxuad.train import Checkpoints, load_run

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    step = Checkpoints(run).latest_step()
    # stored bytes that changed without breaking the file format: a state with every
    # parameter perturbed, beside the checksum written for the original
    ckpt = Checkpoints(run)
    good = load_run(run)
    import jax

    from jaxuad.train.run import _abstract_state
    from jaxuad.train.schemes import phases_for

    dev = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state = ckpt.restore(_abstract_state(good.params, phases_for(good.config, 1), dev))
    bad = state._replace(params=jax.tree.map(lambda a: a + 1e-3, state.params))
    ckpt.save(step + 1, bad, json.loads((run / "config.json").read_text()))
    ckpt.close()
    checksum = run / "checkpoints" / str(step + 1) / "checksum"  # the good state's, kept
    shutil.rmtree(checksum)
    shutil.copytree(run / "checkpoints" / str(step) / "checksum", checksum)
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        load_run(run)


def test_case7_calibration_and_normative_fits_refuse_patients(trained_run, phantom_dir):
    from jaxuad.data import DataError
    from jaxuad.restore import calibrate, fit_normative_cohort

    with pytest.raises(DataError, match="lesion voxels in its lesion mask; normative"):
        fit_normative_cohort(trained_run, phantom_dir / "lesion", progress=False)
    with pytest.raises(DataError, match="lesion voxels in its lesion mask; lambda"):
        calibrate(trained_run, phantom_dir / "lesion", method="lg_est", progress=False)


def test_case7_voxel_keys_under_mm_units_are_refused():
    from jaxuad.config import Config, override

    with pytest.raises(ConfigError, match="evaluate.median_size: applies with units=voxels"):
        override(Config(), ["evaluate.median_size=3"])
    assert override(Config(), ["evaluate.units=voxels", "evaluate.median_size=3"])


# 8. The Python API checks its arguments at the call.
@pytest.mark.parametrize(
    "case, needle",
    [
        ("shape", r"masks\[1\] \(subject '1'\): shape \(4, 4, 5\) differs"),
        ("nan", r"residuals\[0\] \(subject '0'\): 1 non-finite values"),
        ("2d", r"residuals\[0\] \(subject '0'\): expected a 3D volume"),
        ("count", r"masks: 1 given for 2 residuals"),
    ],
)
def test_case8_score_and_fit_thresholds_name_the_argument(case, needle):
    from jaxuad.config import EvaluateConfig
    from jaxuad.data import DataError
    from jaxuad.evaluate import fit_thresholds

    cfg = EvaluateConfig(units="voxels", median_size=1, erosion_iterations=0)
    r = [np.ones((4, 4, 4), np.float32), np.ones((4, 4, 4), np.float32)]
    m = [np.ones((4, 4, 4), bool), np.ones((4, 4, 4), bool)]
    if case == "shape":
        m[1] = np.ones((4, 4, 5), bool)
    elif case == "nan":
        r[0][1, 1, 1] = np.nan
    elif case == "2d":
        r[0], m[0] = np.ones((4, 4)), np.ones((4, 4), bool)
    elif case == "count":
        m = m[:1]
    with pytest.raises(DataError, match=needle):
        fit_thresholds(r, m, cfg)


@pytest.mark.parametrize("thresholds", [{}, {"thresholds": {}}, None])
def test_case8_score_refuses_thresholds_that_are_not_fitted_ones(thresholds):
    from jaxuad.config import EvaluateConfig
    from jaxuad.data import DataError
    from jaxuad.evaluate import score

    cfg = EvaluateConfig(units="voxels")
    vol = np.ones((4, 4, 4), np.float32)
    with pytest.raises(DataError, match="thresholds: "):
        score([vol], [vol > 0], [None], thresholds, cfg)


# 9. Figures are written atomically.
def test_case9_a_figure_that_fails_to_draw_leaves_no_file(tmp_path, monkeypatch):
    import matplotlib.figure

    from jaxuad.report import figures

    def broken(self, fname, **kw):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(OSError):
        figures.sample_grid(np.zeros((4, 8, 8)), tmp_path / "s.png", "x")
    assert list(tmp_path.iterdir()) == []


def test_case6_a_damaged_checkpoint_is_one_line_without_tracebacks_after_it(
    trained_run, phantom_dir, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    step = max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    for f in (run / "checkpoints" / str(step) / "state").rglob("d/*"):
        data = bytearray(f.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        f.write_bytes(bytes(data))
    code, err = _cli("restore", "--workdir", str(run), "--data", str(phantom_dir / "lesion"),
                     "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path)  # fmt: skip
    assert code == 2 and err.count("\n") == 1, err[:2000]
    assert "checkpoint cannot be read" in err and not (tmp_path / "out").exists()

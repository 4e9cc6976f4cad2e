"""Careless and hostile input (issue 24): each numbered case of the issue, named after it.

Every case ends in a one-line ``error: ...`` with exit code 2 (or works correctly), writes
nothing outside ``--out``/``--workdir`` and leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from jaxuad.cli import _common
from jaxuad.config import Config, ConfigError, override
from jaxuad.data import DataError, discover, load_volume, write_json, write_nifti_like
from jaxuad.data.nifti import atomic_path
from jaxuad.data.preprocess import normalize
from jaxuad.restore import restore_cohort
from jaxuad.train import Checkpoints, load_run, train
from jaxuad.train import trainer as trainer_module
from tests.conftest import script, smoke_config

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _save(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data), AFFINE), str(path))
    return path


def _subject(folder, sid="a", image=None, lesion=None):
    """sub-<sid>_T1w and _brainmask (and _lesion) in ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    image = rng.uniform(1, 2, (8, 9, 6)).astype(np.float32) if image is None else image
    mask = np.zeros(image.shape, np.uint8)
    mask[1:7, 1:8, 1:5] = 1
    paths = {
        "image": _save(folder / f"sub-{sid}_T1w.nii.gz", image),
        "brainmask": _save(folder / f"sub-{sid}_brainmask.nii.gz", mask),
    }
    if lesion is not None:
        paths["lesion"] = _save(folder / f"sub-{sid}_lesion.nii.gz", lesion)
    return paths


def _manifest(path, *rows, header="subject,image,brainmask,lesion", encoding="utf-8"):
    path.write_bytes("\n".join([header, *rows]).encode(encoding) + b"\n")
    return path


def _cli(name, *args, cwd):
    r = subprocess.run([script(f"jaxuad-{name}"), *args], capture_output=True, text=True, cwd=cwd)
    return r.returncode, r.stderr


def _one_line_error(stderr: str, needle: str) -> bool:
    return stderr.startswith("error: ") and stderr.count("\n") == 1 and needle in stderr


# 1. Subject ids become paths.
@pytest.mark.parametrize("sid", ["x/../../healthy/sub-IXI034", "a/b", "", "..", "a b", "é"])
def test_case01_subject_ids_are_names_not_paths(sid, tmp_path):
    s = _subject(tmp_path / "scans")
    m = _manifest(tmp_path / "m.csv", f"{sid},{s['image']},{s['brainmask']},")
    with pytest.raises(DataError, match=r"m\.csv, line 2: subject id .* is not a plain name"):
        discover(m)


def test_case01_plain_ids_are_accepted(tmp_path):
    s = _subject(tmp_path / "scans")
    m = _manifest(tmp_path / "m.csv", f"IXI-034.v2_a,{s['image']},{s['brainmask']},")
    assert [x.id for x in discover(m)] == ["IXI-034.v2_a"]


# 2. Duplicate ids.
def test_case02_duplicate_manifest_ids_are_refused(tmp_path):
    s = _subject(tmp_path / "scans")
    row = f"a,{s['image']},{s['brainmask']},"
    with pytest.raises(DataError, match="line 3: subject 'a' already on line 2"):
        discover(_manifest(tmp_path / "m.csv", row, row))


def test_case02_one_scan_spelled_twice_is_refused(tmp_path):
    s = _subject(tmp_path / "scans")
    shutil.copy(s["image"], tmp_path / "scans" / "sub-a_T1w.nii")  # the same scan, twice
    with pytest.raises(DataError, match="same scan spelled twice"):
        discover(tmp_path / "scans")


# 3 and 11. keep_checkpoints, epochs and batch size below 1; 15: negative post-processing.
@pytest.mark.parametrize(
    "setting",
    [
        "train.keep_checkpoints=0",
        "train.epochs=0",
        "train.epochs=-3",
        "train.batch_size=-1",
        "evaluate.median_size=-1",
        "evaluate.erosion_iterations=-1",
        "evaluate.min_component_size=-2",
    ],
)
def test_case03_11_15_settings_that_would_lose_or_fake_a_run_are_refused(setting):
    with pytest.raises(ConfigError, match=setting.split("=")[0].replace(".", r"\.")):
        override(Config(), [setting])


@pytest.fixture(scope="module")
def run_with_steps(smoke_images, tmp_path_factory):
    """A smoke svae with checkpoints at steps 4, 8 and 12."""
    cfg = smoke_config("svae")
    cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, epochs=2, log_every=3, checkpoint_every=4)
    )
    workdir = tmp_path_factory.mktemp("steps") / "run"
    train(cfg, workdir, images=smoke_images[:24], progress=False)
    return cfg, workdir


@pytest.fixture
def run_copy(run_with_steps, tmp_path):
    cfg, workdir = run_with_steps
    return cfg, shutil.copytree(workdir, tmp_path / "run")


# 4. A lock on --workdir.
def test_case04_a_second_training_of_one_workdir_is_refused(run_copy, smoke_images):
    cfg, workdir = run_copy
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    with (workdir / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a training in another process
        with pytest.raises(ConfigError, match="another jaxuad-train is using this run"):
            train(cfg, workdir, resume=True, images=smoke_images[:24], progress=False)
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


# 5 and 15. Normalisation statistics in float64; images without contrast.
@pytest.mark.parametrize("scale", [1.0, 1e30, 3e38 / 2.5])
@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_case05_normalisation_is_scale_invariant_up_to_float32_max(scale, method):
    rng = np.random.default_rng(0)
    image = rng.uniform(1, 2.5, (6, 7, 5)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[1:5, 1:6, 1:4] = True
    big = (image.astype(np.float64) * scale).astype(np.float32)
    assert np.isfinite(big).all()
    out = normalize(big, mask, method)
    np.testing.assert_allclose(out, normalize(image, mask, method), rtol=1e-5, atol=1e-5)
    assert out[mask].std() > 0.1


def test_case15_an_image_without_contrast_is_an_error_naming_it(tmp_path):
    s = _subject(tmp_path, image=np.zeros((8, 9, 6), np.float32))
    with pytest.raises(DataError, match=r"sub-a_T1w\.nii\.gz: no contrast inside the brain"):
        load_volume("a", s["image"], s["brainmask"], None)


# 6. λ and steps, and strict JSON.
@pytest.mark.parametrize("setting", ["restore.lam=nan", "restore.lam=inf", "restore.lam=-1",
                                     "restore.steps=0", "restore.steps=-5"])  # fmt: skip
def test_case06_lambda_and_steps_are_checked(setting):
    with pytest.raises(ConfigError, match=setting.split("=")[0].replace(".", r"\.")):
        override(Config(), [setting])


def test_case06_json_is_written_strictly(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json({"lam": float("nan")}, tmp_path / "restore.json")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# 7. Lesion masks that are not binary.
@pytest.mark.parametrize("values", [(0.0, 0.4), (0.0, -1.0), (0.0, 1.0, 2.0)])
def test_case07_non_binary_lesion_masks_are_an_error(values, tmp_path):
    lesion = np.zeros((8, 9, 6), np.float32)
    lesion.flat[: len(values)] = values
    s = _subject(tmp_path, lesion=lesion)
    with pytest.raises(DataError, match=r"sub-a_lesion\.nii\.gz: lesion mask must be binary"):
        load_volume("a", s["image"], s["brainmask"], s["lesion"])


@pytest.mark.parametrize("high", [1, 255])
def test_case07_binary_lesion_masks_load(high, tmp_path):
    lesion = np.zeros((8, 9, 6), np.uint8)
    lesion[2:4, 2:4, 2:4] = high
    s = _subject(tmp_path, lesion=lesion)
    assert load_volume("a", s["image"], s["brainmask"], s["lesion"]).lesion.sum() == 8


# 8. Damaged checkpoints; --step that does not exist.
@pytest.mark.parametrize("damage", ["truncate", "zero", "delete"])
def test_case08_a_damaged_checkpoint_is_named_with_the_steps_kept(damage, run_copy):
    _, workdir = run_copy
    files = sorted(p for p in (workdir / "checkpoints" / "12" / "state").rglob("*") if p.is_file())
    assert files
    for p in files:
        if damage == "truncate":
            p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])
        elif damage == "zero":
            p.write_bytes(bytes(p.stat().st_size))
        else:
            p.unlink()
    with pytest.raises(DataError, match=r"checkpoints/12: checkpoint cannot be read.*4, 8"):
        load_run(workdir)
    assert load_run(workdir, step=8).config.model.name == "svae"  # the earlier steps still serve


def test_case08_a_missing_step_lists_the_steps_kept(run_copy):
    assert Checkpoints(run_copy[1]).steps() == [4, 8, 12]
    with pytest.raises(DataError, match=r"no checkpoint at step 999 \(steps kept: 4, 8, 12\)"):
        load_run(run_copy[1], step=999)


# 9. --resume compares with the checkpoint's own config.
def test_case09_resume_checks_the_checkpoint_config_when_config_json_is_gone(
    run_copy, smoke_images
):
    cfg, workdir = run_copy
    (workdir / "config.json").unlink()
    changed = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, learning_rate=0.5))
    with pytest.raises(ConfigError, match="learning_rate"):
        train(changed, workdir, resume=True, images=smoke_images[:24], progress=False)
    assert not (workdir / "config.json").exists()  # nothing rewritten


# 10. Tracebacks that became one-line errors.
def test_case10_manifests_excel_bom_short_rows_and_other_encodings(tmp_path):
    s = _subject(tmp_path / "scans")
    row = f"a,{s['image']},{s['brainmask']},"
    bom = _manifest(tmp_path / "bom.csv", row, encoding="utf-8-sig")
    assert [x.id for x in discover(bom)] == ["a"]
    with pytest.raises(DataError, match=r"short\.csv, line 2: expected 4 columns"):
        discover(_manifest(tmp_path / "short.csv", "a,x"))
    with pytest.raises(DataError, match=r"empty\.csv, line 2: subject 'a' needs an image"):
        discover(_manifest(tmp_path / "empty.csv", f"a,,{s['brainmask']},"))
    latin = _manifest(tmp_path / "latin.csv", "s\xe9,x,y,", encoding="latin-1")
    with pytest.raises(DataError, match=r"latin\.csv: manifest is not UTF-8"):
        discover(latin)


def test_case10_damaged_run_files_are_errors_naming_them(run_copy, tmp_path):
    from jaxuad.train.run import calibrated_lambda

    _, workdir = run_copy
    (workdir / "calibration.json").write_text('{"lg_est/tv": {"lam": ')
    with pytest.raises(DataError, match=r"calibration\.json: cannot read calibration file"):
        calibrated_lambda(workdir, "lg_est", "tv")
    (workdir / "calibration.json").write_text('{"lg_est/tv": {"lam": "big"}}')
    with pytest.raises(DataError, match="holds no valid lam"):
        calibrated_lambda(workdir, "lg_est", "tv")
    from jaxuad.config import load_json

    (tmp_path / "config.json").write_text('{"train": {"epochs": "many"}}')
    with pytest.raises(ConfigError, match=r"config\.json: train\.epochs: expected int"):
        load_json(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"train": 5}')
    with pytest.raises(ConfigError, match=r"config\.json: expected an object of sections"):
        load_json(tmp_path / "config.json")


def test_case10_a_partial_last_log_line_is_dropped_on_resume(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 3, "loss": 1.0}\n{"step": 6, "loss": 0.5}\n{"step": 9, "lo')
    trainer_module._trim_log(log, 6)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [3, 6]


@pytest.mark.parametrize(
    "exc, code, needle",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/out/x.nii.gz"), 2,
         "error: /out/x.nii.gz: No space left on device"),
        (DataError("/d/m.csv: broken"), 2, "error: /d/m.csv: broken"),
        (ZeroDivisionError("division by zero"), 1, "error: internal error: ZeroDivisionError"),
    ],
)  # fmt: skip
def test_case10_every_failure_is_one_line_and_debug_shows_the_traceback(
    exc, code, needle, capsys, monkeypatch
):
    def main():
        raise exc

    monkeypatch.setattr(sys, "argv", ["jaxuad-x"])
    monkeypatch.setenv("JAXUAD_NO_DEFAULTS", "1")
    with pytest.raises(SystemExit) as e:
        _common.run(main)
    err = capsys.readouterr().err
    assert e.value.code == code and err.startswith(needle) and err.count("\n") == 1
    monkeypatch.setattr(sys, "argv", ["jaxuad-x", "--debug"])
    with pytest.raises(type(exc)):
        _common.run(main)


def test_case10_commands_refuse_files_where_folders_belong(tmp_path):
    (tmp_path / "afile").write_text("x")
    code, err = _cli("train", "--model", "svae", "--variant", "smoke", "--workdir", "afile",
                     cwd=tmp_path)  # fmt: skip
    assert code == 2 and _one_line_error(err, "afile: exists and is not a folder"), err
    code, err = _cli("restore", "--workdir", "nowhere", "--data", "d", "--out", "afile",
                     cwd=tmp_path)  # fmt: skip
    assert code == 2 and _one_line_error(err, "afile: exists and is not a folder"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


# 13. Restoring into a folder that holds results.
def test_case13_restore_refuses_a_non_empty_out_and_overwrite_replaces_it(
    trained_run, phantom_dir, tmp_path
):
    out = tmp_path / "pred"
    restore_cohort(trained_run, phantom_dir / "lesion", out, progress=False)
    lesion_files = {p.name for p in out.iterdir()}
    (out / ".tmp-xyz.nii.gz").write_bytes(b"")  # left by a killed restore
    with pytest.raises(ConfigError, match="already holds .* files; .*--overwrite"):
        restore_cohort(trained_run, phantom_dir / "healthy", out, progress=False)
    assert {p.name for p in out.iterdir()} == lesion_files | {".tmp-xyz.nii.gz"}
    summary = restore_cohort(trained_run, phantom_dir / "healthy", out, overwrite=True,
                             progress=False)  # fmt: skip
    names = {p.name for p in out.iterdir()}
    assert names == {"restore.json"} | {
        f"sub-{sid}_{part}.nii.gz"
        for sid in summary.subjects
        for part in ("restored", "residual", "brainmask", "normalized")
    }
    assert not names & (lesion_files - {"restore.json"})  # no stale subject is left


# 14. Output files get the user's umask.
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_case14_outputs_get_the_users_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        write_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


# 15. A failed start leaves no run folder; an interrupted write leaves no temporary file.
@pytest.mark.parametrize("existing", [False, True])
def test_case15_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(
    existing, smoke_images, tmp_path, monkeypatch
):
    workdir = tmp_path / "run"
    if existing:
        workdir.mkdir()
        (workdir / "notes.txt").write_text("mine")

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(trainer_module, "build_model", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(smoke_config("svae"), workdir, images=smoke_images[:8], progress=False)
    if existing:
        assert [p.name for p in workdir.iterdir()] == ["notes.txt"]  # the user's file stays
    else:
        assert not workdir.exists()


def test_case15_an_interrupted_atomic_write_leaves_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.nii.gz") as tmp:
        open(tmp, "wb").write(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_case15_a_restore_that_fails_halfway_leaves_no_partial_cohort(
    trained_run, phantom_dir, tmp_path, monkeypatch
):
    from jaxuad.restore import cohort

    calls = []

    def disk_full_at_the_second_subject(array, vol, path):
        calls.append(path)
        if len(calls) > 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_nifti_like(array, vol, path)

    monkeypatch.setattr(cohort, "write_nifti_like", disk_full_at_the_second_subject)
    with pytest.raises(OSError, match="No space left"):
        restore_cohort(trained_run, phantom_dir / "lesion", tmp_path / "pred", progress=False)
    assert len(calls) == 5 and not (tmp_path / "pred").exists()

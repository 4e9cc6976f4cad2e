"""Data-parallel training, sharded restoration and post-processing on 4 virtual CPU devices.

These tests need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX starts,
so they run in their own process: ``tests/test_multidevice.py`` launches them (or run
``JAXUAD_MULTIDEVICE=1 XLA_FLAGS=--xla_force_host_platform_device_count=4 pytest
tests/multidevice``). Each compares N devices with one device in the same process.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from jaxuad import distributed
from jaxuad.config import ConfigError, EvaluateConfig
from jaxuad.data import read_nifti
from jaxuad.postprocess import Postprocessor
from jaxuad.restore import calibrate, restore_cohort
from jaxuad.train import Checkpoints, load_run, train
from tests.conftest import smoke_config

# Float reduction order differs between 1 and 4 devices (the gradient all-reduce); a few
# Adam steps keep that at the level of float32 rounding.
TRAIN_ATOL = 1e-5


def test_runs_with_four_devices():
    assert jax.device_count() == 4, "launch with --xla_force_host_platform_device_count=4"


def _cfg(model: str, epochs: int = 1):
    cfg = smoke_config(model)
    return dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, epochs=epochs, batch_size=8, checkpoint_every=3),
    )


def _params(workdir):
    return jax.tree.leaves(load_run(workdir).params)


def _assert_close(a_run, b_run, atol):
    for a, b in zip(_params(a_run), _params(b_run), strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def _train_on_1_and_4(model: str, images, root):
    """``model`` trained straight on 1 and on 4 devices (48 slices, 6 steps)."""
    cfg = _cfg(model)
    for n in (1, 4):
        result = train(cfg, root / f"d{n}", images=images, devices=n, progress=False)
        assert result.steps == 6
    return cfg


@pytest.fixture(scope="module")
def runs(smoke_images, tmp_path_factory):
    root = tmp_path_factory.mktemp("svae")
    return _train_on_1_and_4("svae", smoke_images[:48], root), smoke_images[:48], root


def test_training_on_four_devices_equals_one(runs):
    _, _, root = runs
    _assert_close(root / "d1", root / "d4", TRAIN_ATOL)


def test_multi_phase_training_on_four_devices_equals_one(smoke_images, tmp_path):
    # AnoVAEGAN: three phases, each with its own optimiser, two of them adversarial
    _train_on_1_and_4("anovaegan", smoke_images[:48], tmp_path)
    _assert_close(tmp_path / "d1", tmp_path / "d4", TRAIN_ATOL)


def test_state_is_replicated_and_batch_sharded(smoke_images, tmp_path):
    result = train(_cfg("svae"), tmp_path, images=smoke_images[:8], devices=4, progress=False)
    leaf = jax.tree.leaves(result.state.params)[0]
    assert len(leaf.sharding.device_set) == 4 and leaf.sharding.is_fully_replicated


@pytest.mark.parametrize("kill_on,resume_on", [(4, 1), (1, 4)])
def test_checkpoints_move_between_device_counts(runs, tmp_path, kill_on, resume_on):
    cfg, images, root = runs
    train(cfg, tmp_path, images=images, devices=kill_on, stop_after=3, progress=False)
    assert Checkpoints(tmp_path).latest_step() == 3
    result = train(cfg, tmp_path, images=images, devices=resume_on, resume=True, progress=False)
    assert result.steps == 6
    _assert_close(root / "d1", tmp_path, TRAIN_ATOL)


def test_indivisible_batch_is_a_clear_error(smoke_images, tmp_path):
    cfg = _cfg("svae")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=6))
    with pytest.raises(ConfigError, match="train.batch_size 6 is not divisible by 4 devices"):
        train(cfg, tmp_path / "run", images=smoke_images[:12], devices=4, progress=False)
    assert not (tmp_path / "run").exists()  # nothing written
    with pytest.raises(ConfigError, match="sees 4 device"):
        distributed.make_mesh(5)


@pytest.fixture(scope="module")
def restorations(trained_run, phantom_dir, tmp_path_factory):
    """lg_est restorations of the lesion phantom on 1 and 4 devices (chunks of 8 slices)."""
    out = tmp_path_factory.mktemp("restored")
    opts = dict(
        method="lg_est",
        restore_overrides=dict(steps=3, samples=2, lam=1.0, batch_size=8),
        progress=False,
    )
    for n in (1, 4):
        restore_cohort(trained_run, phantom_dir / "lesion", out / f"d{n}", devices=n, **opts)
    return out


def test_sharded_restoration_equals_unsharded(restorations):
    files = sorted(p.name for p in (restorations / "d1").glob("sub-*_re*.nii.gz"))
    assert len(files) == 4  # restored and residual of two subjects
    for name in files:
        one, four = (
            read_nifti(restorations / "d1" / name)[0],
            read_nifti(restorations / "d4" / name)[0],
        )
        assert np.abs(one).max() > 0
        np.testing.assert_allclose(four, one, atol=1e-6, rtol=0)


def test_sharded_calibration_equals_unsharded(trained_run, phantom_dir):
    # 3 lambdas over 4 devices: the grid is padded, and every real lambda sees the same
    # slices and keys as on one device.
    opts = dict(
        method="lg_est",
        restore_overrides=dict(
            steps=3, samples=2, lam_grid=(0.1, 10.0, 1000.0), calibrate_slices=4
        ),
        progress=False,
    )
    one = calibrate(trained_run, phantom_dir / "healthy", devices=1, **opts)
    four = calibrate(trained_run, phantom_dir / "healthy", devices=4, **opts)
    assert len(four.ssim) == 3 and four.devices == 4
    np.testing.assert_allclose(four.ssim, one.ssim, atol=1e-6)
    assert four.lam == one.lam


def test_restoration_chunk_must_divide(trained_run, phantom_dir, tmp_path):
    with pytest.raises(ConfigError, match="restore.batch_size 6 is not divisible by 4"):
        restore_cohort(
            trained_run,
            phantom_dir / "lesion",
            tmp_path / "out",
            restore_overrides=dict(batch_size=6),
            devices=4,
            progress=False,
        )
    assert not (tmp_path / "out").exists()


def test_postprocessing_by_volume_equals_one_device():
    rng = np.random.default_rng(0)
    shape = (12, 14, 10)
    vols = [
        (rng.random(shape).astype(np.float32), rng.random(shape) > 0.2, rng.random(shape) > 0.1)
        for _ in range(5)  # 5 volumes on 4 devices: a full group and a padded one
    ] + [
        (
            rng.random((8, 8, 8)).astype(np.float32),
            np.ones((8, 8, 8), bool),
            np.ones((8, 8, 8), bool),
        )
    ]
    for r, _, _ in vols:
        r[2:7, 2:7, 2:7] += 1.0  # one bright blob each, which survives as a component
    cfg = EvaluateConfig(units="voxels", components="jax", erosion_iterations=1)
    one, four = Postprocessor(cfg, devices=1), Postprocessor(cfg, devices=4)
    f1, f4 = one.filter_many(vols), four.filter_many(vols)
    for a, b, v in zip(f1, f4, vols, strict=True):
        assert a.shape == v[0].shape
        np.testing.assert_array_equal(a, b)
    s1, s4 = one.segment_many(f1, 0.6), four.segment_many(f4, 0.6)
    assert all(s.any() for s in s1)
    for a, b in zip(s1, s4, strict=True):
        np.testing.assert_array_equal(a, b)

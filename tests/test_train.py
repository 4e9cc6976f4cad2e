import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxuad.config import ConfigError
from jaxuad.train import Checkpoints, TrainingDiverged, load_run, train
from jaxuad.train import trainer as trainer_module
from tests.conftest import smoke_config


def _cfg(epochs=2):
    cfg = smoke_config("svae")
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, epochs=epochs, log_every=3, checkpoint_every=4)
    )


def _params(workdir):
    return jax.tree.leaves(load_run(workdir)[2])


def test_resume_after_interruption_gives_identical_weights(smoke_images, tmp_path):
    images = smoke_images[:24]  # 6 steps per epoch, 12 in all
    cfg = _cfg()
    train(cfg, tmp_path / "straight", images=images, progress=False)
    train(cfg, tmp_path / "killed", images=images, stop_after=7, progress=False)
    assert Checkpoints(tmp_path / "killed").latest_step() == 7
    result = train(cfg, tmp_path / "killed", images=images, resume=True, progress=False)
    assert result.steps == 12
    for a, b in zip(_params(tmp_path / "straight"), _params(tmp_path / "killed"), strict=True):
        np.testing.assert_array_equal(a, b)
    steps = [json.loads(x)["step"] for x in (tmp_path / "killed" / "metrics.jsonl").open()]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_refuses_to_overwrite_or_change_a_run(smoke_images, tmp_path):
    images = smoke_images[:8]
    train(_cfg(1), tmp_path, images=images, progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(_cfg(1), tmp_path, images=images, progress=False)
    changed = dataclasses.replace(
        _cfg(1), train=dataclasses.replace(_cfg(1).train, learning_rate=0.5)
    )
    with pytest.raises(ConfigError, match="learning_rate"):
        train(changed, tmp_path, images=images, resume=True, progress=False)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(smoke_images, tmp_path, monkeypatch):
    real = trainer_module.loss_for("svae")

    def poisoned(model, x, key, cfg):
        loss, m = real(model, x, key, cfg)
        return loss + jnp.where(x.sum() < -1.0, jnp.nan, 0.0), m

    images = smoke_images[:24].copy()
    sixth_batch = trainer_module.batch_indices(24, 4, 0, 0)[5]
    images[sixth_batch] = -1.0  # step 6 is the first to see them: NaN from there on
    monkeypatch.setattr(trainer_module, "loss_for", lambda name: poisoned)
    # log_every=3, checkpoint_every=4: step 4 is saved, the NaN is caught at step 6.
    with pytest.raises(TrainingDiverged, match="Last good checkpoint: step 4"):
        train(_cfg(), tmp_path, images=images, progress=False)
    assert Checkpoints(tmp_path).latest_step() == 4
    assert all(np.all(np.isfinite(p)) for p in _params(tmp_path))

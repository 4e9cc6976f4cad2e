"""Training from the on-disk slice store (train.stream) and augmentation (train.augment_*):
the same batches as in memory, exact resumes, bounded reads, deterministic draws."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxuad.data import DataError
from jaxuad.data.augment import Augmentation, augment
from jaxuad.data.store import SliceStore, build_store, open_store
from jaxuad.train import Checkpoints, load_run, train, trainer
from tests.conftest import smoke_config

pytest.importorskip("grain", reason="the stream extra (grain) is not installed")


def _cfg(phantom_dir, **train_kw):
    cfg = smoke_config("svae", path=str(phantom_dir / "healthy"))
    kw = dict(epochs=2, log_every=3, checkpoint_every=4, loader_threads=2) | train_kw
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **kw))


def _params(workdir):
    return jax.tree.leaves(load_run(workdir).params)


def _same(a, b):
    for x, y in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(x, y)


AUG = dict(augment_flip=0.5, augment_intensity=0.1, augment_rotate_deg=10.0, augment_scale=0.05)


def test_streamed_training_equals_in_memory_with_augmentation(phantom_dir, tmp_path):
    train(_cfg(phantom_dir, **AUG), tmp_path / "memory", progress=False)
    train(_cfg(phantom_dir, stream=True, **AUG), tmp_path / "stream", progress=False)
    _same(tmp_path / "memory", tmp_path / "stream")
    store = SliceStore(tmp_path / "stream" / trainer.STORE_FOLDER)
    memory = trainer.training_images(_cfg(phantom_dir))
    assert store.shape == memory.shape
    rows = np.array([5, 0, len(store) - 1, 5])
    np.testing.assert_array_equal(store[rows], memory[rows])
    assert [s[0] for s in store.subjects] == ["h000", "h001", "h002"]
    assert not (tmp_path / "memory" / trainer.STORE_FOLDER).exists()


def test_a_streamed_run_resumes_exactly_and_reuses_its_store(phantom_dir, tmp_path, monkeypatch):
    cfg = _cfg(phantom_dir, stream=True, **AUG)
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "killed", stop_after=5, progress=False)
    assert Checkpoints(tmp_path / "killed").latest_step() == 5
    built = []
    monkeypatch.setattr(trainer, "build_store", lambda *a: built.append(a))
    # the loader may change on resume: the batches do not
    memory = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stream=False))
    train(memory, tmp_path / "killed", resume=True, stop_after=9, progress=False)
    train(cfg, tmp_path / "killed", resume=True, progress=False)
    assert built == []  # the store from the first start was read, not rebuilt
    _same(tmp_path / "straight", tmp_path / "killed")


def test_a_store_is_rebuilt_when_its_inputs_change(tmp_path):
    rows = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    store = build_store(tmp_path / "s", [("a", rows[:3]), ("b", rows[3:])], key="one")
    assert store.subjects == [("a", 0, 3), ("b", 3, 1)]
    assert open_store(tmp_path / "s", "one") is not None
    assert open_store(tmp_path / "s", "two") is None  # stale: the caller rebuilds
    assert not list(tmp_path.glob(".*partial"))
    (tmp_path / "s" / "slices.f32").write_bytes(rows[:2].tobytes())  # cut short
    with pytest.raises(DataError, match=r"slices\.f32: 512 bytes, expected 1024"):
        SliceStore(tmp_path / "s")
    assert open_store(tmp_path / "s", "one") is None


def test_store_key_follows_the_input_files(phantom_dir, tmp_path):
    import shutil

    from jaxuad.data.store import store_key

    data = tmp_path / "healthy"
    shutil.copytree(phantom_dir / "healthy", data)
    key = store_key({"image_size": 32}, data, "FLAIR")
    assert store_key({"image_size": 32}, data, "FLAIR") == key
    assert store_key({"image_size": 64}, data, "FLAIR") != key
    image = data / "sub-h001_FLAIR.nii.gz"
    image.write_bytes(image.read_bytes() + b"\0")  # a changed scan
    assert store_key({"image_size": 32}, data, "FLAIR") != key


def test_augmentation_draws_depend_on_seed_and_step_only():
    x = np.random.default_rng(1).uniform(size=(6, 16, 16, 3)).astype(np.float32)
    cfg = Augmentation(0.5, 0.2, 15.0, 0.1)
    a = augment(x, cfg, seed=3, step=7, fill=-3.5)
    np.testing.assert_array_equal(a, augment(x, cfg, seed=3, step=7, fill=-3.5))
    assert not np.array_equal(a, augment(x, cfg, seed=3, step=8, fill=-3.5))
    # a process holding rows 2:4 of the global batch draws what the whole batch gives them
    part = augment(x[2:4], cfg, seed=3, step=7, fill=-3.5, part=slice(2, 4), batch_size=6)
    np.testing.assert_array_equal(part, a[2:4])
    assert augment(x, Augmentation(), seed=3, step=7, fill=0.0) is x  # off: untouched


def test_augmentation_flips_scales_and_keeps_the_background():
    x = np.full((1, 9, 9, 1), -3.5, np.float32)
    x[0, 2:4, 4, 0] = 1.0  # an object on the left of the first spatial axis
    flipped = augment(x, Augmentation(flip=1.0), seed=0, step=0, fill=-3.5)
    np.testing.assert_array_equal(flipped, x[:, ::-1])
    gain = augment(x, Augmentation(intensity=0.5), seed=0, step=0, fill=-3.5)
    assert (gain[x == -3.5] == -3.5).all() and not np.allclose(gain, x)  # background fixed
    block = np.full((1, 9, 9, 1), -3.5, np.float32)
    block[0, 3:6, 3:6, 0] = 1.0  # about the centre, which rotations and zooms keep
    turned = augment(block, Augmentation(rotate_deg=45.0, scale=0.2), seed=0, step=0, fill=-3.5)
    assert turned[0, 4, 4, 0] == pytest.approx(1.0) and not np.allclose(turned, block)
    assert (turned[0, [0, 0, 8, 8], [0, 8, 0, 8], 0] == -3.5).all()  # corners: the fill


def test_stream_options_are_checked(phantom_dir):
    from jaxuad.config import ConfigError

    with pytest.raises(ConfigError, match="augment_flip"):
        _cfg(phantom_dir, augment_flip=1.5)
    with pytest.raises(ConfigError, match="loader_threads"):
        _cfg(phantom_dir, loader_threads=0)


def test_the_cli_flag_streams(phantom_dir, tmp_path):
    from jaxuad.cli import train as cli

    argv = ["--model", "svae", "--variant", "smoke", "--data", str(phantom_dir / "healthy"),
            "--modality", "FLAIR", "--set", "train.epochs=1", "--set",
            "data.histogram_match=false", "--workdir", str(tmp_path / "run"), "--stream",
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["stream"] is True
    assert (tmp_path / "run" / trainer.STORE_FOLDER / "store.json").is_file()

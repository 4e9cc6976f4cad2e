import dataclasses
import json
import os
import signal

import jax
import numpy as np
import pytest

from jaxuad.cli._common import _interrupt
from jaxuad.config import ConfigError
from jaxuad.train import Checkpoints, load_run, train, trainer
from tests.conftest import smoke_config


def _cfg(epochs=2):
    cfg = smoke_config("svae")
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, epochs=epochs, log_every=3, checkpoint_every=4)
    )


def _params(workdir):
    return jax.tree.leaves(load_run(workdir).params)


def test_resume_after_interruption_gives_identical_weights(smoke_images, tmp_path):
    images = smoke_images[:24]  # 6 steps per epoch, 12 in all
    cfg = _cfg()
    train(cfg, tmp_path / "straight", images=images, progress=False)
    train(cfg, tmp_path / "killed", images=images, stop_after=7, progress=False)
    assert Checkpoints(tmp_path / "killed").latest_step() == 7
    # what a run keeps may change on resume; the weights may not
    kept = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, keep_checkpoints=9))
    result = train(kept, tmp_path / "killed", images=images, resume=True, progress=False)
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


def test_resume_from_another_folder_names_the_same_data(
    phantom_dir, smoke_images, tmp_path, monkeypatch
):
    """The run records its data path absolute: resuming from another folder, with the path
    spelled from there, is the same experiment; another cohort is not."""
    images, run = smoke_images[:8], tmp_path / "run"
    cfg = dataclasses.replace(_cfg(1), data=dataclasses.replace(_cfg(1).data, path="healthy"))
    monkeypatch.chdir(phantom_dir)
    train(cfg, run, images=images, stop_after=1, progress=False)
    assert json.loads((run / "config.json").read_text())["data"]["path"] == str(
        (phantom_dir / "healthy").resolve()
    )
    monkeypatch.chdir(tmp_path)
    moved = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                path=os.path.relpath(phantom_dir / "healthy")))  # fmt: skip
    assert train(moved, run, images=images, resume=True, progress=False).steps == 2
    other = dataclasses.replace(moved, data=dataclasses.replace(moved.data,
                                path=str(phantom_dir / "lesion")))  # fmt: skip
    with pytest.raises(ConfigError, match=r"data\.path"):
        train(other, run, images=images, resume=True, progress=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_step_saves_that_steps_checkpoint(
    signum, smoke_images, tmp_path, monkeypatch
):
    """The step donates its state: a signal that lands while it runs must not leave the
    loop saving deleted buffers (vae_chen's SIGTERM did, in a 70-minute run)."""
    real = trainer.make_train_step

    def make(*args, **kwargs):
        step = real(*args, **kwargs)

        def signalled(state, batch, key):
            out = step(state, batch, key)  # the state passed in is now donated
            if int(out[0].step) == 5:
                os.kill(os.getpid(), signum)  # its handler runs here, inside the step
            return out

        return signalled

    monkeypatch.setattr(trainer, "make_train_step", make)
    # as in a foreground process (a background job starts with SIGINT ignored, and keeps it so)
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # the commands' SIGTERM handler
    try:
        with pytest.raises(KeyboardInterrupt):
            train(_cfg(), tmp_path, images=smoke_images[:24], progress=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert Checkpoints(tmp_path).latest_step() == 5
    restored = signal.signal(signal.SIGINT, sigint)
    assert restored is signal.default_int_handler
    monkeypatch.undo()
    resumed = train(_cfg(), tmp_path, images=smoke_images[:24], resume=True, progress=False)
    assert resumed.steps == 12


PRECOMPILE_PROBE = """
import dataclasses, json, sys
import numpy as np
from jaxuad import runtime
runtime.configure()
import jax
from jaxuad.config import load_config
from jaxuad.train import train, trainer

hits, first = [], []
jax.monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
make = trainer.make_train_step

def counted(*a, **k):  # the hits during the step's first call: its compile or cache load
    step = make(*a, **k)
    def call(*args):
        before = len(hits)
        out = step(*args)
        if not first:
            first.append(len(hits) - before)
        return out
    return call

trainer.make_train_step = counted
cfg = load_config("svae", "smoke")  # not tests.conftest: it turns the child compile off
tc = dataclasses.replace(cfg.train, epochs=1, precompile=json.loads(sys.argv[1]))
data = dataclasses.replace(cfg.data, histogram_match=False)
cfg = dataclasses.replace(cfg, train=tc, data=data)
images = np.random.default_rng(0).uniform(size=(16, 32, 32, 1)).astype(np.float32)
train(cfg, sys.argv[2], images=images, progress=False)
print(json.dumps({"malloc": runtime.applied()["malloc"], "first_call_hits": first[0]}))
"""


@pytest.mark.parametrize("precompile", [True, False])
def test_the_train_step_is_compiled_in_a_child_and_loaded_from_the_cache(precompile, tmp_path):
    """With the commands' runtime defaults (allocator options, persistent cache), train()
    compiles its step in a child process and the training process loads it from the cache:
    its first step call is a cache hit. With train.precompile off it compiles the step
    itself (a fresh cache: no hit)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("JAXUAD_PRECOMPILE", "XLA_FLAGS")}
    env |= {"JAXUAD_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", PRECOMPILE_PROBE, json.dumps(precompile),
                        str(tmp_path / "run")], env=env, cwd=root, capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    probe = json.loads(r.stdout.strip().splitlines()[-1])
    assert probe["malloc"]  # the allocator options that make compiling here costly
    assert (probe["first_call_hits"] >= 1) == precompile, probe

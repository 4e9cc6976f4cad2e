"""Shared, session-scoped fixtures: the phantom on disk and one tiny trained run.

Everything is built once per session at smoke size (32x32 inputs) so the suite stays fast
on two CPU cores; jaxuad's persistent compilation cache speeds up later sessions.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

# The suite is compile-bound: LLVM at -O0 compiles ~20 % faster and the tiny models run
# about as fast. Set before JAX starts; a level you set yourself wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import numpy as np
import pytest

from jaxuad.config import load_config
from jaxuad.data import phantom
from jaxuad.runtime import configure

# No training in the tests, nor in the commands they start, compiles its step in a child
# first (jaxuad/train/precompile.py, tested on its own in tests/test_train.py): the tests
# time nothing, and the child would cost each training seconds.
os.environ.setdefault("JAXUAD_PRECOMPILE", "0")
configure()  # the defaults the command-line tools run with, before any test touches JAX

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MULTIDEVICE = os.environ.get("JAXUAD_MULTIDEVICE") == "1"


def pytest_ignore_collect(collection_path, config):
    """tests/multidevice needs 4 virtual devices before JAX starts: tests/test_multidevice.py
    runs it in a process of its own (JAXUAD_MULTIDEVICE=1), and only there."""
    if collection_path.name == "multidevice" and not MULTIDEVICE:
        return True
    return None


def smoke_config(model: str = "svae", **data):
    """The model's smoke config. Tests hand train() precomputed slices, so histogram matching
    (on in Chen's configs; train() fits its landmarks only when it loads the scans itself)
    is off unless asked for; tests/test_intensity.py covers it."""
    config = load_config(model, "smoke")
    data.setdefault("histogram_match", False)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **data))


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """DIR/healthy (3 subjects) and DIR/lesion (2: one MS, one tumour) as NIfTI."""
    if given := os.environ.get("JAXUAD_TEST_PHANTOM"):  # handed down by a parent session
        return Path(given)
    root = tmp_path_factory.mktemp("phantom")
    phantom.write_cohort(root / "healthy", 3, 0, "healthy")
    phantom.write_cohort(root / "lesion", 2, 0, "lesion")
    return root


@pytest.fixture(scope="session")
def smoke_images(phantom_dir) -> np.ndarray:
    """[N, 32, 32, 1] FLAIR training slices of the healthy phantom cohort."""
    from jaxuad.train import training_images

    cfg = smoke_config(path=str(phantom_dir / "healthy"), modality="FLAIR")
    return training_images(cfg)


@pytest.fixture(scope="session")
def trained_run(phantom_dir, smoke_images, tmp_path_factory) -> Path:
    """A smoke svae trained for a few epochs on the healthy phantom cohort."""
    from jaxuad.train import train

    if given := os.environ.get("JAXUAD_TEST_RUN"):  # a copy handed down by a parent session
        return Path(given)

    cfg = smoke_config(path=str(phantom_dir / "healthy"), modality="FLAIR")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=3))
    workdir = tmp_path_factory.mktemp("run")
    train(cfg, workdir, images=smoke_images, progress=False)
    return workdir


def require_shared_data() -> Path:
    if not (SHARED_DATA / "ixi").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (CI has ../shared beside the checkout)")
    return SHARED_DATA


def script(name: str) -> str:
    """The console script ``name`` installed beside this interpreter (``.venv/bin``), so the
    tests run jaxuad's own commands whatever PATH says."""
    return str(Path(sys.executable).parent / name)

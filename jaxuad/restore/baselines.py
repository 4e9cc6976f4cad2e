"""Voxel-wise baselines, run through the same pipeline as the models so every table can be
read against them. Neither uses a network.

* ``intensity`` (Meissen et al. 2021's thresholding baseline): the "restoration" is the
  median normalised intensity of the scan's brain, so the residual is the scan's own
  distance from it. With ``evaluate.residual_sign=positive`` the score is the normalised
  intensity itself (hyperintense lesions, FLAIR/T2); with ``negative`` its negative
  (hypointense lesions on T1); with ``both``, how far a voxel's intensity is from typical.
* ``atlas``: a voxel-wise normative model of the healthy training cohort on the common
  grid (:mod:`jaxuad.train.atlas`); the restoration is the per-voxel mean and the residual
  ``|x - mean| / std``.

Both take the normalised scan [X, Y, Z] and return ``(restored, residual)`` on its grid;
outside the brain mask the restoration is the scan and the residual 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxuad.config import Config, ConfigError, load_json
from jaxuad.train.atlas import Atlas, load_atlas


def intensity(x: np.ndarray, brainmask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The brain's median intensity as the restoration: (restored, |x - median|)."""
    brain = np.asarray(brainmask, bool)
    median = np.median(x[brain]) if brain.any() else 0.0
    restored = np.where(brain, median, x).astype(np.float32)
    return restored, (np.abs(x - restored) * brain).astype(np.float32)


def atlas(x: np.ndarray, brainmask: np.ndarray, model: Atlas) -> tuple[np.ndarray, np.ndarray]:
    """The atlas mean as the restoration: (restored, |x - mean| / std), where at least
    MIN_SCANS training brains hold the voxel (elsewhere the scan itself, residual 0)."""
    restored = np.where(model.valid(brainmask), model.mean, x).astype(np.float32)
    return restored, model.score(x, brainmask)


def intensity_method(workdir=None):
    """The ``intensity`` method: (config, fn) with the data settings of the run in
    ``workdir`` (any run; the defaults without one) and ``fn(x, volume)`` as
    :func:`intensity`."""
    if workdir is None:
        config = Config()
    else:
        if not (Path(workdir) / "config.json").is_file():
            raise ConfigError(f"{workdir}: not a jaxuad run (no config.json)")
        config = load_json(Path(workdir) / "config.json")
    return config, lambda x, vol: intensity(x, vol.brainmask)


def atlas_method(workdir):
    """The ``atlas`` method: (config, fn) of the atlas run in ``workdir``; ``fn(x, volume)``
    as :func:`atlas`, after checking the volume is on the atlas's grid."""
    config, model = load_atlas(workdir)

    def fn(x, vol):
        model.check_grid(vol)
        return atlas(x, vol.brainmask, model)

    fn.check = model.check_grid  # every grid is checked before anything is written
    return config, fn

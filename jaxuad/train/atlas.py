"""The voxel-wise normative atlas: a baseline any model of healthy anatomy should beat.

For every voxel of the common grid (the scans are co-registered), the mean and standard
deviation of the normalised healthy training scans, over the scans whose brain mask holds
the voxel. A scan's anomaly score is then ``|x - mean| / std`` (``jaxuad-restore --method
atlas``). ``jaxuad-train --model atlas`` fits it in one pass over the training scans
(float64 sums, so the order of scans does not matter) and writes ``atlas.npz`` and
``config.json`` into the run folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxuad.config import Config, ConfigError, DataConfig, load_json, save_json
from jaxuad.data import DataError, Volume, atomic_path, write_nifti
from jaxuad.data.nifti import same_grid
from jaxuad.data.preprocess import preprocess
from jaxuad.data.template import TEMPLATE_FILE

ATLAS_FILE = "atlas.npz"
MIN_STD = 1e-2  # floor of the standard deviation, in normalised units
MIN_SCANS = 2  # voxels in fewer training brains have no standard deviation: score 0


@dataclasses.dataclass(frozen=True)
class Atlas:
    """Per-voxel statistics of healthy scans on one grid."""

    mean: np.ndarray  # [X, Y, Z] float32, normalised intensity
    std: np.ndarray  # [X, Y, Z] float32, floored at MIN_STD
    count: np.ndarray  # [X, Y, Z] int32, training brains holding the voxel
    affine: np.ndarray  # [4, 4], the grid's

    def valid(self, brainmask: np.ndarray) -> np.ndarray:
        """Voxels of ``brainmask`` that at least MIN_SCANS training brains hold: [X, Y, Z]."""
        return np.asarray(brainmask, bool) & (self.count >= MIN_SCANS)

    def score(self, x: np.ndarray, brainmask: np.ndarray) -> np.ndarray:
        """|x - mean| / std on :meth:`valid` voxels, 0 elsewhere: [X, Y, Z]."""
        z = np.abs(x - self.mean) / self.std
        return np.where(self.valid(brainmask), z, 0.0).astype(np.float32)

    def check_grid(self, vol: Volume) -> None:
        """Raises DataError unless ``vol`` lies on the atlas's grid (shape and affine)."""
        if not same_grid(vol.image.shape, vol.affine, self.mean.shape, self.affine):
            raise DataError(
                f"sub-{vol.subject}: grid {vol.image.shape} differs from the atlas's "
                f"{self.mean.shape} (or its affine does); the atlas needs co-registered scans"
            )


def fit_atlas(volumes, dc: DataConfig, progress: bool = False) -> Atlas:
    """The atlas of ``volumes`` (an iterable of :class:`Volume` on one grid), each
    preprocessed and normalised as ``dc`` says."""
    total = total_sq = count = affine = None
    first = None
    for vol in tqdm(volumes, desc="voxel statistics", unit="scan", disable=not progress):
        x = preprocess(vol, dc).astype(np.float64)
        m = vol.brainmask.astype(bool)
        if total is None:
            total, total_sq = np.zeros(x.shape), np.zeros(x.shape)
            count, affine, first = np.zeros(x.shape, np.int32), vol.affine, vol.subject
        elif not same_grid(x.shape, vol.affine, total.shape, affine):
            raise DataError(
                f"sub-{vol.subject}: grid {x.shape} differs from sub-{first}'s {total.shape} "
                "(or its affine does); an atlas needs co-registered scans"
            )
        total += np.where(m, x, 0.0)
        total_sq += np.where(m, x * x, 0.0)
        count += m
    if total is None:
        raise DataError("no training scans for the atlas")
    n = np.maximum(count, 1)
    mean = total / n
    var = np.maximum(total_sq / n - mean * mean, 0.0)
    return Atlas(
        mean=mean.astype(np.float32),
        std=np.maximum(np.sqrt(var), MIN_STD).astype(np.float32),
        count=count,
        affine=np.asarray(affine, np.float64),
    )


def train_atlas(config: Config, workdir, volumes, progress: bool = True) -> Atlas:
    """Fits the atlas of ``volumes`` and writes ``atlas.npz`` and ``config.json`` into
    ``workdir`` (which must not hold an atlas already); nothing is written if fitting
    fails."""
    workdir = Path(workdir)
    if (workdir / ATLAS_FILE).exists():
        raise ConfigError(f"{workdir}: already holds an atlas; choose a new --workdir")
    atlas = fit_atlas(volumes, config.data, progress)
    workdir.mkdir(parents=True, exist_ok=True)
    with atomic_path(workdir / ATLAS_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **dataclasses.asdict(atlas))
    save_json(config, workdir / "config.json")
    held = atlas.count >= max(1, atlas.count.max() / 2)
    write_nifti(np.where(held, atlas.mean, 0.0), atlas.affine, workdir / TEMPLATE_FILE)
    return atlas


def load_atlas(workdir) -> tuple[Config, Atlas]:
    """(config, atlas) of an atlas run folder; a clear error for anything else."""
    workdir = Path(workdir)
    path = workdir / ATLAS_FILE
    if not path.is_file():
        raise ConfigError(f"{workdir}: no {ATLAS_FILE} (train one with jaxuad-train --model atlas)")
    try:
        with np.load(path) as z:
            atlas = Atlas(**{k: z[k] for k in ("mean", "std", "count", "affine")})
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{path}: cannot read the atlas: {e}") from None
    return load_json(workdir / "config.json"), atlas

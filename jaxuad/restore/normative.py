"""Normative scoring: a restoration's residual measured against how much healthy scans'
residuals vary at the same voxel (Behrendt et al. 2024's per-voxel standardisation).

A model restores healthy anatomy well in some places (deep white matter) and badly in
others (cortical folds, ventricle edges, where people differ most), so its raw residual
ranks healthy edges above faint lesions. Fitted on healthy scans the model did not train
on, all on one grid, the per-voxel statistics of the signed residual d = x - restored are

    location(v) = median_n d_n(v)
    scale(v)    = max(1.4826 * median_n |d_n(v) - location(v)|, min_scale * median_v' scale)

(robust: a few atypical healthy scans do not move them; v' runs over the voxels whose
residual varies at all), each lightly smoothed by a
Gaussian of ``restore.normative_smooth_mm`` (normalised convolution over the voxels that
enough scans cover), and a scan's score is the z-score

    z(v) = (d(v) - location(v)) / scale(v),

zero where fewer than :data:`MIN_FRACTION` of the healthy scans had brain. The voxel-wise
atlas is the same idea applied to the intensity itself; with a model, the subject's own
anatomy comes first and the population's variability second.

Written outputs then hold ``residual = |z|`` and ``restored = restored + location`` (the
restoration with its typical healthy bias added), so the sign of ``normalised - restored``
is the sign of z and ``evaluate.residual_sign`` keeps working.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from jaxuad.core.errors import ConfigError, DataError
from jaxuad.core.io import atomic_path, write_json

NORMATIVE_DIR = "normative"  # inside the run folder
MIN_FRACTION = 0.25  # of the healthy scans that must have brain at a voxel to score it
MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation


@dataclass(frozen=True)
class NormativeStats:
    """Per-voxel statistics of a run's signed residuals on healthy scans.

    Attributes:
      location: [X, Y, Z] float32, the smoothed per-voxel median.
      scale: [X, Y, Z] float32, the smoothed, floored per-voxel 1.4826 * MAD.
      count: [X, Y, Z] int32, healthy scans with brain at each voxel.
      affine: [4, 4] the grid's voxel-to-world affine.
    """

    location: np.ndarray
    scale: np.ndarray
    count: np.ndarray
    affine: np.ndarray

    @property
    def scans(self) -> int:
        return int(self.count.max())

    def valid(self, brainmask: np.ndarray) -> np.ndarray:
        """[X, Y, Z] bool: brain voxels enough healthy scans covered to be scored."""
        return np.asarray(brainmask, bool) & (self.count >= _min_count(self.scans))

    def standardize(self, signed: np.ndarray, brainmask: np.ndarray) -> np.ndarray:
        """z = (d - location) / scale on the valid voxels, 0 elsewhere: [X, Y, Z] float32."""
        z = (np.asarray(signed, np.float64) - self.location) / self.scale
        return np.where(self.valid(brainmask), z, 0.0).astype(np.float32)

    def check_grid(self, vol) -> None:
        """:class:`DataError` unless ``vol`` lies on the statistics' grid."""
        if vol.image.shape != self.location.shape or not np.allclose(
            vol.affine, self.affine, atol=1e-3
        ):
            raise DataError(
                f"sub-{vol.subject}: grid {vol.image.shape} differs from the normative "
                f"statistics' {self.location.shape} (or its affine does); normative scoring "
                "needs scans on the grid of the healthy scans it was fitted on"
            )

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> NormativeStats:
        try:
            with np.load(path) as z:
                return cls(**{f.name: z[f.name] for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path}: cannot read normative statistics: {e}") from None


def _min_count(n: int) -> int:
    return max(2, math.ceil(MIN_FRACTION * n))


def _smooth(values: np.ndarray, weights: np.ndarray, sigma) -> np.ndarray:
    """Normalised Gaussian smoothing: sum(w * v) / sum(w) under the kernel."""
    if not np.any(np.asarray(sigma) > 0):
        return values
    num = ndimage.gaussian_filter(values * weights, sigma, mode="constant")
    den = ndimage.gaussian_filter(weights.astype(np.float64), sigma, mode="constant")
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), values)


def fit_normative(
    residuals,
    masks,
    affine: np.ndarray,
    voxel_size=(1.0, 1.0, 1.0),
    *,
    smooth_mm: float = 2.0,
    min_scale: float = 0.25,
) -> NormativeStats:
    """Fits :class:`NormativeStats` on healthy signed residuals (module docstring).

    Args:
      residuals: N signed residual volumes ``x - restored``, each [X, Y, Z] on one grid.
      masks: their N brain masks, each [X, Y, Z] bool.
      affine: the grid's affine.
      voxel_size: voxel edges in mm, to turn ``smooth_mm`` (a Gaussian's sigma) into voxels.
      smooth_mm: sigma of the smoothing in mm; 0 turns it off.
      min_scale: floor on the scale, as a fraction of its median over the valid voxels.

    Returns:
      The statistics; voxels covered by too few scans have location 0 and scale 1.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> d = [rng.normal(0.1, 0.5, (6, 6, 6)) for _ in range(40)]
      >>> m = [np.ones((6, 6, 6), bool)] * 40
      >>> s = fit_normative(d, m, np.eye(4), smooth_mm=0)
      >>> bool(abs(np.median(s.location) - 0.1) < 0.1), bool(abs(np.median(s.scale) - 0.5) < 0.1)
      (True, True)
    """
    d = np.stack([np.asarray(r, np.float32) for r in residuals])  # [N, X, Y, Z]
    m = np.stack([np.asarray(k, bool) for k in masks])
    if d.shape != m.shape or d.ndim != 4:
        raise ValueError(f"residuals {d.shape} and masks {m.shape} must be N volumes each")
    count = m.sum(0).astype(np.int32)
    valid = count >= _min_count(len(d))
    if not valid.any():
        raise DataError("no voxel has brain in enough healthy scans for normative statistics")
    masked = np.where(m, d, np.nan)
    with warnings.catch_warnings():  # all-NaN voxels (no scan covers them) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        location = np.nanmedian(masked, axis=0)
        scale = MAD_TO_STD * np.nanmedian(np.abs(masked - location), axis=0)
    location = np.where(valid, location, 0.0)
    scale = np.where(valid, scale, 0.0)
    sigma = [smooth_mm / v for v in voxel_size] if smooth_mm > 0 else 0
    location = _smooth(location, valid, sigma)
    scale = _smooth(scale, valid, sigma)
    # The median over voxels that vary at all: slices a restoration leaves as they are have
    # d = 0 on every scan, and would drag the floor to nothing.
    varying = valid & (scale > 0)
    floor = max(min_scale * float(np.median(scale[varying])) if varying.any() else 0.0, 1e-6)
    scale = np.where(valid, np.maximum(scale, floor), 1.0)
    location = np.where(valid, location, 0.0)
    return NormativeStats(
        location.astype(np.float32), scale.astype(np.float32), count, np.asarray(affine)
    )


@dataclass(frozen=True)
class NormativeFit:
    """What ``jaxuad-restore --fit-normative`` stored beside the statistics (JSON)."""

    method: str
    prior: str | None  # for methods with a lambda
    data: str
    subjects: tuple[str, ...]
    smooth_mm: float
    min_scale: float
    healthy_quantile: float  # 99th percentile of |z| over the fitting scans' brains
    fuse: dict  # part run folder -> its weight; {} without fusion

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "subjects": list(self.subjects)}


def stats_name(method: str, prior: str | None) -> str:
    """The file stem of a method's statistics in ``RUN/normative/``."""
    return method if prior is None else f"{method}-{prior}"


def save_normative(workdir, fit: NormativeFit, stats: NormativeStats) -> Path:
    """Writes ``RUN/normative/<method>[-<prior>].{npz,json}``; returns the .npz path."""
    folder = Path(workdir) / NORMATIVE_DIR
    folder.mkdir(exist_ok=True)
    stem = stats_name(fit.method, fit.prior)
    stats.save(folder / f"{stem}.npz")
    write_json(fit.to_json(), folder / f"{stem}.json")
    return folder / f"{stem}.npz"


def load_normative(workdir, method: str, prior: str | None) -> tuple[NormativeFit, NormativeStats]:
    """The statistics ``jaxuad-restore --fit-normative`` stored for ``method`` in the run,
    or :class:`ConfigError` saying how to fit them."""
    folder = Path(workdir) / NORMATIVE_DIR
    stem = stats_name(method, prior)
    if not (folder / f"{stem}.npz").is_file():
        raise ConfigError(
            f"{workdir}: no normative statistics for {stem}; fit them on healthy scans the "
            f"model did not train on: jaxuad-restore --fit-normative --workdir {workdir} "
            f"--data HEALTHY --method {method}"
        )
    try:
        d = json.loads((folder / f"{stem}.json").read_text())
        fit = NormativeFit(**{**d, "subjects": tuple(d["subjects"])})
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"{folder / f'{stem}.json'}: cannot read: {e}") from None
    return fit, NormativeStats.load(folder / f"{stem}.npz")


def per_scan(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A scan's signed score standardised by its own robust spread: ``(z - median) / (1.4826
    MAD)`` over the scan's scored voxels (``valid`` where ``z != 0``), 0 elsewhere.

    Thresholds fitted on healthy scans of one scanner flag a scan from another wholesale
    when its scores are shifted or spread as a whole (on IXI -> MSLUB T1 a 1 % threshold
    flagged 14-19 % of the patients' normal tissue); standardising every scan by its own
    spread (lesions being a small part of a brain) takes that away before thresholds are
    fitted or applied.
    """
    scored = np.asarray(valid, bool) & (z != 0)
    if scored.sum() < 2:
        return np.zeros_like(z, np.float32)
    v = z[scored]
    med = float(np.median(v))
    mad = MAD_TO_STD * float(np.median(np.abs(v - med)))
    if not mad > 0:
        return np.zeros_like(z, np.float32)
    return np.where(scored, (z - med) / mad, 0.0).astype(np.float32)


def fused_score(parts, weights) -> np.ndarray:
    """The fused z-score ``sum_i w_i z_i`` of signed per-part scores (each [X, Y, Z])."""
    out = np.zeros_like(np.asarray(parts[0], np.float32))
    for z, w in zip(parts, weights, strict=True):
        out += np.float32(w) * np.asarray(z, np.float32)
    return out


def fusion_weights(healthy_parts, masks, fpr: float = 1.0) -> list[float]:
    """Weights that make each part contribute equally at a healthy false-positive rate:
    ``w_i = 1 / q_i`` with ``q_i`` the (100 - fpr)-th percentile of ``|z_i|`` over the
    healthy brain voxels (so ``w_i |z_i|`` crosses 1 on fpr % of healthy voxels for every
    part).

    Args:
      healthy_parts: per part, a list of signed score volumes of the healthy scans.
      masks: the healthy scans' brain masks.
      fpr: the healthy false-positive rate in percent.
    """
    weights = []
    for part in healthy_parts:
        values = np.concatenate(
            [np.abs(z[m]) for z, m in zip(part, masks, strict=True)]
        )  # fmt: skip
        q = float(np.percentile(values, 100 - fpr))
        if not q > 0:
            raise DataError("a fused part scores 0 on the healthy scans; it cannot be weighed")
        weights.append(1.0 / q)
    return weights

"""Intensity preprocessing and normalisation, axial slice selection and the slice <->
model-input geometry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from jaxuad.config import ConfigError, DataConfig
from jaxuad.data.intensity import curvature_flow, fit_standard_landmarks, match_histogram
from jaxuad.data.nifti import DataError, Volume

ZSCORE_BACKGROUND = -3.5  # Chen et al. 2019 set the background to -3.5 after z-scoring


def background_value(normalization: str) -> float:
    """The value outside the brain after ``normalization``: -3.5 for z-scores, else 0."""
    return ZSCORE_BACKGROUND if normalization == "zscore" else 0.0


def normalize(
    image: np.ndarray, brainmask: np.ndarray, method: str, value_range=None
) -> np.ndarray:
    """Normalises intensities inside the brain mask.

    * ``minmax`` (Baur et al. 2018): ``(x - min) / (max - min)`` over brain voxels, 0 outside;
      with ``value_range`` = (lo, hi), ``(x - lo) / (hi - lo)`` instead (a histogram-matched
      scan's standard scale: its extremes, unlike its landmarks, differ between scans).
    * ``zscore`` (Chen et al. 2019): zero mean, unit variance over brain voxels, -3.5 outside.
    """
    # float64: a scan with huge finite intensities (scaled by 1e30, or near float32's
    # maximum) would overflow float32 in the differences and squares
    x = image.astype(np.float64)
    brain = x[brainmask]
    if method == "minmax":
        lo, hi = value_range if value_range is not None else (brain.min(), brain.max())
        # a relative scale: a scan stored with a tiny scl_slope still spans [0, 1]; only a
        # brain of one value (refused when the scan is read) has no spread at all
        out = (x - lo) / (hi - lo if hi > lo else 1.0)
    elif method == "zscore":
        std = brain.std()
        out = (x - brain.mean()) / (std if std > 0 else 1.0)
    else:
        raise ValueError(f"unknown normalization {method!r} (minmax | zscore)")
    return np.where(brainmask, out, background_value(method)).astype(np.float32)


def denoise(volume: Volume, cfg: DataConfig) -> np.ndarray:
    """The scan after ``cfg.curvature_flow`` steps of curvature flow (itself when 0)."""
    if not cfg.curvature_flow:
        return volume.image
    steps, dt = cfg.curvature_flow, cfg.curvature_flow_time_step
    return np.asarray(curvature_flow(volume.image, steps, dt, volume.voxel_size))


def preprocess(volume: Volume, cfg: DataConfig) -> np.ndarray:
    """The scan as a model sees it, [X, Y, Z] float32: denoised by ``cfg.curvature_flow``
    steps of curvature flow, matched to ``cfg.histogram_landmarks`` (when
    ``cfg.histogram_match``), then normalised (:func:`normalize`; ``minmax`` after matching
    maps the standard 1st-99th percentile range to [0, 1], the same for every scan)."""
    x = denoise(volume, cfg)
    if cfg.histogram_match:
        if not cfg.histogram_landmarks:
            raise ConfigError(
                "data.histogram_match is on but no landmarks were fitted: jaxuad-train fits "
                "them on the training scans and stores them in the run"
            )
        x = match_histogram(x, volume.brainmask, cfg.histogram_landmarks)
        standard = (cfg.histogram_landmarks[0], cfg.histogram_landmarks[-1])
        return normalize(x, volume.brainmask, cfg.normalization, standard)
    return normalize(x, volume.brainmask, cfg.normalization)


def with_fitted_landmarks(cfg: DataConfig, volumes) -> DataConfig:
    """``cfg`` with its standard histogram landmarks fitted on ``volumes`` (after curvature
    flow, as they will be matched), if ``cfg.histogram_match`` is on and none are set."""
    if not cfg.histogram_match or cfg.histogram_landmarks:
        return cfg
    standard = fit_standard_landmarks((denoise(v, cfg), v.brainmask) for v in volumes)
    return dataclasses.replace(cfg, histogram_landmarks=standard)


def select_slices(brainmask: np.ndarray, mode: str, min_fraction: float, n: int) -> np.ndarray:
    """Indices along the third (axial) axis of the slices to use.

    ``brain``: slices whose brain area is at least ``min_fraction`` of the slice.
    ``middle``: ``n`` consecutive slices centred on the middle of the brain's axial extent
    (Baur et al. took 20 consecutive slices around the midline).
    """
    area = brainmask.mean(axis=(0, 1))
    if mode == "brain":
        idx = np.flatnonzero(area >= min_fraction)
    elif mode == "middle":
        if n > brainmask.shape[2]:
            raise ConfigError(
                f"data.n_slices: {n} is more than the scan's {brainmask.shape[2]} axial slices"
            )
        present = np.flatnonzero(area > 0)
        centre = (present[0] + present[-1]) // 2
        start = int(np.clip(centre - n // 2, 0, brainmask.shape[2] - n))
        idx = np.arange(start, start + min(n, brainmask.shape[2]))
    else:
        raise ValueError(f"unknown slice selection {mode!r} (brain | middle)")
    return idx


@dataclass(frozen=True)
class SliceGeometry:
    """Maps [h, w] volume slices to [size, size] model inputs and back.

    ``pad`` centres the slice in the model frame (the MNI 2 mm slice 91x109 fits in 128).
    ``resize`` scales it (linear interpolation) so its longer side fills the frame, then pads.
    """

    shape: tuple[int, int]
    size: int
    fit: str = "pad"

    @property
    def scaled(self) -> tuple[int, int]:
        if self.fit == "pad":
            return self.shape
        s = self.size / max(self.shape)
        return (round(self.shape[0] * s), round(self.shape[1] * s))

    @property
    def offset(self) -> tuple[int, int]:
        h, w = self.scaled
        return ((self.size - h) // 2, (self.size - w) // 2)

    def validate(self, where: str) -> None:
        if self.fit not in ("pad", "resize"):
            raise ValueError(f"unknown fit {self.fit!r} (pad | resize)")
        if self.fit == "pad" and max(self.shape) > self.size:
            raise DataError(
                f"{where}: slices of {self.shape} do not fit in {self.size}x{self.size}; "
                "use --set data.fit=resize or a larger data.image_size"
            )

    def to_model(self, slices: np.ndarray, fill: float) -> np.ndarray:
        """[n, h, w] -> [n, size, size]."""
        if self.fit == "resize":
            h, w = self.scaled
            z = (1, h / self.shape[0], w / self.shape[1])
            slices = ndimage.zoom(slices, z, order=1, grid_mode=True, mode="nearest")
        out = np.full((slices.shape[0], self.size, self.size), fill, np.float32)
        (top, left), (h, w) = self.offset, self.scaled
        out[:, top : top + h, left : left + w] = slices
        return out

    def to_volume(self, frames: np.ndarray) -> np.ndarray:
        """[n, size, size] -> [n, h, w], the inverse of :meth:`to_model` on the slice area."""
        (top, left), (h, w) = self.offset, self.scaled
        out = frames[:, top : top + h, left : left + w]
        if self.fit == "resize":
            z = (1, self.shape[0] / h, self.shape[1] / w)
            out = ndimage.zoom(out, z, order=1, grid_mode=True, mode="nearest")
        return out.astype(np.float32)

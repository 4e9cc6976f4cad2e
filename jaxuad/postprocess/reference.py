"""3D post-processing of residual volumes (Baur et al. 2018, Sec. 3.1 "Postprocessing").

For each subject: a 5x5x5 median filter on the residual volume, multiplication by a
slightly eroded brain mask, a threshold, and removal of 3D connected components smaller
than 6 voxels. This is the SciPy implementation; it is the reference that compiled JAX
kernels must match.

Border handling: the median filter uses SciPy's ``mode="reflect"`` (the volume is mirrored
about its faces); residuals are zero outside the brain, so this only matters where the
brain touches the volume's edge.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from jaxuad.config import EvaluateConfig


def structure(connectivity: int) -> np.ndarray:
    """3x3x3 neighbourhood: 6 (faces) or 26 (faces, edges and corners) connectivity."""
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity}")
    return ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)


def eroded_mask(brainmask: np.ndarray, iterations: int) -> np.ndarray:
    if iterations <= 0:
        return brainmask.astype(bool)
    return ndimage.binary_erosion(brainmask, structure(6), iterations=iterations)


def median_filtered(residual: np.ndarray, cfg: EvaluateConfig) -> np.ndarray:
    """The ``median_size``^3 median filter alone (identity for sizes 0 and 1), as float32."""
    r = residual.astype(np.float32)
    if cfg.median_size > 1:
        r = ndimage.median_filter(r, size=cfg.median_size, mode="reflect")
    return r


def filter_residual(residual: np.ndarray, brainmask: np.ndarray, cfg: EvaluateConfig) -> np.ndarray:
    """Median filter, then zero outside the eroded brain mask: [X, Y, Z] -> [X, Y, Z]."""
    return median_filtered(residual, cfg) * eroded_mask(brainmask, cfg.erosion_iterations)


def remove_small_components(seg: np.ndarray, min_size: int, connectivity: int) -> np.ndarray:
    """Drops 3D connected components with fewer than ``min_size`` voxels."""
    if min_size <= 1 or not seg.any():
        return seg.astype(bool)
    labels, n = ndimage.label(seg, structure(connectivity))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def segment(filtered: np.ndarray, threshold: float, cfg: EvaluateConfig) -> np.ndarray:
    """Binary segmentation: ``filtered > threshold`` without components < min_component_size."""
    return remove_small_components(filtered > threshold, cfg.min_component_size, cfg.connectivity)

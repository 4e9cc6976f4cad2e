"""SciPy post-processing: the reference the JAX kernels in :mod:`.filters` and
:mod:`.components` are tested against, and the fallback where they cannot run
(``evaluate.backend=scipy``, or automatically for connected components, see
:mod:`jaxuad.postprocess`). Same names and arguments as those kernels, one volume
[X, Y, Z] at a time.

Border handling: the median filter uses SciPy's ``mode="reflect"`` (the volume mirrored
about its faces, edge voxels repeated); erosion counts everything outside the volume as
background (``border_value=0``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def structure(connectivity: int) -> np.ndarray:
    """3x3x3 neighbourhood: 6 (faces) or 26 (faces, edges and corners) connectivity."""
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity}")
    return ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)


def median_filter(x: np.ndarray, size: int | tuple[int, int, int] = 5) -> np.ndarray:
    """The median filter over a size**3 window, or one of ``size`` per axis (identity for
    sizes 0 and 1), as float32."""
    x = np.asarray(x, np.float32)
    size = tuple(max(int(k), 1) for k in np.broadcast_to(size, (3,)))
    return ndimage.median_filter(x, size=size, mode="reflect") if max(size) > 1 else x


def binary_erosion(mask: np.ndarray, iterations: int) -> np.ndarray:
    """SciPy's erosion by the 6-neighbourhood cross, ``iterations`` times."""
    if iterations <= 0:
        return np.asarray(mask, bool)
    return ndimage.binary_erosion(mask, structure(6), iterations=iterations)


def label(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label`` at ``connectivity`` (6 or 26)."""
    labels, n = ndimage.label(mask, structure(connectivity))
    return labels, n


def remove_small_components(seg: np.ndarray, min_size: int, connectivity: int = 26) -> np.ndarray:
    """Drops 3D connected components with fewer than ``min_size`` voxels."""
    seg = np.asarray(seg, bool)
    if min_size <= 1 or not seg.any():
        return seg
    labels, n = label(seg, connectivity)
    keep = np.bincount(labels.ravel(), minlength=n + 1) >= min_size
    keep[0] = False
    return keep[labels]


def components_hit(truth: np.ndarray, pred: np.ndarray, connectivity: int = 26) -> tuple[int, int]:
    """(components of ``truth`` that overlap ``pred``, number of components of ``truth``)."""
    labels, n = label(truth, connectivity)
    return len(np.unique(labels[np.asarray(pred, bool) & (labels > 0)])), n

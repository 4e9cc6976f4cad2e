"""3D post-processing of residual volumes (Baur et al. 2018, Sec. 3.1 "Postprocessing").

For each subject: optional masks on the raw residual (positive residuals only; a
hyperintensity prior), a 5x5x5 median filter, multiplication by a slightly eroded brain
mask, a threshold, and removal of 3D connected components smaller than 6 voxels.

Two interchangeable backends compute the same numbers (tested voxel for voxel):

* ``jax`` (default): the compiled kernels of :mod:`.filters` and :mod:`.components`,
  batched over subjects with ``vmap`` and run on whatever device JAX uses (GPU/TPU where
  present);
* ``scipy``: :mod:`scipy.ndimage` on the host (:mod:`.reference`).

On several devices (``Postprocessor(cfg, devices=N)``, default: all) volumes go through the
JAX kernels in groups of N, one volume per device (:mod:`jaxuad.distributed`); each volume's
result is the one a single device computes.

Connected components use ``evaluate.components`` (``auto`` | ``jax`` | ``scipy``). ``auto``
runs the JAX kernels on every device, CPU included, and falls back to
``scipy.ndimage.label``, with a warning, where the JAX kernel cannot run: volumes of 2**31
voxels or more, or an XLA runtime error such as running out of device memory. On CPU the
JAX run kernel is 2-4.5x faster than SciPy on every mask a post-processed residual gives
(thresholded residuals, lesion masks, a whole brain mask), and the dense kernel that takes
noise-like masks of more than 65,536 runs 2.2-3.2x by 26-connectivity (over 2x2x2 blocks);
by 6-connectivity such masks run at 0.3-0.45x SciPy (the dense kernel over voxels). It
costs about 5 s to compile per batch shape, once per machine with the persistent
compilation cache (``bin/bench-postprocess``; docs/benchmarks.md, "Post-processing").

Research code can call the jitted batch functions directly::

    filtered = filter_residuals(residuals, masks, keep, median_size=5, erosion_iterations=3)
    seg = segment(filtered, thresholds, min_size=6, connectivity=26)

with ``residuals``, ``masks``, ``keep`` [B, X, Y, Z] and ``thresholds`` [B] or scalar.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxuad import distributed
from jaxuad.config import ConfigError, EvaluateConfig
from jaxuad.data import pad_rows
from jaxuad.postprocess import components, filters, reference

BACKENDS = ("jax", "scipy")
COMPONENT_BACKENDS = ("auto", "jax", "scipy")


@functools.partial(jax.jit, static_argnames=("median_size", "erosion_iterations"))
def filter_residuals(
    residual: jax.Array,
    brainmask: jax.Array,
    keep: jax.Array,
    *,
    median_size: int,
    erosion_iterations: int,
) -> jax.Array:
    """[B, X, Y, Z] residuals -> median filtered, zero outside the eroded brain mask.
    ``keep`` (bool, same shape) zeroes residuals before filtering (all True: no prior)."""

    def one(r, m, k):
        r = jnp.where(k, r, 0.0)
        return filters.median_filter(r, median_size) * filters.binary_erosion(m, erosion_iterations)

    return jax.vmap(one)(residual, brainmask, keep)


@functools.partial(jax.jit, static_argnames=("min_size", "connectivity"))
def segment(
    filtered: jax.Array, threshold: jax.Array, *, min_size: int, connectivity: int
) -> jax.Array:
    """[B, X, Y, Z] filtered residuals -> ``filtered > threshold`` ([B] or scalar) without
    the 3D components smaller than ``min_size`` voxels."""
    threshold = jnp.broadcast_to(jnp.asarray(threshold, filtered.dtype), filtered.shape[:1])
    seg = filtered > threshold[:, None, None, None]
    return components.remove_small_components(seg, min_size, connectivity)


@functools.partial(jax.jit, static_argnames=("connectivity",))
def components_hit(truth: jax.Array, pred: jax.Array, *, connectivity: int):
    """[B, X, Y, Z] -> per subject (ground-truth components hit by ``pred``, components)."""
    return components.components_hit(truth, pred, connectivity)


@functools.partial(jax.jit, static_argnums=1)
def _eroded(brainmask: jax.Array, iterations: int) -> jax.Array:
    return filters.binary_erosion(brainmask, iterations)


def keep_mask(
    image: np.ndarray,
    restored: np.ndarray | None,
    brainmask: np.ndarray,
    cfg: EvaluateConfig,
) -> np.ndarray:
    """Where residuals count before filtering: everywhere, unless ``positive_only`` (the
    input brighter than its restoration) or ``hyperintensity_quantile`` q > 0 (the input at
    or above its q-quantile over brain voxels). ``image`` and ``restored`` are in the same
    normalised units."""
    keep = np.ones(image.shape, bool)
    if cfg.positive_only:
        if restored is None:
            raise ValueError("positive_only needs the restoration")
        keep &= image > restored
    if cfg.hyperintensity_quantile > 0:
        keep &= image >= np.quantile(image[brainmask], cfg.hyperintensity_quantile)
    return keep


class Postprocessor:
    """Runs the post-processing of ``cfg`` with the chosen backends, taking NumPy volumes
    and returning NumPy volumes: one at a time, or a list of them split over ``devices``
    (default: every visible device) by volume."""

    def __init__(self, cfg: EvaluateConfig, devices: int | None = None):
        if cfg.backend not in BACKENDS:
            raise ConfigError(f"evaluate.backend must be one of {BACKENDS}, got {cfg.backend!r}")
        if cfg.components not in COMPONENT_BACKENDS:
            raise ConfigError(
                f"evaluate.components must be one of {COMPONENT_BACKENDS}, got {cfg.components!r}"
            )
        if cfg.connectivity not in (6, 26):
            raise ConfigError(f"evaluate.connectivity must be 6 or 26, got {cfg.connectivity}")
        if cfg.median_size > 1 and cfg.median_size % 2 == 0:
            raise ConfigError(f"evaluate.median_size must be odd, got {cfg.median_size}")
        self.cfg = cfg
        self.components_backend = cfg.components
        if cfg.components == "auto":
            self.components_backend = "jax"
        self.fell_back: str | None = None  # why auto chose SciPy, if it did
        self.mesh = distributed.make_mesh(devices)

    def _by_volume(self, fn, *volumes: list[np.ndarray]) -> list[np.ndarray]:
        """``fn`` (batched over a leading axis) on every volume, in groups of one volume
        per device; groups hold volumes of one shape, the last one zero-padded."""
        n = self.mesh.devices.size
        rows = distributed.batch_sharding(self.mesh)
        out: list = [None] * len(volumes[0])
        by_shape: dict = {}
        for i, v in enumerate(volumes[0]):
            by_shape.setdefault(v.shape, []).append(i)
        for index in by_shape.values():
            for j in range(0, len(index), n):
                group = index[j : j + n]
                args = [pad_rows(np.stack([vs[i] for i in group]), n) for vs in volumes]
                result = distributed.to_host(fn(*distributed.put(args, rows)))
                for k, i in enumerate(group):
                    out[i] = result[k]
        return out

    def filter_many(self, volumes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list:
        """:meth:`filter` of every ``(residual, brainmask, keep)``, split over the devices
        by volume."""
        cfg = self.cfg
        if cfg.backend == "scipy":
            return [self.filter(*v) for v in volumes]
        return self._by_volume(
            functools.partial(
                filter_residuals,
                median_size=cfg.median_size,
                erosion_iterations=cfg.erosion_iterations,
            ),
            [r.astype(np.float32) for r, _, _ in volumes],
            [np.asarray(m, bool) for _, m, _ in volumes],
            [np.asarray(k, bool) for _, _, k in volumes],
        )

    def filter(self, residual: np.ndarray, brainmask: np.ndarray, keep: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        if cfg.backend == "scipy":
            r = np.where(keep, residual, 0.0)
            return reference.median_filter(r, cfg.median_size) * reference.binary_erosion(
                brainmask, cfg.erosion_iterations
            )
        return self.filter_many([(residual, brainmask, keep)])[0]

    def eroded(self, brainmask: np.ndarray) -> np.ndarray:
        if self.cfg.backend == "scipy":
            return reference.binary_erosion(brainmask, self.cfg.erosion_iterations)
        return np.asarray(_eroded(brainmask, self.cfg.erosion_iterations))

    def _components(self, jax_fn, scipy_fn):
        if self.components_backend == "jax":
            try:
                return jax_fn()
            except (ValueError, jax.errors.JaxRuntimeError) as e:
                if self.cfg.components == "jax":
                    raise
                self.fell_back = f"{type(e).__name__}: {e}"
                self.components_backend = "scipy"
                warnings.warn(
                    f"JAX connected components failed ({self.fell_back}); using "
                    "scipy.ndimage.label from here on",
                    stacklevel=3,
                )
        return scipy_fn()

    def segment_many(self, filtered: list[np.ndarray], threshold: float) -> list[np.ndarray]:
        """:meth:`segment` of every volume (split over the devices by volume on the JAX
        components backend)."""
        cfg = self.cfg
        fn = functools.partial(
            segment,
            threshold=np.float32(threshold),
            min_size=cfg.min_component_size,
            connectivity=cfg.connectivity,
        )
        return self._components(
            lambda: self._by_volume(fn, [f.astype(np.float32) for f in filtered]),
            lambda: [
                reference.remove_small_components(
                    f > threshold, cfg.min_component_size, cfg.connectivity
                )
                for f in filtered
            ],
        )

    def segment(self, filtered: np.ndarray, threshold: float) -> np.ndarray:
        return self.segment_many([filtered], threshold)[0]

    def components_hit(self, truth: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
        def via_jax():
            hit, n = components_hit(truth[None], pred[None], connectivity=self.cfg.connectivity)
            return int(hit[0]), int(n[0])

        return self._components(
            via_jax, lambda: reference.components_hit(truth, pred, self.cfg.connectivity)
        )


__all__ = [
    "BACKENDS",
    "COMPONENT_BACKENDS",
    "Postprocessor",
    "components_hit",
    "filter_residuals",
    "keep_mask",
    "components",
    "filters",
    "reference",
    "segment",
]

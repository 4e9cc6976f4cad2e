"""3D post-processing of residual volumes (Baur et al. 2018, Sec. 3.1 "Postprocessing").

For each subject: optional masks on the raw residual (the residual's sign; a
hyperintensity prior), a median filter (5 mm), multiplication by a slightly eroded brain
mask (3 mm), a threshold, and removal of 3D connected components smaller than 6 mm³. The
sizes are converted to voxels per scan from its voxel size (:func:`voxel_settings`), or
given in voxels (``evaluate.units=voxels``: Baur's 5x5x5 voxels, 3 erosions, 6 voxels).

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

    filtered = filter_residuals(residuals, masks, keep, median_size=3, erosion_iterations=2)
    seg = segment(filtered, thresholds, min_size=6, connectivity=26)

with ``residuals``, ``masks``, ``keep`` [B, X, Y, Z] and ``thresholds`` [B] or scalar.
"""

from __future__ import annotations

import dataclasses
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
    """Where residuals count before filtering: everywhere, unless ``residual_sign`` is
    ``positive`` (the input brighter than its restoration) or ``negative`` (darker), or
    ``hyperintensity_quantile`` q > 0 (the input at or above its q-quantile over brain
    voxels). ``image`` and ``restored`` are in the same normalised units."""
    keep = np.ones(image.shape, bool)
    if cfg.residual_sign != "both":
        if restored is None:
            raise ValueError(f"residual_sign={cfg.residual_sign} needs the restoration")
        keep &= image > restored if cfg.residual_sign == "positive" else image < restored
    if cfg.hyperintensity_quantile > 0:
        keep &= image >= np.quantile(image[brainmask], cfg.hyperintensity_quantile)
    return keep


@dataclasses.dataclass(frozen=True)
class VoxelSettings:
    """The post-processing's sizes in voxels, for one voxel size."""

    median_size: tuple[int, int, int]  # window edge per axis, odd; (1, 1, 1): off
    erosion_iterations: int  # 6-connected erosion steps of the brain mask
    min_component_size: int  # components with fewer voxels are removed


def voxel_settings(cfg: EvaluateConfig, voxel_size=None) -> VoxelSettings:
    """``cfg``'s sizes in voxels of ``voxel_size`` (mm per axis, from the NIfTI header).

    With ``units="mm"``: the median window is the odd voxel count nearest ``median_mm`` on
    each axis, the erosion ``erosion_mm`` over the mean voxel edge, rounded, and the
    smallest kept component ``min_component_mm3`` over the voxel volume, rounded up. With
    ``units="voxels"`` the voxel fields as given (``voxel_size`` unused).

    Example:
      >>> from jaxuad.config import EvaluateConfig
      >>> voxel_settings(EvaluateConfig(), (1.0, 1.0, 1.0))  # Baur's sizes at 1 mm
      VoxelSettings(median_size=(5, 5, 5), erosion_iterations=3, min_component_size=6)
      >>> voxel_settings(EvaluateConfig(), (2.0, 2.0, 2.0))  # the MNI 2 mm grid
      VoxelSettings(median_size=(3, 3, 3), erosion_iterations=2, min_component_size=1)
    """
    if cfg.units == "voxels":
        m = max(cfg.median_size, 1)
        return VoxelSettings((m, m, m), cfg.erosion_iterations, cfg.min_component_size)
    if voxel_size is None:
        raise ValueError(
            "evaluate.units=mm needs each scan's voxel size (voxel_sizes=, from its NIfTI "
            "header), or set evaluate.units=voxels"
        )
    vs = np.asarray(voxel_size, np.float64)
    if vs.shape != (3,) or not np.all(np.isfinite(vs) & (vs > 0)):
        raise ValueError(f"voxel size must be 3 positive numbers (mm), got {voxel_size!r}")
    odd = lambda x: max(1, 2 * int(np.floor((x - 1) / 2 + 0.5)) + 1)  # nearest odd >= 1
    median = tuple(odd(cfg.median_mm / v) if cfg.median_mm > 0 else 1 for v in vs)
    return VoxelSettings(
        median_size=median,
        erosion_iterations=int(np.floor(cfg.erosion_mm / vs.mean() + 0.5)),
        min_component_size=int(np.ceil(cfg.min_component_mm3 / np.prod(vs) - 1e-9)),
    )


class Postprocessor:
    """Runs the post-processing of ``cfg`` with the chosen backends, taking NumPy volumes
    and returning NumPy volumes: one at a time, or a list of them split over ``devices``
    (default: every visible device) by volume. Each volume is processed with the sizes of
    its voxel size (``voxel_sizes``, mm per axis; needed with ``evaluate.units=mm``)."""

    def __init__(self, cfg: EvaluateConfig, devices: int | None = None):
        if cfg.backend not in BACKENDS:
            raise ConfigError(f"evaluate.backend must be one of {BACKENDS}, got {cfg.backend!r}")
        if cfg.components not in COMPONENT_BACKENDS:
            raise ConfigError(
                f"evaluate.components must be one of {COMPONENT_BACKENDS}, got {cfg.components!r}"
            )
        if cfg.connectivity not in (6, 26):
            raise ConfigError(f"evaluate.connectivity must be 6 or 26, got {cfg.connectivity}")
        self.cfg = cfg
        self.components_backend = cfg.components
        if cfg.components == "auto":
            self.components_backend = "jax"
        self.fell_back: str | None = None  # why auto chose SciPy, if it did
        self.mesh = distributed.make_mesh(devices)

    def settings(self, voxel_size=None) -> VoxelSettings:
        """The sizes in voxels for ``voxel_size`` (:func:`voxel_settings`)."""
        return voxel_settings(self.cfg, None if voxel_size is None else tuple(voxel_size))

    def _settings_of(self, n: int, voxel_sizes) -> list[VoxelSettings]:
        if voxel_sizes is None:
            return [self.settings()] * n
        voxel_sizes = list(voxel_sizes)
        if len(voxel_sizes) != n:
            raise ValueError(f"need one voxel size per volume, got {len(voxel_sizes)} for {n}")
        return [self.settings(v) for v in voxel_sizes]

    def _by_volume(self, fn, settings: list, *volumes: list[np.ndarray]) -> list[np.ndarray]:
        """``fn(settings)`` (batched over a leading axis) on every volume, in groups of one
        volume per device; groups hold volumes of one shape and settings, the last one
        zero-padded."""
        n = self.mesh.devices.size
        rows = distributed.batch_sharding(self.mesh)
        out: list = [None] * len(volumes[0])
        groups: dict = {}
        for i, (v, st) in enumerate(zip(volumes[0], settings, strict=True)):
            groups.setdefault((v.shape, st), []).append(i)
        for (_, st), index in groups.items():
            for j in range(0, len(index), n):
                group = index[j : j + n]
                args = [pad_rows(np.stack([vs[i] for i in group]), n) for vs in volumes]
                result = distributed.to_host(fn(st)(*distributed.put(args, rows)))
                for k, i in enumerate(group):
                    out[i] = result[k]
        return out

    def filter_many(
        self, volumes: list[tuple[np.ndarray, np.ndarray, np.ndarray]], voxel_sizes=None
    ) -> list:
        """:meth:`filter` of every ``(residual, brainmask, keep)``, split over the devices
        by volume."""
        settings = self._settings_of(len(volumes), voxel_sizes)
        if self.cfg.backend == "scipy":
            return [self._filter_scipy(*v, st) for v, st in zip(volumes, settings, strict=True)]
        return self._by_volume(
            lambda st: functools.partial(
                filter_residuals,
                median_size=st.median_size,
                erosion_iterations=st.erosion_iterations,
            ),
            settings,
            [r.astype(np.float32) for r, _, _ in volumes],
            [np.asarray(m, bool) for _, m, _ in volumes],
            [np.asarray(k, bool) for _, _, k in volumes],
        )

    @staticmethod
    def _filter_scipy(residual, brainmask, keep, st: VoxelSettings) -> np.ndarray:
        r = np.where(keep, residual, 0.0)
        return reference.median_filter(r, st.median_size) * reference.binary_erosion(
            brainmask, st.erosion_iterations
        )

    def filter(
        self, residual: np.ndarray, brainmask: np.ndarray, keep: np.ndarray, voxel_size=None
    ) -> np.ndarray:
        """Median-filtered residual [X, Y, Z], zero outside the eroded brain mask and where
        ``keep`` is False."""
        sizes = None if voxel_size is None else [voxel_size]
        return self.filter_many([(residual, brainmask, keep)], sizes)[0]

    def eroded(self, brainmask: np.ndarray, voxel_size=None) -> np.ndarray:
        """The brain mask eroded as the filter erodes it (for threshold fitting)."""
        iterations = self.settings(voxel_size).erosion_iterations
        if self.cfg.backend == "scipy":
            return reference.binary_erosion(brainmask, iterations)
        return np.asarray(_eroded(brainmask, iterations))

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

    def segment_many(
        self, filtered: list[np.ndarray], threshold: float, voxel_sizes=None
    ) -> list[np.ndarray]:
        """:meth:`segment` of every volume (split over the devices by volume on the JAX
        components backend)."""
        cfg = self.cfg
        settings = self._settings_of(len(filtered), voxel_sizes)
        return self._components(
            lambda: self._by_volume(
                lambda st: functools.partial(
                    segment,
                    threshold=np.float32(threshold),
                    min_size=st.min_component_size,
                    connectivity=cfg.connectivity,
                ),
                settings,
                [f.astype(np.float32) for f in filtered],
            ),
            lambda: [
                reference.remove_small_components(
                    f > threshold, st.min_component_size, cfg.connectivity
                )
                for f, st in zip(filtered, settings, strict=True)
            ],
        )

    def segment(self, filtered: np.ndarray, threshold: float, voxel_size=None) -> np.ndarray:
        """``filtered > threshold`` without the components smaller than the minimum size."""
        sizes = None if voxel_size is None else [voxel_size]
        return self.segment_many([filtered], threshold, sizes)[0]

    def components_hit(self, truth: np.ndarray, pred: np.ndarray) -> tuple[int, int]:
        """(ground-truth components touched by ``pred``, ground-truth components)."""

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
    "VoxelSettings",
    "components",
    "components_hit",
    "filter_residuals",
    "filters",
    "keep_mask",
    "reference",
    "segment",
    "voxel_settings",
]

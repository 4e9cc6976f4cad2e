"""The papers' intensity preprocessing before normalisation.

* **Histogram matching** (Chen et al. 2019, Sec. 3; the landmark method of Nyúl & Udupa
  2000): each scan's intensity landmarks, the percentiles :data:`LANDMARK_PERCENTILES` over
  its brain mask, are mapped piecewise-linearly onto the healthy training cohort's
  standard landmarks, so scanner and protocol differences between the training cohort and
  the patients do not become residual. The standard landmarks are fitted once, on the
  training scans (:func:`fit_standard_landmarks`), and stored in the run's config
  (``data.histogram_landmarks``), so everything the run restores is matched the same way.
* **Curvature flow** (Baur et al. 2018 denoise with ITK's ``CurvatureFlow``): the
  level-set flow I_t = κ |∇I|, κ the mean curvature of the iso-intensity surfaces,
  explicit steps of ``time_step`` with central differences and zero-flux (replicated)
  borders, as ITK computes it; compiled in JAX and tested against SimpleITK.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Nyúl & Udupa's decile landmarks, with the 1st and 99th percentiles as the ends.
LANDMARK_PERCENTILES = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)
STANDARD_RANGE = (0.0, 100.0)  # where each scan's 1st and 99th percentiles are mapped


def landmarks(image: np.ndarray, brainmask: np.ndarray) -> np.ndarray:
    """The scan's landmarks: :data:`LANDMARK_PERCENTILES` of its brain voxels, [L]."""
    return np.percentile(np.asarray(image, np.float64)[brainmask], LANDMARK_PERCENTILES)


def fit_standard_landmarks(volumes) -> tuple[float, ...]:
    """Nyúl & Udupa's standard scale from (image, brainmask) pairs: each scan's landmarks
    mapped linearly so its 1st and 99th percentiles land on :data:`STANDARD_RANGE`, then
    averaged over scans.

    Example:
      >>> import numpy as np
      >>> x = np.arange(1000.0).reshape(10, 10, 10); brain = np.ones(x.shape, bool)
      >>> [round(v, 1) for v in fit_standard_landmarks([(x, brain), (2 * x + 5, brain)])]
      [0.0, 9.2, 19.4, 29.6, 39.8, 50.0, 60.2, 70.4, 80.6, 90.8, 100.0]
    """
    lo, hi = STANDARD_RANGE
    mapped = []
    for image, brainmask in volumes:
        p = landmarks(image, brainmask)
        mapped.append(lo + (p - p[0]) * (hi - lo) / max(p[-1] - p[0], 1e-12))
    if not mapped:
        raise ValueError("no scans to fit histogram landmarks on")
    return tuple(float(v) for v in np.mean(mapped, axis=0))


def match_histogram(image: np.ndarray, brainmask: np.ndarray, standard) -> np.ndarray:
    """Maps ``image`` piecewise-linearly from its own landmarks onto ``standard``, extending
    the first and last segments linearly beyond the 1st and 99th percentiles: [X, Y, Z]
    float32. Monotone, so a lesion brighter than the tissue stays brighter."""
    p = landmarks(image, brainmask)
    s = np.asarray(standard, np.float64)
    if s.shape != p.shape:
        raise ValueError(f"need {len(p)} standard landmarks, got {len(s)}")
    # Tied landmarks (a scan with few distinct values) would make the map a step: spread them.
    p = np.maximum.accumulate(p + np.arange(len(p)) * 1e-9 * max(abs(p[-1] - p[0]), 1.0))
    x = np.asarray(image, np.float64)
    out = np.interp(x, p, s)
    below, above = x < p[0], x > p[-1]
    out[below] = s[0] + (x[below] - p[0]) * (s[1] - s[0]) / (p[1] - p[0])
    out[above] = s[-1] + (x[above] - p[-1]) * (s[-1] - s[-2]) / (p[-1] - p[-2])
    return out.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("iterations",))
def curvature_flow(
    image: jax.Array, iterations: int, time_step: float = 0.05, spacing=(1.0, 1.0, 1.0)
) -> jax.Array:
    """``iterations`` explicit steps of I += time_step · κ|∇I| on a [X, Y, Z] volume (ITK's
    ``CurvatureFlowImageFilter``; SimpleITK's defaults are 5 steps of 0.05). Derivatives are
    central differences scaled by 1/``spacing`` (mm), borders replicated (zero flux); where
    |∇I|² < 1e-9 the voxel does not move."""
    scale = 1.0 / jnp.asarray(spacing, jnp.float32)

    def step(_, x):
        p = jnp.pad(x, 1, mode="edge")
        n = x.shape

        def at(d):  # the neighbour at offset d (each -1, 0 or 1), aligned with x
            return jax.lax.slice(
                p, [1 + o for o in d], [1 + o + k for o, k in zip(d, n, strict=True)]
            )

        unit = [tuple(int(i == a) for i in range(3)) for a in range(3)]
        neg = [tuple(-v for v in u) for u in unit]
        d1 = [0.5 * (at(unit[a]) - at(neg[a])) * scale[a] for a in range(3)]
        d2 = [(at(unit[a]) - 2 * x + at(neg[a])) * scale[a] ** 2 for a in range(3)]
        mag = sum(g * g for g in d1)
        update = sum(d1[a] ** 2 * sum(d2[b] for b in range(3) if b != a) for a in range(3))
        for a in range(3):
            for b in range(a + 1, 3):
                u = tuple(unit[a][i] + unit[b][i] for i in range(3))
                v = tuple(unit[a][i] - unit[b][i] for i in range(3))
                cross = 0.25 * (at(u) - at(v) - at(tuple(-c for c in v)) + at(tuple(-c for c in u)))
                update = update - 2 * d1[a] * d1[b] * cross * scale[a] * scale[b]
        flat = mag < 1e-9
        return x + time_step * jnp.where(flat, 0.0, update / jnp.where(flat, 1.0, mag))

    return jax.lax.fori_loop(0, iterations, step, jnp.asarray(image, jnp.float32))

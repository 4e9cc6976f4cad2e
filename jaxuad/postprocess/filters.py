"""Compiled 3D filters in JAX: the median filter and binary erosion.

Both take a single volume ``[X, Y, Z]``; ``jax.vmap`` batches them over subjects
(:mod:`jaxuad.postprocess` does). Both are exact: they give the same numbers as their
:mod:`scipy.ndimage` counterparts in :mod:`jaxuad.postprocess.reference`, voxel for voxel,
including at the volume's faces, and are tested that way.

* :func:`median_filter` is a radix selection over the bits of the values: 32 passes, each
  counting, for every voxel at once, how many of its k**3 neighbours lie below a candidate.
  It is branch-free, sorts nothing, needs O(volume) memory, and returns one of the inputs.
  Faces are handled as SciPy's ``mode="reflect"`` (``jnp.pad(mode="symmetric")``: the
  volume mirrored about its faces, edge voxels repeated).
* :func:`binary_erosion` uses the 6-neighbourhood cross, with everything outside the
  volume counted as background (SciPy's default ``border_value=0``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxuad.postprocess.bits import from_sortable_keys, sortable_keys


def _windows(padded: jax.Array, shape: tuple[int, int, int], size: tuple[int, int, int]):
    """The prod(size) shifted views of ``padded`` that line up with an output of ``shape``."""
    for i in range(size[0]):
        for j in range(size[1]):
            for k in range(size[2]):
                yield lax.slice(padded, (i, j, k), (i + shape[0], j + shape[1], k + shape[2]))


def median_filter(x: jax.Array, size: int | tuple[int, int, int] = 5) -> jax.Array:
    """``scipy.ndimage.median_filter(x, size, mode="reflect")`` for a float [X, Y, Z] volume;
    ``size`` is the window edge, or one per axis (odd; 0 and 1 leave an axis unfiltered).

    The median of n = prod(size) values is the one of rank n // 2 (n is odd). Its key is
    built bit by bit, from the top: a bit is set when fewer than rank + 1 neighbours have
    keys below the candidate with that bit set.
    """
    size = tuple(max(int(k), 1) for k in (size if isinstance(size, tuple) else (size,) * 3))
    if len(size) != 3 or any(k % 2 == 0 for k in size):
        raise ValueError(f"median size must be odd, got {size}")
    if max(size) == 1:
        return x.astype(jnp.float32)
    rank = (size[0] * size[1] * size[2]) // 2
    keys = sortable_keys(x)
    padded = jnp.pad(keys, [(k // 2, k // 2) for k in size], mode="symmetric")

    def bit(i, prefix):
        candidate = prefix | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        below = sum((w < candidate).astype(jnp.int32) for w in _windows(padded, x.shape, size))
        return jnp.where(below <= rank, candidate, prefix)

    prefix = lax.fori_loop(0, 32, bit, jnp.zeros(x.shape, jnp.uint32))
    return from_sortable_keys(prefix)


def face_neighbours(x: jax.Array, fill):
    """The 6 face neighbours of every voxel (``fill`` beyond the faces), as slices of one
    padded copy, which XLA fuses into a single pass over the volume."""
    p = jnp.pad(x, 1, constant_values=jnp.asarray(fill, x.dtype))
    for axis in range(3):
        for start in (0, 2):
            begin = [1, 1, 1]
            begin[axis] = start
            yield lax.slice(p, begin, [b + n for b, n in zip(begin, x.shape, strict=True)])


def binary_erosion(mask: jax.Array, iterations: int) -> jax.Array:
    """``scipy.ndimage.binary_erosion(mask, generate_binary_structure(3, 1), iterations)``."""
    mask = mask.astype(bool)
    if iterations <= 0:
        return mask

    def once(_, m):
        for n in face_neighbours(m, False):
            m = m & n
        return m

    return lax.fori_loop(0, iterations, once, mask)

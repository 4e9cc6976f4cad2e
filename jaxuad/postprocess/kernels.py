"""Compiled 3D post-processing kernels in JAX: median filter, erosion, connected components.

The median filter and erosion take a single volume ``[X, Y, Z]``; ``jax.vmap`` batches
them over subjects (:mod:`jaxuad.postprocess` does). All are exact: they give the same
numbers as their :mod:`scipy.ndimage` counterparts in :mod:`jaxuad.postprocess.reference`,
voxel for voxel, including at the volume's faces, and are tested that way.

* :func:`median_filter` is a radix selection over the bits of the values: 32 passes, each
  counting, for every voxel at once, how many of its k**3 neighbours lie below a candidate.
  It is branch-free, sorts nothing, needs O(volume) memory, and returns one of the inputs.
  Faces are handled as SciPy's ``mode="reflect"`` (``jnp.pad(mode="symmetric")``: the
  volume mirrored about its faces, edge voxels repeated).
* :func:`binary_erosion` uses the 6-neighbourhood cross, with everything outside the
  volume counted as background (SciPy's default ``border_value=0``).
* :func:`label`, :func:`remove_small_components` and :func:`components_hit` find 3D
  connected components with one of two kernels, chosen per volume by how much foreground
  it has (see "Connected components" below): a sparse one that works on the list of
  foreground voxels, and a dense sweep over the whole volume for full masks. Labels are
  numbered in raster order of each component's first voxel, which is exactly
  ``scipy.ndimage.label``'s numbering. These three take one volume or a batch whole.
"""

from __future__ import annotations

import functools
import itertools
import operator

import jax
import jax.numpy as jnp
from jax import lax

_SIGN = jnp.uint32(0x80000000)


def sortable_keys(x: jax.Array) -> jax.Array:
    """float32 -> uint32 whose unsigned order is the floats' order (-0.0 sorts just below
    +0.0; inputs must be finite)."""
    b = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    return jnp.where(b >= _SIGN, ~b, b | _SIGN)


def from_sortable_keys(k: jax.Array) -> jax.Array:
    """Inverse of :func:`sortable_keys`."""
    b = jnp.where(k >= _SIGN, k & ~_SIGN, ~k)
    return lax.bitcast_convert_type(b, jnp.float32)


def _windows(padded: jax.Array, shape: tuple[int, int, int], size: int):
    """The size**3 shifted views of ``padded`` that line up with an output of ``shape``."""
    for i in range(size):
        for j in range(size):
            for k in range(size):
                yield lax.slice(padded, (i, j, k), (i + shape[0], j + shape[1], k + shape[2]))


def median_filter(x: jax.Array, size: int = 5) -> jax.Array:
    """``scipy.ndimage.median_filter(x, size, mode="reflect")`` for a float [X, Y, Z] volume.

    The median of n = size**3 values is the one of rank n // 2 (n is odd). Its key is
    built bit by bit, from the top: a bit is set when fewer than rank + 1 neighbours have
    keys below the candidate with that bit set.
    """
    if size <= 1:
        return x.astype(jnp.float32)
    if size % 2 == 0:
        raise ValueError(f"median size must be odd, got {size}")
    half, rank = size // 2, size**3 // 2
    keys = sortable_keys(x)
    padded = jnp.pad(keys, half, mode="symmetric")

    def bit(i, prefix):
        candidate = prefix | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        below = sum((w < candidate).astype(jnp.int32) for w in _windows(padded, x.shape, size))
        return jnp.where(below <= rank, candidate, prefix)

    prefix = lax.fori_loop(0, 32, bit, jnp.zeros(x.shape, jnp.uint32))
    return from_sortable_keys(prefix)


def _face_neighbours(x: jax.Array, fill):
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
        for n in _face_neighbours(m, False):
            m = m & n
        return m

    return lax.fori_loop(0, iterations, once, mask)


def _neighbourhood_min(x: jax.Array, connectivity: int, fill) -> jax.Array:
    """Minimum over each voxel and its 6 face neighbours, or its full 3x3x3 box (26).

    Neighbours are read as slices of padded copies, which XLA fuses into single passes
    (shifting whole copies with ``lax.pad`` was 3x slower on CPU)."""
    fill = jnp.asarray(fill, x.dtype)
    if connectivity == 6:
        out = x
        for n in _face_neighbours(x, fill):
            out = jnp.minimum(out, n)
        return out
    for axis in range(x.ndim):  # the box minimum is separable
        pad = [(0, 0)] * x.ndim
        pad[axis] = (1, 1)
        p = jnp.pad(x, pad, constant_values=fill)
        n = x.shape[axis]
        x = jnp.minimum(
            lax.slice_in_dim(p, 1, n + 1, axis=axis),
            jnp.minimum(
                lax.slice_in_dim(p, 0, n, axis=axis), lax.slice_in_dim(p, 2, n + 2, axis=axis)
            ),
        )
    return x


# Connected components ------------------------------------------------------------------
#
# Two exact kernels, chosen per batch by how many foreground voxels the fullest mask has:
#
# * sparse (up to ``capacity`` foreground voxels): the foreground is compacted to a list in
#   raster order, each voxel's neighbours are looked up once, and labels are merged on that
#   list (hooking each root to its smallest neighbouring label, then pointer jumping) until
#   nothing changes, a handful of rounds. Work and memory scale with the capacity, not the
#   volume: a thresholded residual is mostly background.
# * dense (any mask): the smallest voxel index is propagated through the whole volume, one
#   neighbourhood-minimum sweep after another, with pointer jumping.
#
# Either way every voxel ends up pointing at its component's first voxel in raster order,
# which is how scipy.ndimage.label numbers components.

SPARSE_CAPACITIES = (1 << 12, 1 << 15, 1 << 17)
"""Default foreground capacities of the sparse kernel's tiers. A tier is used on volumes
of at least 4x its capacity (above that the dense sweep is as fast); masks fuller than the
largest tier take the dense kernel."""


def capacities_for(size: int, capacities: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The sparse tiers used for volumes of ``size`` voxels: ``capacities`` below ``size``,
    or by default the :data:`SPARSE_CAPACITIES` of at most a quarter of it."""
    if capacities is None:
        return tuple(c for c in SPARSE_CAPACITIES if c <= size // 4)
    return tuple(sorted(c for c in capacities if 0 < c < size))


def compact(flat: jax.Array, capacity: int) -> jax.Array:
    """Indices of the first ``capacity`` True entries of a bool vector, ascending, padded
    with ``flat.size``: ``jnp.nonzero(flat, size=capacity, fill_value=flat.size)``, in
    O(size / 32 + capacity) work instead of a cumulative sum over the whole vector.

    The vector is packed into 32-bit words; each output slot finds its word from the
    words' running popcounts (a scatter of word starts and a running maximum) and its bit
    by a five-step binary search on popcounts within the word."""
    n = flat.size
    bits = jnp.pad(flat.astype(bool), (0, (-n) % 32)).reshape(-1, 32).astype(jnp.uint32)
    words = jnp.sum(bits << jnp.arange(32, dtype=jnp.uint32), axis=1, dtype=jnp.uint32)
    counts = lax.population_count(words).astype(jnp.int32)
    ends = jnp.cumsum(counts)
    starts = ends - counts
    rows = jnp.arange(counts.size, dtype=jnp.int32)
    # Slot k lies in the last word starting at or before k (empty words share the start of
    # the next word, which the maximum picks).
    word = lax.cummax(jnp.zeros(capacity, jnp.int32).at[starts].max(rows, mode="drop"))
    k = jnp.arange(capacity, dtype=jnp.int32)
    rank = k - starts[word] + 1  # the wanted bit is the rank-th set bit of its word
    w = words[word]
    col = jnp.zeros_like(k)
    for step in (16, 8, 4, 2, 1):
        low = (jnp.uint32(1) << (col + step).astype(jnp.uint32)) - 1
        col = jnp.where(lax.population_count(w & low).astype(jnp.int32) < rank, col + step, col)
    return jnp.where(k < ends[-1], word * 32 + col, n)


def _offsets(connectivity: int) -> list[tuple[int, int, int]]:
    return [
        d
        for d in itertools.product((-1, 0, 1), repeat=3)
        if any(d) and (connectivity == 26 or sum(map(abs, d)) == 1)
    ]


def _sparse_roots(mask: jax.Array, connectivity: int, capacity: int):
    """Components of a mask with at most ``capacity`` foreground voxels: (raster index of
    each listed voxel, ``mask.size`` for empty slots; which slots are listed; the slot of
    each one's component's first voxel). Empty slots are their own roots."""
    shape, n, cap = mask.shape, mask.size, capacity
    index = compact(mask.ravel(), cap)
    listed = index < n
    # Neighbours are looked up in a grid padded by one voxel on every face, where each of
    # them exists (as background beyond the faces) and needs no bounds check.
    padded = tuple(s + 2 for s in shape)
    x, y, z = index // (shape[1] * shape[2]), index // shape[2] % shape[1], index % shape[2]
    at = ((x + 1) * padded[1] + y + 1) * padded[2] + z + 1
    size = padded[0] * padded[1] * padded[2]
    slot = jnp.arange(cap, dtype=jnp.int32)
    grid = jnp.full(size, cap, jnp.int32).at[jnp.where(listed, at, size)].set(slot, mode="drop")
    strides = (padded[1] * padded[2], padded[2], 1)
    steps = jnp.array([sum(map(operator.mul, d, strides)) for d in _offsets(connectivity)])
    # lax.map materialises ``at`` once; a fused [K, capacity] gather recomputed it per entry.
    neighbours = lax.map(
        lambda s: jnp.where(listed, grid[jnp.where(listed, at + s, 0)], cap),
        steps,
    )

    def merge(state):
        root, _ = state
        with_none = jnp.concatenate([root, jnp.full(1, cap, jnp.int32)])
        low = jnp.minimum(root, jnp.min(with_none[neighbours], axis=0))
        # Hook each root onto the smallest label next to its members, take that label
        # too, then jump four times (4-5 rounds on real masks; 2 jumps took 5-7, 8 no
        # fewer): every value stays a slot of the same component, no larger.
        new = jnp.minimum(root.at[root].min(low), low)
        for _ in range(4):
            new = new[new]
        return new, jnp.any(new != root)

    root, _ = lax.while_loop(lambda s: s[1], merge, (slot, jnp.bool_(True)))
    return index, listed, root


def _dense_roots(mask: jax.Array, connectivity: int):
    """Components of any mask: (None: every voxel has its slot, in raster order; the
    foreground; the raster index of each voxel's component's first voxel, ``mask.size`` on
    background)."""
    n = mask.size
    background = jnp.int32(n)
    index = jnp.arange(n, dtype=jnp.int32).reshape(mask.shape)

    def sweep(state):
        lab, _ = state
        new = jnp.where(mask, _neighbourhood_min(lab, connectivity, background), background)
        flat = new.ravel()
        # Pointer jumping: a voxel's label is the index of a voxel of the same component
        # whose own label is no larger, so following it is a safe shortcut.
        jumped = jnp.where(mask, flat[jnp.minimum(flat, n - 1)].reshape(mask.shape), background)
        return jumped, jnp.any(jumped != lab)

    init = jnp.where(mask, index, background)
    root, _ = lax.while_loop(lambda s: s[1], sweep, (init, jnp.bool_(True)))
    return None, mask.ravel(), root.ravel()


def _by_components(per_volume, masks: jax.Array, connectivity: int, capacities, *more):
    """``per_volume(mask, index, listed, root, *more)`` for each volume of a [B, X, Y, Z] batch
    (``more``: other [B, ...] arrays), after the components of its mask: by the sparse
    kernel of the smallest tier that holds its foreground, else the dense one.

    Volumes go one after another (``lax.map``), each through a ``lax.switch`` that runs
    only its own tier; vmapped, the switch would become a select that runs every tier,
    and one full mask would put the whole batch on the slowest one."""
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity}")
    masks = masks.astype(bool)
    size = masks[0].size
    if size >= 2**31 - 1:
        raise ValueError(f"volume of {size} voxels is too large for int32 labels")
    tiers = capacities_for(size, capacities)

    def kernel(roots):
        return lambda m, *o: per_volume(m, *roots(m), *o)

    dense = kernel(lambda m: _dense_roots(m, connectivity))
    sparse = [
        kernel(functools.partial(_sparse_roots, connectivity=connectivity, capacity=c))
        for c in tiers
    ]

    def one(args):
        if not tiers:
            return dense(*args)
        tier = jnp.searchsorted(jnp.asarray(tiers), jnp.sum(args[0], dtype=jnp.int32))
        return lax.switch(tier, [*sparse, dense], *args)

    return lax.map(one, (masks, *more))


def _firsts(listed: jax.Array, root: jax.Array) -> jax.Array:
    """The slots that are their component's first voxel."""
    return listed & (root == jnp.arange(root.size))


def _per_listed(values: jax.Array, index, mask: jax.Array, fill) -> jax.Array:
    """A value per listed voxel -> a volume (``fill`` where nothing is listed)."""
    if index is None:
        return values.reshape(mask.shape)
    out = jnp.full(mask.size, fill, values.dtype).at[index].set(values, mode="drop")
    return out.reshape(mask.shape)


def label(
    mask: jax.Array, connectivity: int = 26, capacities: tuple[int, ...] | None = None
) -> tuple[jax.Array, jax.Array]:
    """``scipy.ndimage.label(mask, generate_binary_structure(3, 1 | 3))``: int32 labels
    numbered 1..n in raster order (0 = background), and n. ``mask`` is one [X, Y, Z]
    volume or a [B, X, Y, Z] batch (pass batches whole rather than ``jax.vmap``-ing: a
    vmapped tier choice runs every tier). ``capacities``: the sparse tiers
    (:func:`capacities_for`)."""
    mask = jnp.asarray(mask)
    if mask.ndim == 3:
        labels, n = label(mask[None], connectivity, capacities)
        return labels[0], n[0]

    def one(m, index, listed, root):
        numbers = jnp.cumsum(_firsts(listed, root), dtype=jnp.int32)  # 1..n at first voxels
        labels = jnp.where(listed, numbers[jnp.minimum(root, root.size - 1)], 0)
        return _per_listed(labels, index, m, 0), numbers[-1]

    return _by_components(one, mask, connectivity, capacities)


def remove_small_components(
    seg: jax.Array,
    min_size: int,
    connectivity: int = 26,
    capacities: tuple[int, ...] | None = None,
) -> jax.Array:
    """Keeps the connected components of ``seg`` ([X, Y, Z] or [B, X, Y, Z]) with at least
    ``min_size`` voxels."""
    seg = jnp.asarray(seg).astype(bool)
    if min_size <= 1:
        return seg
    if seg.ndim == 3:
        return remove_small_components(seg[None], min_size, connectivity, capacities)[0]

    def one(m, index, listed, root):
        sizes = jnp.zeros(root.size + 1, jnp.int32).at[root].add(listed.astype(jnp.int32))
        return _per_listed(listed & (sizes[root] >= min_size), index, m, False)

    return _by_components(one, seg, connectivity, capacities)


def components_hit(
    truth: jax.Array,
    pred: jax.Array,
    connectivity: int = 26,
    capacities: tuple[int, ...] | None = None,
):
    """Lesion-wise detection: (components of ``truth`` overlapping ``pred``, all of them),
    per volume of a batch."""
    truth = jnp.asarray(truth).astype(bool)
    pred = jnp.broadcast_to(jnp.asarray(pred).astype(bool), truth.shape)
    if truth.ndim == 3:
        hit, n = components_hit(truth[None], pred[None], connectivity, capacities)
        return hit[0], n[0]

    def one(m, index, listed, root, p):
        hit_voxel = p.ravel() if index is None else p.ravel()[jnp.minimum(index, m.size - 1)]
        first = _firsts(listed, root)
        hit = jnp.zeros(root.size + 1, bool).at[root].max(listed & hit_voxel)
        return (first & hit[: root.size]).sum(dtype=jnp.int32), first.sum(dtype=jnp.int32)

    return _by_components(one, truth, connectivity, capacities, pred)

"""Compiled 3D connected components in JAX, exact to ``scipy.ndimage.label``.

:func:`label`, :func:`remove_small_components` and :func:`components_hit` find 3D
connected components with one of two kernels, chosen per batch by how many runs (stretches
of foreground along the last axis) its masks have (see "Connected components" below): one
that works on the list of runs, with every line packed into 32-bit words, and a dense sweep
over the whole volume (over 2x2x2 blocks for 26-connectivity) for noise-like masks. Labels
are numbered in raster order of each component's first voxel, which is exactly
``scipy.ndimage.label``'s numbering. These three take one volume or a batch whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxuad.postprocess.filters import face_neighbours


def _neighbourhood_min(x: jax.Array, connectivity: int, fill) -> jax.Array:
    """Minimum over each voxel and its 6 face neighbours, or its full 3x3x3 box (26).

    Neighbours are read as slices of padded copies, which XLA fuses into single passes
    (shifting whole copies with ``lax.pad`` was 3x slower on CPU)."""
    fill = jnp.asarray(fill, x.dtype)
    if connectivity == 6:
        out = x
        for n in face_neighbours(x, fill):
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
# Exact kernels, chosen per batch by how many runs its fullest mask has (a run: a maximal
# stretch of foreground voxels along the last axis):
#
# * runs (up to ``capacity`` runs): every line along the last axis is packed into 32-bit
#   words, so finding the runs, counting them and locating a position among them are bit
#   operations on 1/32 of the volume. The runs are listed in raster order; each is joined
#   to the runs it touches in its forward neighbouring lines, and the labels are merged on
#   that list of runs until nothing changes (3-5 rounds on real masks). Work and memory
#   after the packing scale with the capacity: a brain mask has ~4,000 runs for 139,000
#   voxels, a thresholded residual fewer.
# * dense (any mask; masks with more runs than the largest tier, i.e. noise-like ones, and
#   volumes too small for tiers): the smallest voxel index is propagated through the whole
#   volume, one neighbourhood-minimum sweep after another, with pointer jumping
#   (:func:`_propagate`). For 26-connectivity the sweeps run over 2x2x2 blocks, 1/8 of the
#   voxels (:func:`_block_labels`); for 6-connectivity over voxels.
#
# Every slot (a run, a block or a voxel) ends up pointing at the slot of its component's
# first voxel in raster order, which is how scipy.ndimage.label numbers components.

RUN_CAPACITIES = (1 << 12, 1 << 14, 1 << 16)
"""Default run capacities of the run kernel's tiers, for volumes that can hold at least 4x
as many runs (the dense kernel serves small volumes as well). Masks with more runs than the
largest tier take the dense kernel."""

_WORD = 32
_MAX_VOXELS = 2**31 - 2
"""The most voxels (of one volume, or of a group the dense kernels label together) whose
indices and the background label past them fit in int32."""
_ONES = jnp.uint32(0xFFFFFFFF)


def max_runs(shape: tuple[int, ...]) -> int:
    """The most runs a mask of ``shape`` can have (every other voxel of every line)."""
    return shape[0] * shape[1] * -(-shape[2] // 2)


def capacities_for(
    shape: tuple[int, ...], capacities: tuple[int, ...] | None = None
) -> tuple[int, ...]:
    """The run kernel's tiers for volumes of ``shape``: ``capacities`` (sorted, those up to
    :func:`max_runs`; one of that size takes every mask), or by default the
    :data:`RUN_CAPACITIES` of at most a quarter of it."""
    most = max_runs(shape)
    if capacities is None:
        return tuple(c for c in RUN_CAPACITIES if c <= most // 4)
    return tuple(sorted(c for c in capacities if 0 < c <= most))


def low_bits(k: jax.Array) -> jax.Array:
    """uint32 words with their ``k`` lowest bits set, for k in 0..32."""
    k = jnp.asarray(k).astype(jnp.uint32)
    return jnp.where(k >= _WORD, _ONES, (jnp.uint32(1) << k) - 1)


def _popcount(words: jax.Array) -> jax.Array:
    return lax.population_count(words).astype(jnp.int32)


def pack_lines(volume: jax.Array) -> jax.Array:
    """[X, Y, Z] bool -> [X * Y, W] uint32: bit j of word w of line (x, y) is voxel
    (x, y, 32 w + j); the bits past Z are 0."""
    z = volume.shape[-1]
    words = -(-z // _WORD)
    bits = jnp.pad(volume.reshape(-1, z).astype(jnp.uint32), ((0, 0), (0, words * _WORD - z)))
    bits = bits.reshape(-1, words, _WORD) << jnp.arange(_WORD, dtype=jnp.uint32)
    return jnp.sum(bits, axis=-1, dtype=jnp.uint32)


def _run_edges(words: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(first, last) voxels of the runs of packed lines, as bits of the same layout."""
    carry_in = jnp.pad(words[:, :-1] >> (_WORD - 1), ((0, 0), (1, 0)))
    carry_out = jnp.pad(words[:, 1:] << (_WORD - 1), ((0, 0), (0, 1)))
    return words & ~((words << 1) | carry_in), words & ~((words >> 1) | carry_out)


def compact_words(words: jax.Array, capacity: int) -> jax.Array:
    """Positions (word * 32 + bit) of the first ``capacity`` set bits of a uint32 vector,
    ascending, padded with ``words.size * 32``: ``jnp.nonzero`` of the unpacked bits with
    ``size=capacity``, in O(words + capacity) work.

    Each output slot finds its word from the words' running popcounts (a scatter of word
    starts and a running maximum) and its bit by a five-step binary search on popcounts
    within the word."""
    counts = _popcount(words)
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
        col = jnp.where(_popcount(w & low_bits(col + step)) < rank, col + step, col)
    return jnp.where(k < ends[-1], word * _WORD + col, words.size * _WORD)


class _Components(NamedTuple):
    """A kernel's answer, over its slots (runs, voxels or 2x2x2 blocks): ``root``, the slot
    of each one's component's first voxel; ``valid``, which slots hold foreground; ``size``,
    voxels per slot; ``paint`` (values per slot -> a volume, meaningful on the foreground);
    ``paint_flags`` (bools per slot -> the volume of the voxels of the slots flagged);
    ``touches`` (a bool volume -> per slot: does any of its voxels lie in it); ``rank``
    (bools per slot -> per slot, how many flagged slots have their first voxel at or before
    its own in raster order: a running count where slots are in raster order)."""

    root: jax.Array
    valid: jax.Array
    size: jax.Array
    paint: Callable[[jax.Array], jax.Array]
    paint_flags: Callable[[jax.Array], jax.Array]
    touches: Callable[[jax.Array], jax.Array]
    rank: Callable[[jax.Array], jax.Array]


def _running_count(flags: jax.Array) -> jax.Array:
    return jnp.cumsum(flags, dtype=jnp.int32)


def _merge_roots(start: jax.Array, links: jax.Array) -> jax.Array:
    """Merges labels over ``links`` ([K, S]: slot s is linked to links[k, s]) from
    ``start`` (each slot's label, a slot of the same component no larger than itself) until
    every linked pair has the same label: its component's smallest slot.

    Each round hooks the label of every slot, and of every slot it links to, onto the
    smallest label among them (both ways, so a link need be listed once), then jumps four
    times: every value stays a slot of the same component, no larger."""

    def merge(state):
        root, _ = state
        there = root[links]
        low = jnp.minimum(root, jnp.min(there, axis=0))
        new = root.at[root].min(low).at[there].min(jnp.broadcast_to(low, links.shape))
        new = jnp.minimum(new, low)
        for _ in range(4):
            new = new[new]
        return new, jnp.any(new != root)

    return lax.while_loop(lambda s: s[1], merge, (start, jnp.bool_(True)))[0]


def _run_components(
    first: jax.Array, last: jax.Array, shape, connectivity: int, capacity: int
) -> _Components:
    """Components of a mask with at most ``capacity`` runs (``first``, ``last``: its runs'
    first and last voxels as bits of :func:`pack_lines`' layout, from :func:`_run_edges`).
    Slots are runs in raster order; empty slots are their own roots."""
    x_size, y_size, z_size = shape
    lines, per_line = first.shape
    bits = per_line * _WORD
    # Runs before each word, over the whole volume: of run starts, of run ends.
    counted = []
    for edge in (first, last):
        count = _popcount(edge)
        before_line = jnp.cumsum(count.sum(1)) - count.sum(1)
        counted.append((before_line[:, None] + jnp.cumsum(count, 1) - count).ravel())
    starts_before, ends_before = counted
    first_bits, last_bits = first.ravel(), last.ravel()
    s = compact_words(first_bits, capacity)
    valid = s < lines * bits
    s = jnp.where(valid, s, 0)
    e = jnp.where(valid, compact_words(last_bits, capacity), 0)
    line, z0, z1 = s // bits, s % bits, e % bits
    x, y = line // y_size, line % y_size
    # The runs of a neighbouring line that touch run r (overlap it, or by 26-connectivity
    # come within one voxel of it) are a contiguous range [lo, hi] of the list: lo is the
    # first run ending at or after a, hi the last starting at or before b.
    reach = 1 if connectivity == 26 else 0
    a, b = jnp.maximum(z0 - reach, 0), jnp.minimum(z1 + reach, z_size - 1)
    slot = jnp.arange(capacity, dtype=jnp.int32)
    forward = [(0, 1), (1, -1), (1, 0), (1, 1)] if connectivity == 26 else [(0, 1), (1, 0)]
    dx, dy = (jnp.array(d, jnp.int32)[:, None] for d in zip(*forward, strict=True))
    nx, ny = x + dx, y + dy  # [directions, capacity]
    inside = valid & (nx >= 0) & (nx < x_size) & (ny >= 0) & (ny < y_size)
    at = jnp.where(inside, nx * y_size + ny, 0) * per_line
    ia, ib = at + a // _WORD, at + b // _WORD
    lo = ends_before[ia] + _popcount(last_bits[ia] & low_bits(a % _WORD))
    hi = starts_before[ib] + _popcount(first_bits[ib] & low_bits(b % _WORD + 1)) - 1
    touching = inside & (lo <= hi)
    # r is linked to lo; lo..hi, all touching r, to each other by the chains below
    links = jnp.where(touching, lo, slot)
    several = touching & (lo < hi)
    spans = jnp.zeros(capacity + 1, jnp.int32)
    spans = spans.at[jnp.where(several, lo, capacity)].add(1)
    spans = spans.at[jnp.where(several, hi, capacity)].add(-1)
    # Run k and k + 1 (of one line) touch a common run of an earlier line where a span
    # covers k; each chain of such runs starts out labelled with its first run, and that
    # label is a link too, so merging keeps the chain together.
    joined = jnp.cumsum(spans[:-1]) > 0
    chain = lax.cummax(jnp.where(jnp.pad(joined[:-1], (1, 0)), 0, slot))
    root = _merge_roots(chain, jnp.concatenate([links, chain[None]]))

    def paint(values):
        # a voxel's run: the run starts at or before it, over the whole volume, less one
        j = jnp.arange(_WORD, dtype=jnp.uint32)
        upto = _popcount(first[:, :, None] & low_bits(j + 1))
        run = starts_before.reshape(lines, per_line)[:, :, None] + upto - 1
        out = values[jnp.clip(run, 0, capacity - 1)].reshape(lines, bits)[:, :z_size]
        return out.reshape(shape)

    def run_bits(w):
        """Each run's bits in word w of its line."""
        span = low_bits(jnp.clip(z1 + 1 - w * _WORD, 0, _WORD))
        return span & ~low_bits(jnp.clip(z0 - w * _WORD, 0, _WORD))

    def paint_flags(flags):
        # runs are disjoint, so the words of the flagged ones add up (a gather per voxel,
        # as in paint, took about twice as long as finding the components)
        out = jnp.zeros(lines * per_line + 1, jnp.uint32)
        for w in range(per_line):
            at = jnp.where(valid & flags, line * per_line + w, lines * per_line)
            out = out.at[at].add(run_bits(w))
        out = out[:-1].reshape(lines, per_line, 1) >> jnp.arange(_WORD, dtype=jnp.uint32)
        return (out & 1).astype(bool).reshape(lines, bits)[:, :z_size].reshape(shape)

    def touches(volume):
        there = pack_lines(volume).ravel()
        hit = jnp.zeros(capacity, bool)
        for w in range(per_line):
            hit = hit | ((there[line * per_line + w] & run_bits(w)) != 0)
        return valid & hit

    size = jnp.where(valid, z1 - z0 + 1, 0)
    return _Components(root, valid, size, paint, paint_flags, touches, _running_count)


def _propagate(start: jax.Array, full: jax.Array, slot_of, neighbours_min, end: int) -> jax.Array:
    """Label propagation over a batch of slot grids, to a fixed point.

    ``start`` [B, ...]: each slot's label, a voxel index over the whole batch (volume b's
    voxel v is b * volume size + v) of its component, no larger than the slot's own first
    voxel (``end``, the batch's voxel count, on background slots); ``full``: the slots that
    hold foreground (the others keep their label); ``slot_of``: voxel index -> the flat
    index of its slot; ``neighbours_min``: labels -> each slot's minimum over itself and the
    slots it is joined to. Ends with every slot labelled with its component's first voxel.

    Each sweep first jumps (a slot takes the label of the slot its label lies in: a voxel of
    the same component with a label no larger), then takes the minimum over neighbours.
    The other way round XLA fuses the minimum into the jump's gather and computes it twice
    per slot, unvectorised: 10x slower on CPU. The batch is one grid, not a ``vmap``: a
    vmapped gather made the whole kernel 1.5x slower."""

    def sweep(state):
        lab, _ = state
        flat = lab.ravel()
        jumped = flat[slot_of(jnp.minimum(flat, end - 1))].reshape(lab.shape)
        new = neighbours_min(jnp.where(full, jumped, lab))
        return new, jnp.any(new != lab)

    return lax.while_loop(lambda s: s[1], sweep, (start, jnp.bool_(True)))[0]


def _volume_offsets(batch: int, n: int) -> jax.Array:
    """[B, 1, 1, 1]: the first index of each volume's voxels over the batch."""
    return (jnp.arange(batch, dtype=jnp.int32) * n).reshape(batch, 1, 1, 1)


def _dense_roots(masks: jax.Array, connectivity: int) -> jax.Array:
    """[B, X, Y, Z] masks -> each foreground voxel's component's first voxel (an index
    within its volume), by sweeps over every voxel; background voxels hold the volume
    size."""
    batch, n = masks.shape[0], masks[0].size
    background = jnp.int32(masks.size)
    index = jnp.arange(masks.size, dtype=jnp.int32).reshape(masks.shape)

    def neighbours_min(lab):
        near = jax.vmap(lambda v: _neighbourhood_min(v, connectivity, background))(lab)
        return jnp.where(masks, near, background)

    start = jnp.where(masks, index, background)
    lab = _propagate(start, masks, lambda v: v, neighbours_min, masks.size)
    return jnp.where(masks, lab - _volume_offsets(batch, n), n)


def _voxel_components(mask: jax.Array, root: jax.Array) -> _Components:
    """The answer of a kernel whose slots are voxels (``root``: [X, Y, Z], each foreground
    voxel's component's first voxel index)."""
    flat = mask.ravel()
    return _Components(
        root.ravel(),
        flat,
        flat.astype(jnp.int32),
        lambda values: values.reshape(mask.shape),
        lambda flags: mask & flags.reshape(mask.shape),
        lambda volume: flat & volume.ravel(),
        _running_count,
    )


# The 2x2x2 block kernel (26-connectivity). Every two voxels of a 2x2x2 block are
# 26-neighbours, so a block's foreground voxels are one piece, and two neighbouring blocks
# are joined exactly when each has a foreground voxel on the side that faces the other
# (every voxel of one such side touches every voxel of the other). Components of blocks
# are components of voxels, over 1/8 of the slots. Block bit i is voxel _BLOCK_OFFSETS[i].
_BLOCK_OFFSETS = tuple((i >> 2 & 1, i >> 1 & 1, i & 1) for i in range(8))  # raster order
_DIRECTIONS = tuple(
    (a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)
)


def _facing(direction: tuple[int, int, int]) -> int:
    """The bits of a block's voxels on its side that faces ``direction``."""
    return sum(
        1 << i
        for i, offset in enumerate(_BLOCK_OFFSETS)
        if all(d == 0 or o == (d > 0) for d, o in zip(direction, offset, strict=True))
    )


def _shifted(a: jax.Array, direction: tuple[int, int, int], fill) -> jax.Array:
    """[B, X, Y, Z]: ``a`` at each position plus ``direction`` (``fill`` beyond the
    faces)."""
    padded = jnp.pad(a, ((0, 0), (1, 1), (1, 1), (1, 1)), constant_values=fill)
    start = (0, *(1 + d for d in direction))
    return lax.slice(padded, start, tuple(s + n for s, n in zip(start, a.shape, strict=True)))


def _block_codes(volumes: jax.Array) -> jax.Array:
    """[B, X, Y, Z] bool -> [B, ceil(X/2), ceil(Y/2), ceil(Z/2)] uint32: bit i of a block's
    code is its voxel _BLOCK_OFFSETS[i] (0 beyond the volume)."""
    padded = jnp.pad(volumes, [(0, 0)] + [(0, s % 2) for s in volumes.shape[1:]])
    b, x, y, z = padded.shape
    cube = padded.reshape(b, x // 2, 2, y // 2, 2, z // 2, 2).transpose(0, 1, 3, 5, 2, 4, 6)
    bits = cube.reshape(b, x // 2, y // 2, z // 2, 8).astype(jnp.uint32)
    return jnp.sum(bits << jnp.arange(8, dtype=jnp.uint32), axis=-1)


def _first_voxels(codes: jax.Array, shape: tuple[int, int, int]) -> jax.Array:
    """Each block's first foreground voxel in raster order, an index within its volume of
    ``shape`` (the volume size for empty blocks)."""
    _, y_size, z_size = shape
    corner = [jnp.arange(b, dtype=jnp.int32) * 2 for b in codes.shape[1:]]
    corner = corner[0][:, None, None] * (y_size * z_size) + (
        corner[1][None, :, None] * z_size + corner[2][None, None, :]
    )
    first = jnp.int32(shape[0] * y_size * z_size)
    for i in reversed(range(8)):
        dx, dy, dz = _BLOCK_OFFSETS[i]
        here = corner + (dx * y_size * z_size + dy * z_size + dz)
        first = jnp.where((codes >> i) & 1 == 1, here, first)
    return first


def _block_of(v: jax.Array, shape: tuple[int, int, int]) -> jax.Array:
    """Voxel indices (over a batch of volumes of ``shape``) -> flat block indices."""
    x_size, y_size, z_size = shape
    bx, by, bz = (-(-s // 2) for s in shape)
    volume, v = v // (x_size * y_size * z_size), v % (x_size * y_size * z_size)
    x, rest = v // (y_size * z_size), v % (y_size * z_size)
    return ((volume * bx + x // 2) * by + rest // z_size // 2) * bz + rest % z_size // 2


def _block_labels(masks: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """[B, X, Y, Z] masks -> (codes, each block's first voxel, each block's component's
    first voxel), the last two as indices within the volume (its size on empty blocks)."""
    shape, n = masks.shape[1:], masks[0].size
    codes = _block_codes(masks)
    full = codes != 0
    first = _first_voxels(codes, shape)
    offsets = _volume_offsets(masks.shape[0], n)
    end = jnp.int32(masks.size)
    joined = [
        ((codes & _facing(d)) != 0) & ((_shifted(codes, d, 0) & _facing(tuple(-e for e in d))) != 0)
        for d in _DIRECTIONS
    ]

    def neighbours_min(lab):
        low = lab  # every term reads the sweep's input: one fused pass, not 26
        for d, j in zip(_DIRECTIONS, joined, strict=True):
            low = jnp.minimum(low, jnp.where(j, _shifted(lab, d, end), end))
        return low

    start = jnp.where(full, first + offsets, end)
    lab = _propagate(start, full, lambda v: _block_of(v, shape), neighbours_min, masks.size)
    return codes, first, jnp.where(full, lab - offsets, n)


def _block_components(
    mask: jax.Array, codes: jax.Array, first: jax.Array, lab: jax.Array
) -> _Components:
    """The answer of the block kernel for one volume (the arguments: one volume's of
    :func:`_block_labels`). Slots are blocks in raster order of blocks, which is not raster
    order of their first voxels (hence its ``rank``)."""
    shape, n = mask.shape, mask.size
    blocks = codes.shape
    valid = (codes != 0).ravel()
    first = first.ravel()
    slot = jnp.arange(valid.size, dtype=jnp.int32)
    root = jnp.where(valid, _block_of(jnp.minimum(lab.ravel(), n - 1), shape), slot)

    def paint(values):
        v = values.reshape(blocks)[:, None, :, None, :, None]
        v = jnp.broadcast_to(v, (blocks[0], 2, blocks[1], 2, blocks[2], 2))
        v = v.reshape(2 * blocks[0], 2 * blocks[1], 2 * blocks[2])
        return v[: shape[0], : shape[1], : shape[2]]

    def rank(flags):
        # a running count over voxels of the flagged slots' first voxels
        marks = jnp.zeros(n + 1, jnp.int32).at[jnp.where(flags, first, n)].add(1)
        return jnp.cumsum(marks)[jnp.minimum(first, n)]

    return _Components(
        root,
        valid,
        _popcount(codes).ravel(),
        paint,
        lambda flags: mask & paint(flags),
        lambda volume: (_block_codes((volume.astype(bool) & mask)[None])[0] != 0).ravel(),
        rank,
    )


def _by_components(per_volume, masks: jax.Array, connectivity: int, capacities, *more):
    """``per_volume(mask, components, *more)`` for each volume of a [B, X, Y, Z] batch
    (``more``: other [B, ...] arrays), vmapped, after the components of its mask: by the run
    kernel of the smallest tier that holds the runs of every volume of the batch, else the
    dense one (over the batch as one grid, in groups of volumes whose voxels int32 can
    count).

    The tier is chosen once per batch (a ``lax.switch`` over vmapped kernels), so a noisy
    mask puts its whole batch on a larger tier. Per volume, inside a ``lax.map``, the same
    kernels ran 1.4x slower on CPU than vmapped; a vmapped switch would be a select that
    runs every tier."""
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity must be 6 or 26, got {connectivity}")
    masks = masks.astype(bool)
    shape = masks.shape[1:]
    if len(shape) != 3:
        raise ValueError(f"expected [X, Y, Z] volumes, got shape {masks.shape}")
    bits = shape[0] * shape[1] * -(-shape[2] // _WORD) * _WORD
    if max(bits, masks[0].size) > _MAX_VOXELS:
        raise ValueError(f"volume of shape {shape} is too large for int32 labels")
    tiers = capacities_for(shape, capacities)

    def dense_group(masks, *more):
        if connectivity == 26:

            def one(m, codes, first, lab, *o):
                return per_volume(m, _block_components(m, codes, first, lab), *o)

            return jax.vmap(one)(masks, *_block_labels(masks), *more)

        def one_voxels(m, root, *o):
            return per_volume(m, _voxel_components(m, root), *o)

        return jax.vmap(one_voxels)(masks, _dense_roots(masks, connectivity), *more)

    def dense(masks, first, last, *more):  # the runs' first and last voxels go unused
        group = _MAX_VOXELS // masks[0].size
        if masks.shape[0] <= group:
            return dense_group(masks, *more)
        parts = [
            dense_group(*(a[i : i + group] for a in (masks, *more)))
            for i in range(0, masks.shape[0], group)
        ]
        return jax.tree.map(lambda *p: jnp.concatenate(p), *parts)

    def runs(capacity):
        def kernel(m, first, last, *o):
            found = _run_components(first, last, shape, connectivity, capacity)
            return per_volume(m, found, *o)

        return jax.vmap(kernel)

    if not tiers:
        return dense(masks, None, None, *more)
    first, last = jax.vmap(lambda m: _run_edges(pack_lines(m)))(masks)
    count = jnp.max(jnp.sum(_popcount(first), axis=(1, 2)))
    tier = jnp.searchsorted(jnp.asarray(tiers), count)
    return lax.switch(tier, [*map(runs, tiers), dense], masks, first, last, *more)


def _firsts(c: _Components) -> jax.Array:
    """The slots that are their component's first."""
    return c.valid & (c.root == jnp.arange(c.root.size))


def _per_component(c: _Components) -> jax.Array:
    """Each slot's root, and one past the last slot on empty ones (for scatters)."""
    return jnp.where(c.valid, c.root, c.root.size)


def label(
    mask: jax.Array, connectivity: int = 26, capacities: tuple[int, ...] | None = None
) -> tuple[jax.Array, jax.Array]:
    """``scipy.ndimage.label(mask, generate_binary_structure(3, 1 | 3))``: int32 labels
    numbered 1..n in raster order (0 = background), and n. ``mask`` is one [X, Y, Z]
    volume or a [B, X, Y, Z] batch (pass batches whole rather than ``jax.vmap``-ing: a
    vmapped tier choice runs every tier; see :func:`_by_components`). ``capacities``: the
    run kernel's tiers (:func:`capacities_for`; ``()``: the dense kernel alone)."""
    mask = jnp.asarray(mask)
    if mask.ndim == 3:
        labels, n = label(mask[None], connectivity, capacities)
        return labels[0], n[0]

    def one(m, c):
        firsts = _firsts(c)
        numbers = c.rank(firsts)  # 1..n at first slots
        labels = jnp.where(c.valid, numbers[jnp.minimum(c.root, c.root.size - 1)], 0)
        return jnp.where(m, c.paint(labels), 0), firsts.sum(dtype=jnp.int32)

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

    def one(m, c):
        component = _per_component(c)
        sizes = jnp.zeros(c.root.size + 1, jnp.int32).at[component].add(c.size)
        return c.paint_flags(c.valid & (sizes[component] >= min_size))

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

    def one(m, c, p):
        first = _firsts(c)
        hit = jnp.zeros(c.root.size + 1, bool).at[_per_component(c)].max(c.touches(p))
        return (first & hit[:-1]).sum(dtype=jnp.int32), first.sum(dtype=jnp.int32)

    return _by_components(one, truth, connectivity, capacities, pred)

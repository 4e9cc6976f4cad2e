"""Training-time augmentation of slice batches, on the host: left-right flips, intensity
gain and small rotations and scalings. Off by default (every ``train.augment_*`` is 0), so
results stay as they were.

Each batch's draws are a pure function of (seed, step): a resumed run augments its batches
exactly as an uninterrupted one, and the in-memory and streamed loaders give the same
batches. Spatial changes act on the [S, S] plane of each slice (every context channel
alike); the background keeps the normalisation's fill value.

Example:
  >>> x = np.zeros((2, 8, 8, 1), np.float32); x[:, :4] = 1.0
  >>> cfg = Augmentation(flip=1.0)
  >>> bool((augment(x, cfg, seed=0, step=0, fill=0.0)[:, 4:] == 1.0).all())  # mirrored
  True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage


class Augmentation(NamedTuple):
    """What to draw per slice (all 0: no augmentation)."""

    flip: float = 0.0  # probability of a left-right flip (the first spatial axis)
    intensity: float = 0.0  # gain 1 + U(-a, a) on the brain's distance from the background
    rotate_deg: float = 0.0  # rotation U(-r, r) degrees about the frame's centre
    scale: float = 0.0  # zoom 1 + U(-s, s)

    @property
    def active(self) -> bool:
        return any(v > 0 for v in self)


def augment(
    batch: np.ndarray,
    cfg: Augmentation,
    *,
    seed: int,
    step: int,
    fill: float,
    part: slice = slice(None),
    batch_size: int | None = None,
):
    """``batch`` [B, S, S, k] augmented by ``cfg``, with draws fixed by (seed, step).

    A process holding only rows ``part`` of a global batch of ``batch_size`` rows passes
    them: its rows get the draws the whole batch would give them."""
    if not cfg.active:
        return batch
    rng = np.random.default_rng([seed, step, 0x617567])  # a stream of its own per step
    n, s = batch_size or len(batch), batch.shape[1]
    flips = (rng.random(n) < cfg.flip)[part]
    gains = (1.0 + rng.uniform(-cfg.intensity, cfg.intensity, n))[part]
    angles = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg, n))[part]
    zooms = (1.0 + rng.uniform(-cfg.scale, cfg.scale, n))[part]
    b = len(batch)
    out = np.array(batch, np.float32, copy=True)
    out[flips] = out[flips, ::-1]
    out = fill + gains[:, None, None, None].astype(np.float32) * (out - fill)
    if cfg.rotate_deg > 0 or cfg.scale > 0:
        centre = (np.array([s, s]) - 1) / 2.0
        for i in range(b):
            c, sn = np.cos(angles[i]), np.sin(angles[i])
            matrix = np.array([[c, -sn], [sn, c]]) / zooms[i]  # output -> input coordinates
            offset = centre - matrix @ centre
            for ch in range(out.shape[-1]):
                out[i, :, :, ch] = ndimage.affine_transform(
                    out[i, :, :, ch], matrix, offset, order=1, cval=fill
                )
    return out.astype(np.float32, copy=False)

"""Volumes <-> stacks of 2D model inputs, keeping the way back to each volume's grid."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import jax
import numpy as np

from jaxuad.config import DataConfig
from jaxuad.data.nifti import Volume
from jaxuad.data.preprocess import (
    SliceGeometry,
    background_value,
    preprocess,
    select_slices,
)


@dataclass(frozen=True)
class VolumeSlices:
    """One volume's selected axial slices in model space, and how to put them back."""

    volume: Volume
    normalized: np.ndarray  # [X, Y, Z] float32, the whole normalised volume on the input grid
    images: np.ndarray  # [n, S, S, k] float32, normalised: slice i and its k // 2 neighbours
    #   on each side as channels, slice i in the centre (k = data.context_slices)
    masks: np.ndarray  # [n, S, S, 1] float32 brain mask (0 in the padding)
    index: np.ndarray  # [n] axial slice indices into the volume
    geometry: SliceGeometry
    normalization: str  # minmax | zscore

    @property
    def fill(self) -> float:
        """Background value of the normalised image."""
        return background_value(self.normalization)

    def to_volume(self, frames: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Model-space frames [n, S, S(, 1)] back to a volume on the input grid.

        Axial slices that were not selected are set to ``fill``.
        """
        frames = np.asarray(frames).reshape(frames.shape[0], *frames.shape[1:3])
        out = np.full(self.volume.image.shape, fill, np.float32)
        out[:, :, self.index] = np.moveaxis(self.geometry.to_volume(frames), 0, -1)
        return out

    def restored_volume(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(restored, residual) volumes [X, Y, Z] on the input grid from restored frames
        [n, S, S(, 1)]: the frames mapped back onto the selected slices, the normalised scan
        elsewhere, and the residual ``|normalised - restored|`` inside the brain mask."""
        restored = self.normalized.copy()
        restored[:, :, self.index] = self.to_volume(frames)[:, :, self.index]
        residual = np.abs(self.normalized - restored) * self.volume.brainmask
        return restored, residual


def context_index(index: np.ndarray, depth: int, k: int) -> np.ndarray:
    """[n, k] axial slice indices: each of ``index`` with its k // 2 neighbours on each side
    (centre in the middle), clamped to the volume's ``depth`` (edge slices repeat)."""
    offsets = np.arange(k) - k // 2
    return np.clip(np.asarray(index)[:, None] + offsets[None, :], 0, depth - 1)


def slice_volume(volume: Volume, cfg: DataConfig) -> VolumeSlices:
    """Preprocesses and normalises a volume (:func:`~jaxuad.data.preprocess.preprocess`),
    selects axial slices and maps them to the model frame, each with
    ``cfg.context_slices`` neighbouring slices as channels (the centre one restored)."""
    img = preprocess(volume, cfg)
    idx = select_slices(volume.brainmask, cfg.slices, cfg.min_brain_fraction, cfg.n_slices)
    geometry = SliceGeometry(volume.image.shape[:2], cfg.image_size, cfg.fit)
    geometry.validate(volume.subject)
    fill = background_value(cfg.normalization)
    ctx = context_index(idx, img.shape[2], cfg.context_slices)  # [n, k]
    stack = np.moveaxis(img[:, :, ctx.ravel()], -1, 0)  # [n * k, X, Y]
    mstack = np.moveaxis(volume.brainmask[:, :, idx].astype(np.float32), -1, 0)
    frames = geometry.to_model(stack, fill)  # [n * k, S, S]
    images = np.moveaxis(frames.reshape(len(idx), cfg.context_slices, *frames.shape[1:]), 1, -1)
    masks = (geometry.to_model(mstack, 0.0) > 0.5).astype(np.float32)[..., None]
    return VolumeSlices(volume, img, images, masks, idx, geometry, cfg.normalization)


def stack_images(items: Iterable[VolumeSlices]) -> np.ndarray:
    """All selected slices of a cohort as one [N, S, S, 1] array. Given a generator, each
    subject's volumes are released once its slices are taken."""
    return np.concatenate([v.images for v in items], axis=0)


def pad_rows(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with zero rows appended up to n rows (fixed shapes: one compile)."""
    return np.concatenate([a, np.zeros((n - len(a), *a.shape[1:]), a.dtype)])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of ``n`` examples in ``epoch``: a pure function of (seed, epoch).

    Resuming in the middle of an epoch therefore replays exactly the same batches.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """[steps_per_epoch, batch_size] example indices; the incomplete last batch is dropped
    so every step has the same shape and the train step compiles once."""
    steps = n // batch_size
    return epoch_order(n, seed, epoch)[: steps * batch_size].reshape(steps, batch_size)


def prefetch(
    batches: Iterator[np.ndarray], size: int = 2, put: Callable = jax.device_put
) -> Iterator[jax.Array]:
    """Moves batches to the device with ``put`` (e.g. sharded over a mesh) from a background
    thread, ``size`` ahead of the consumer, so host-side gathering overlaps with the
    compiled step."""
    q: queue.Queue = queue.Queue(maxsize=size)
    sentinel = object()

    def producer():
        try:
            for b in batches:
                q.put(put(b))
        except BaseException as e:  # surfaced in the consumer
            q.put(e)
        q.put(sentinel)

    threading.Thread(target=producer, daemon=True).start()
    while (item := q.get()) is not sentinel:
        if isinstance(item, BaseException):
            raise item
        yield item

"""Lambda calibration (Chen et al. 2019, Sec. 2.3): the smallest lambda whose restorations
of healthy slices keep a mean SSIM of at least ``restore.ssim_target`` with the originals.

SSIM is averaged over brain tissue only (window centres inside the brain mask): outside the
mask the restoration equals the input, so counting the background would inflate SSIM by
however much padding a slice has, and pick a lambda the paper's criterion, which concerns
the brain, would not.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxuad import distributed
from jaxuad.config import ConfigError
from jaxuad.data import pad_rows, slice_volume, stack_images, write_json
from jaxuad.restore.cohort import healthy_volumes, make_restorer, prepare, run_config
from jaxuad.restore.methods import method_spec
from jaxuad.similarity import ssim
from jaxuad.train.run import CALIBRATION_FILE, calibration_key, read_calibration


def pick_lambda(grid, ssim, target: float) -> tuple[float, bool]:
    """The smallest lambda whose mean SSIM reaches ``target`` (grid sorted ascending); the
    largest lambda and False when none does."""
    order = np.argsort(grid)
    for i in order:
        if ssim[i] >= target:
            return float(grid[i]), True
    return float(grid[order[-1]]), False


def _flat(a, shape) -> jax.Array:
    """``a`` broadcast to [G, n, S, S, 1] (every lambda), as [G * n, S, S, 1]."""
    return jnp.asarray(np.broadcast_to(a, shape).reshape(-1, *shape[2:]))


@dataclass(frozen=True)
class Calibration:
    """A lambda calibration (one entry of ``calibration.json``, keyed ``method/prior``)."""

    method: str
    lam: float  # the chosen lambda
    prior: str
    target_met: bool  # whether any lambda of the grid reached the SSIM target
    grid: tuple[float, ...]  # [G] lambdas tried, ascending
    ssim: tuple[float, ...]  # [G] mean SSIM of each
    ssim_target: float
    ssim_over: str  # brain: window centres inside the brain mask | frame
    slices: int
    data: str
    seconds: float
    devices: int

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        return {**d, "grid": list(self.grid), "ssim": list(self.ssim)}


def calibrate(
    workdir,
    data,
    *,
    method: str | None = None,
    seed: int = 0,
    progress=True,
    devices: int | None = None,
    **options,
) -> Calibration:
    """Chooses lambda as Chen et al. do: restores healthy slices for every lambda of
    ``restore.lam_grid`` (vmapped over the grid) and keeps the smallest lambda whose mean
    SSIM(restored, original) over brain tissue is at least ``restore.ssim_target``. Stores
    the grid, the SSIM curve and the choice in ``<workdir>/calibration.json`` (keyed by
    method and prior) and returns them (``jaxuad-restore --calibrate`` then plots
    ``<workdir>/ssim_lambda_<method>_<prior>.png``). On several ``devices`` the
    grid is split over them (padded with copies of its last value): every lambda sees the
    same slices and keys as on one device. ``options`` as for :func:`restore_cohort`;
    ``method`` defaults to the run's ``restore.method``."""
    method = method or run_config(workdir).restore.method
    if not method_spec(method).needs_lambda:
        raise ConfigError(f"{method} has no lambda to calibrate")
    config, dc, graphdef, params = prepare(workdir, method, **options)
    rc = config.restore
    grid = np.asarray(sorted(rc.lam_grid), np.float64)
    if len(grid) == 0 or np.any(grid < 0):
        raise ConfigError(f"restore.lam_grid must be non-empty and >= 0, got {rc.lam_grid}")
    slices = [slice_volume(v, dc) for v in healthy_volumes(data, dc.modality, "lambda")]
    images = stack_images(slices)
    masks = np.concatenate([s.masks for s in slices])
    pick = np.unique(
        np.linspace(0, len(images) - 1, min(rc.calibrate_slices, len(images))).astype(int)
    )
    images, masks = images[pick], masks[pick]

    mesh = distributed.make_mesh(devices)
    lams, rep = distributed.batch_sharding(mesh), distributed.replicated(mesh)
    base = make_restorer(method, graphdef, config)
    grid_fn = jax.jit(jax.vmap(base, in_axes=(None, None, None, None, 0)), out_shardings=lams)
    chunk = max(1, rc.batch_size // len(grid))
    padded = np.concatenate([grid, np.full((-len(grid)) % mesh.devices.size, grid[-1])])
    grid_f32 = distributed.put(jnp.asarray(padded, jnp.float32), lams)
    params = distributed.put(params, rep)
    key = config.train.key(seed)
    data_range = np.ptp(images.reshape(len(images), -1), axis=1)
    scores = []
    t0 = time.perf_counter()
    primary = distributed.is_primary()
    bar = tqdm(
        range(0, len(images), chunk),
        desc=f"calibrate ({method})",
        disable=not (progress and primary),
    )
    for i in bar:
        y, m = images[i : i + chunk], masks[i : i + chunk]
        yp, mp = distributed.put((pad_rows(y, chunk), pad_rows(m, chunk)), rep)
        x = grid_fn(params, yp, mp, distributed.put(jax.random.fold_in(key, i), rep), grid_f32)
        x = distributed.to_host(x)[: len(grid), : len(y)]  # [G, n, S, S, 1]
        dr = np.broadcast_to(np.maximum(data_range[i : i + chunk], 1e-6), (len(grid), len(y)))
        flat_dr = jnp.asarray(dr.reshape(-1))
        region = _flat(m > 0.5, x.shape) if rc.ssim_region == "brain" else None
        s = ssim(_flat(x, x.shape), _flat(y, x.shape), flat_dr, mask=region)
        scores.append(np.asarray(s).reshape(len(grid), len(y)))
    scores = np.concatenate(scores, axis=1)  # [G, slices]; NaN: no brain in the window area
    if np.isnan(scores[0]).all():
        raise ConfigError(f"{data}: no calibration slice has brain tissue away from its edges")
    mean_ssim = np.nanmean(scores, axis=1)
    lam, met = pick_lambda(grid, mean_ssim, rc.ssim_target)
    entry = Calibration(
        method=method,
        lam=lam,
        prior=rc.prior,
        target_met=met,
        grid=tuple(grid.tolist()),
        ssim=tuple(mean_ssim.tolist()),
        ssim_target=rc.ssim_target,
        ssim_over=rc.ssim_region,
        slices=int(np.sum(~np.isnan(scores[0]))),
        data=str(data),
        seconds=time.perf_counter() - t0,
        devices=int(mesh.devices.size),
    )
    if not primary:
        return entry
    stored = read_calibration(workdir)
    stored[calibration_key(method, rc.prior)] = entry.to_json()
    write_json(stored, Path(workdir) / CALIBRATION_FILE)
    return entry


__all__ = ["Calibration", "calibrate", "pick_lambda"]

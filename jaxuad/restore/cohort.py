"""The cohort driver: restore every subject of a folder and write NIfTI outputs.

For every subject the output folder receives, on the input's grid and with its affine:

* ``sub-<id>_restored.nii.gz``: the restoration, in normalised intensity units;
* ``sub-<id>_residual.nii.gz``: ``|x - x_restored|`` inside the brain mask;
* ``sub-<id>_brainmask.nii.gz``: a copy of the mask, and
* ``sub-<id>_normalized.nii.gz``: the input in the same normalised units as the
  restoration, so the folder alone can calibrate thresholds (``jaxuad-evaluate
  --healthy``), including the priors that need the input (``evaluate.positive_only``);

and ``restore.json`` records the run, method, lambda and timings: compile time apart, and
seconds per iteration per image. Axial slices outside the run's slice selection are not
processed: there the restoration equals the input and the residual is 0.

Slices go through the compiled function in fixed-size chunks (``restore.batch_size``; the
last one padded, so it compiles once), which bounds memory. Chunk i uses
``fold_in(key, i)``. On several devices (``devices``, :mod:`jaxuad.distributed`) each chunk
is split over them by slice, so the chunks, keys and results are those of one device.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxuad import distributed
from jaxuad.config import (
    BASELINE_METHODS,
    RESTORE_METHODS,
    Config,
    ConfigError,
    RestoreConfig,
)
from jaxuad.data import (
    iter_volumes,
    pad_rows,
    slice_volume,
    write_json,
    write_nifti_like,
)
from jaxuad.restore.iterative import iterations, restore
from jaxuad.restore.reconstruction import latent_description

METHODS = RESTORE_METHODS


def make_restorer(method: str, graphdef: nnx.GraphDef, config: Config, mesh=None):
    """``fn(params, y, mask, key, lam) -> x`` jitted, for every method (reconstruction
    ignores mask, key and lam). y, mask: [B, S, S, 1]; lam: scalar or [B]. With a ``mesh``,
    x comes back split over it by slice, like y and mask (params, key, lam replicated)."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
    rc, tc = config.restore, config.train

    def fn(params, y, mask, key, lam):
        return restore(method, nnx.merge(graphdef, params), y, mask, key, rc, lam, tc).x

    if mesh is None:
        return jax.jit(fn)
    return jax.jit(fn, out_shardings=distributed.batch_sharding(mesh))


def run_slices(fn, params, images, masks, key, lam, batch_size: int, mesh=None) -> np.ndarray:
    """Runs ``fn`` over [N, S, S, 1] in chunks of ``batch_size`` (the last padded) and
    returns [N, S, S, 1] on the host. With a ``mesh``, each chunk is split over it (``fn``
    from :func:`make_restorer` with the same mesh; params replicated on it)."""
    n = images.shape[0]
    total = n + (-n) % batch_size
    y, m = pad_rows(images, total), pad_rows(masks, total)
    mesh = mesh or distributed.make_mesh(1)
    rows, rep = distributed.batch_sharding(mesh), distributed.replicated(mesh)
    lam = distributed.put(jnp.asarray(lam, jnp.float32), rep)
    outs = [
        fn(
            params,
            distributed.put(y[i : i + batch_size], rows),
            distributed.put(m[i : i + batch_size], rows),
            distributed.put(jax.random.fold_in(key, i // batch_size), rep),
            lam,
        )
        for i in range(0, len(y), batch_size)
    ]
    return np.concatenate([distributed.to_host(o) for o in outs])[:n]


def resolve_lambda(workdir, method: str, rc: RestoreConfig) -> float:
    """``restore.lam`` if set, else the calibrated value stored in the run directory."""
    if method in ("reconstruction", "anogan"):
        return 0.0
    if rc.lam is not None:
        return float(rc.lam)
    from jaxuad.train.run import calibrated_lambda

    lam = calibrated_lambda(workdir, method, rc.prior)
    if lam is None:
        raise ConfigError(
            f"{workdir}: no calibrated lambda for {method} with the {rc.prior} prior; run "
            f"jaxuad-restore --calibrate --workdir {workdir} --data HEALTHY --method {method} "
            f"--prior {rc.prior}, or pass --lam"
        )
    return lam


def prepare(
    workdir,
    method: str,
    modality: str | None = None,
    step: int | None = None,
    restore_overrides: dict | None = None,
):
    """(config with restore overrides, data config for ``modality``, graphdef, params)."""
    from jaxuad.train import load_run  # late import: train pulls in optax/orbax

    run = load_run(workdir, step)
    config, graphdef, params = run.config, run.graphdef, run.params
    if restore_overrides:
        config = dataclasses.replace(
            config, restore=dataclasses.replace(config.restore, **restore_overrides)
        )
    dc = config.data
    if modality is not None:
        dc = dataclasses.replace(dc, modality=modality)
    return config, dc, graphdef, params


OUTPUT_PARTS = ("restored", "residual", "brainmask", "normalized")


def _stale_outputs(out: Path, overwrite: bool) -> list[Path]:
    """The files of an earlier restoration in ``out``, to remove before writing (checked
    before anything runs): refused without ``overwrite``. Process 0 alone writes, and checks."""
    if not distributed.is_primary():
        return []
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder (--out)")
    present = sorted(out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise ConfigError(
            f"{out}: already holds {len(present)} files; choose a new --out, or pass "
            "--overwrite to replace the restoration there"
        )
    parts = "|".join(OUTPUT_PARTS)
    ours = re.compile(rf"(sub-.+_({parts})\.nii\.gz|restore\.json|\.tmp-.*)")
    return [p for p in present if p.is_file() and ours.fullmatch(p.name)]


def _write_cohort(out: Path, stale: list[Path], volumes, restore_one, method: str, progress):
    """Writes every subject's outputs, ``restore_one(vol) -> (restored, residual,
    normalised)`` each [X, Y, Z]; a failure or Ctrl-C halfway removes what was written, so
    no partial cohort is left. Only process 0 writes. Returns the subjects' ids."""
    primary = distributed.is_primary()
    created = not out.exists()
    if primary:
        for path in stale:
            path.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    subjects = []
    bar = tqdm(
        volumes, desc=f"restore ({method})", unit="subject", disable=not (progress and primary)
    )
    try:
        for vol in bar:
            restored, residual, x = restore_one(vol)
            if primary:
                for array, part in ((restored, "restored"), (residual, "residual"),
                                    (vol.brainmask, "brainmask"), (x, "normalized")):  # fmt: skip
                    path = out / f"sub-{vol.subject}_{part}.nii.gz"
                    write_nifti_like(array, vol, path)
                    written.append(path)
            subjects.append(vol.subject)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if primary and created and not any(out.iterdir()):
            out.rmdir()
        raise
    return subjects


def _restore_baseline(workdir, data, out: Path, method: str, stale, progress, modality=None,
                      **_) -> dict:  # fmt: skip
    """The voxel-wise baselines (:mod:`jaxuad.restore.baselines`): ``intensity`` with the
    data settings of ``workdir`` (any run; the defaults without one), ``atlas`` with the
    atlas run in ``workdir``."""
    from jaxuad.config import load_json
    from jaxuad.data.preprocess import preprocess
    from jaxuad.restore import baselines
    from jaxuad.train.atlas import load_atlas

    if method == "atlas":
        if workdir is None:
            raise ConfigError("--method atlas needs --workdir, a run of jaxuad-train --model atlas")
        config, atlas = load_atlas(workdir)
    elif workdir is not None:
        if not (Path(workdir) / "config.json").is_file():
            raise ConfigError(f"{workdir}: not a jaxuad run (no config.json)")
        config = load_json(Path(workdir) / "config.json")
    else:
        config = Config()
    dc = config.data if modality is None else dataclasses.replace(config.data, modality=modality)
    volumes = list(iter_volumes(data, dc.modality))
    if method == "atlas":
        for vol in volumes:  # every grid checked before anything is written
            atlas.check_grid(vol)

    def restore_one(vol):
        x = preprocess(vol, dc)
        if method == "atlas":
            return (*baselines.atlas(x, vol.brainmask, atlas), x)
        return (*baselines.intensity(x, vol.brainmask), x)

    t0 = time.perf_counter()
    subjects = _write_cohort(out, stale, volumes, restore_one, method, progress)
    summary = {
        "method": method,
        "run": None if workdir is None else str(Path(workdir).absolute()),
        "data": str(data),
        "modality": dc.modality,
        "model": method,
        "latent": None,
        "normalization": dc.normalization,
        "subjects": subjects,
        "seconds_per_subject": (time.perf_counter() - t0) / max(len(subjects), 1),
    }
    if distributed.is_primary():
        write_json(summary, out / "restore.json")
    return summary


def restore_cohort(
    workdir,
    data,
    out,
    *,
    method: str = "reconstruction",
    seed: int = 0,
    progress=True,
    devices: int | None = None,
    overwrite: bool = False,
    **options,
) -> dict:
    """Restores every subject of ``data`` with the model trained in ``workdir``.

    ``out`` must be new or empty; with ``overwrite``, the restoration outputs already there
    (every subject's, and ``restore.json``) are removed first, so the folder never mixes
    two restorations.

    ``options``: ``modality``, ``step`` (checkpoint), ``restore_overrides`` (a dict of
    :class:`RestoreConfig` fields). ``devices``: split each chunk of slices over this many
    devices (default: all); the results are those of one device. All input volumes are
    validated (and lambda resolved) before anything is written, so bad input leaves no
    partial output. Only process 0 of a multi-process run writes. Returns the summary also
    written to ``out/restore.json``.
    """
    out = Path(out)
    stale = _stale_outputs(out, overwrite)
    if method in BASELINE_METHODS:
        return _restore_baseline(workdir, data, out, method, stale, progress, **options)
    config, dc, graphdef, params = prepare(workdir, method, **options)
    bs = config.restore.batch_size
    mesh = distributed.make_mesh(devices)
    distributed.check_divisible(
        bs,
        mesh,
        "restore.batch_size",
        "set --set restore.batch_size=N or pick --devices to divide it",
    )
    params = distributed.put(params, distributed.replicated(mesh))
    fn = make_restorer(method, graphdef, config, mesh)
    lam = resolve_lambda(workdir, method, config.restore)
    volumes = list(iter_volumes(data, dc.modality))
    rows, rep = distributed.batch_sharding(mesh), distributed.replicated(mesh)
    shape = jax.ShapeDtypeStruct((bs, dc.image_size, dc.image_size, 1), jnp.float32, sharding=rows)
    key = config.train.key(seed)
    t0 = time.perf_counter()
    fn = fn.lower(
        params,
        shape,
        shape,
        jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=rep),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=rep),
    ).compile()
    compile_s = time.perf_counter() - t0
    timing = {"run_s": 0.0, "slices": 0}

    def restore_one(vol):
        vs = slice_volume(vol, dc)
        t0 = time.perf_counter()
        subject_key = jax.random.fold_in(key, len(done))  # the subject's index
        restored_slices = run_slices(fn, params, vs.images, vs.masks, subject_key, lam, bs, mesh)
        timing["run_s"] += time.perf_counter() - t0
        timing["slices"] += len(vs.index)
        done.append(vol.subject)
        return (*vs.restored_volume(restored_slices), vs.normalized)

    done: list[str] = []
    t_all = time.perf_counter()
    subjects = _write_cohort(out, stale, volumes, restore_one, method, progress)
    per_subject = (time.perf_counter() - t_all) / max(len(subjects), 1)
    n_slices, run_s = timing["slices"], timing["run_s"]

    rc = config.restore
    iters = 1 if method == "reconstruction" else iterations(method, rc)
    summary = {
        "method": method,
        "run": str(Path(workdir).absolute()),
        "data": str(data),
        "modality": dc.modality,
        "model": config.model.name,
        "latent": latent_description(config),
        "normalization": dc.normalization,
        "subjects": subjects,
        "slices": n_slices,
        "compile_s": compile_s,
        "seconds_per_slice": run_s / max(n_slices, 1),
        "seconds_per_subject": per_subject,
        "iterations": iters,
        "seconds_per_iteration_per_image": run_s / max(n_slices, 1) / iters,
        "device": jax.devices()[0].platform,
        "devices": int(mesh.devices.size),
        "seed": seed,
    }
    if method not in ("reconstruction",):
        summary["restore"] = dataclasses.asdict(rc)
        summary["lam"] = lam
    if distributed.is_primary():
        write_json(summary, out / "restore.json")
    return summary


__all__ = ["METHODS", "make_restorer", "restore_cohort", "run_slices"]

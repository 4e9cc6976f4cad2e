"""The cohort driver: restore every subject of a folder and write NIfTI outputs.

For every subject the output folder receives, on the input's grid and with its affine:

* ``sub-<id>_restored.nii.gz``: the restoration, in normalised intensity units;
* ``sub-<id>_residual.nii.gz``: ``|x - x_restored|`` inside the brain mask;
* ``sub-<id>_brainmask.nii.gz``: a copy of the mask, and
* ``sub-<id>_normalized.nii.gz``: the input in the same normalised units as the
  restoration, so the folder alone can calibrate thresholds (``jaxuad-evaluate
  --healthy``), including the priors that need the input (``evaluate.positive_only``);

and ``restore.json`` (:class:`~jaxuad.restore.summary.RestoreSummary`) records the run,
method, lambda and timings: compile time apart, and seconds per iteration per image. Axial
slices outside the run's slice selection are not processed: there the restoration equals
the input and the residual is 0.

The folder is written as one transaction (:class:`jaxuad.core.io.OutputFolder`): built
beside ``out`` and swapped in when complete, so a failure, a full disk, Ctrl-C or SIGTERM
(held until the subject in progress is done) leaves the earlier result or nothing. ``out``
is never an input folder, inside one or holding one.

Slices go through the compiled function in fixed-size chunks (``restore.batch_size``; the
last one padded, so it compiles once), which bounds memory. Chunk i uses
``fold_in(key, i)``. On several devices (``devices``, :mod:`jaxuad.distributed`) each chunk
is split over them by slice, so the chunks, keys and results are those of one device.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxuad import distributed
from jaxuad.config import Config, ConfigError, DataConfig, RestoreConfig, load_json
from jaxuad.core.io import OutputFolder, check_apart
from jaxuad.core.signals import held_interrupts
from jaxuad.data import (
    DataError,
    input_locations,
    iter_volumes,
    pad_rows,
    slice_volume,
    write_nifti_like,
)
from jaxuad.data.nifti import read_json, same_grid
from jaxuad.models import model_spec
from jaxuad.restore.iterative import restore
from jaxuad.restore.methods import method_spec
from jaxuad.restore.summary import RestoreSummary, owned_files


def make_restorer(method: str, graphdef: nnx.GraphDef, config: Config, mesh=None):
    """``fn(params, y, mask, key, lam) -> x`` jitted, for every network method (one-pass
    methods ignore mask, key and lam). y: [B, S, S, C], mask: [B, S, S, 1]; lam: scalar or
    [B]. With a ``mesh``, x comes back split over it by slice, like y and mask (params, key,
    lam replicated)."""
    if not method_spec(method).network:
        raise ConfigError(f"{method} is a voxel-wise baseline: it restores no slices")
    rc, tc = config.restore, config.train

    def fn(params, y, mask, key, lam):
        return restore(method, nnx.merge(graphdef, params), y, mask, key, rc, lam, tc).x

    if mesh is None:
        return jax.jit(fn)
    return jax.jit(fn, out_shardings=distributed.batch_sharding(mesh))


def run_slices(fn, params, images, masks, key, lam, batch_size: int, mesh=None) -> np.ndarray:
    """Runs ``fn`` over [N, S, S, C] in chunks of ``batch_size`` (the last padded) and
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
    """``restore.lam`` if set, else the calibrated value stored in the run directory (0 for
    methods without a prior weight)."""
    if not method_spec(method).needs_lambda:
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


def run_config(workdir) -> Config | None:
    """The config.json of the run in ``workdir`` (None without a workdir)."""
    if workdir is None:
        return None
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{workdir}: not a jaxuad run (no config.json)")
    return load_json(path)


def prepare(
    workdir,
    method: str,
    modality: str | None = None,
    step: int | None = None,
    restore_overrides: dict | None = None,
):
    """(config with ``method`` and the restore overrides, data config for ``modality``,
    graphdef, params). The config is checked as a whole: a method the run's model does
    not accept is a :class:`ConfigError` here."""
    from jaxuad.train import load_run  # late import: train pulls in optax/orbax

    run = load_run(workdir, step)
    config, graphdef, params = run.config, run.graphdef, run.params
    config = dataclasses.replace(
        config,
        restore=dataclasses.replace(config.restore, **(restore_overrides or {}), method=method),
    )
    dc = config.data
    if modality is not None:
        dc = dataclasses.replace(dc, modality=modality)
    return config, dc, graphdef, params


def healthy_volumes(data, modality: str, what: str) -> list:
    """The volumes of ``data`` for ``what`` (lambda calibration, normative statistics),
    which are fitted on healthy scans: a subject with lesions in its lesion mask is refused
    rather than fitted on without a word."""
    volumes = list(iter_volumes(data, modality))
    for v in volumes:
        if v.lesion is not None and v.lesion.any():
            raise DataError(
                f"{data}: sub-{v.subject} has {int(v.lesion.sum())} lesion voxels in its "
                f"lesion mask; {what} is fitted on healthy scans only"
            )
    if not volumes:
        raise DataError(f"{data}: no scans for {what}")
    return volumes


def preflight(out, data, modality: str) -> None:
    """Checks, before anything runs, that ``out`` is apart from every input (process 0
    alone writes, and checks)."""
    if distributed.is_primary():
        check_apart(out, *input_locations(data, modality))


def write_cohort(
    out, volumes, restore_one, summarize, *, method: str, progress=True, overwrite=False,
    space: str = "template", data=None,
) -> RestoreSummary:  # fmt: skip
    """Writes every subject's outputs and the summary into ``out`` as one transaction.

    ``restore_one(vol) -> (restored, residual, normalised)``, each [X, Y, Z];
    ``summarize(subjects) -> RestoreSummary``. SIGINT and SIGTERM are held until the
    subject in progress is written, then end the run with nothing changed in ``out``. Only
    process 0 writes (every process restores). ``space``: ``template`` (the scans' grid),
    ``native`` (``out/native/``: back on each scan as acquired, for scans ``data`` holds
    from ``jaxuad-preprocess``) or ``both``."""
    primary = distributed.is_primary()
    bar = tqdm(
        volumes, desc=f"restore ({method})", unit="subject", disable=not (progress and primary)
    )
    if not primary:
        subjects = [restore_one(vol) and vol.subject for vol in bar]
        return summarize(subjects)
    with OutputFolder(out, overwrite=overwrite, owned=owned_files) as folder:
        with held_interrupts() as pending:
            subjects = []
            for vol in bar:
                if pending:
                    pending.pop()()
                restored, residual, x = restore_one(vol)
                parts = {"restored": restored, "residual": residual,
                         "brainmask": vol.brainmask, "normalized": x}  # fmt: skip
                for part, array in parts.items() if space != "native" else ():
                    path = folder.path / f"sub-{vol.subject}_{part}.nii.gz"
                    write_nifti_like(array, vol, path)
                if space != "template":
                    from jaxuad.preprocess import write_native

                    write_native(folder.path, data, vol.subject,
                                 {"restored": restored, "residual": residual})  # fmt: skip
                subjects.append(vol.subject)
            summary = summarize(subjects)
            summary.write(folder.path)
            if pending:
                pending.pop()()
            folder.commit()
    return summary


class Restorer(NamedTuple):
    """A method ready to restore a cohort's volumes, one at a time.

    ``restore_one(volume) -> (restored, residual, normalised)``, each [X, Y, Z] on the
    volume's grid; ``summarize(subjects) -> RestoreSummary`` once they are done.
    """

    method: str
    config: Config  # the run's config with this restoration's settings
    data: DataConfig  # the data settings the volumes are read with (modality resolved)
    restore_one: Callable
    summarize: Callable


def _voxelwise_restorer(workdir, data, method, modality=None, restore_overrides=None,
                        **_) -> Restorer:  # fmt: skip
    """A voxel-wise baseline (:mod:`jaxuad.restore.baselines`) on whole volumes."""
    from jaxuad.data.preprocess import preprocess

    spec = method_spec(method)
    if workdir is None and spec.run == "required":
        raise ConfigError(f"--method {method} needs --workdir, a run it accepts")
    config, fn = spec.voxelwise(workdir)
    restore = dataclasses.replace(config.restore, **(restore_overrides or {}), method=method)
    config = dataclasses.replace(config, restore=restore)  # checked: method against model
    dc = config.data if modality is None else dataclasses.replace(config.data, modality=modality)
    t0 = time.perf_counter()

    def restore_one(vol):
        getattr(fn, "check", lambda v: None)(vol)
        x = preprocess(vol, dc)
        return (*fn(x, vol), x)

    def summarize(subjects):
        return RestoreSummary(
            method=method,
            run=None if workdir is None else str(Path(workdir).absolute()),
            data=str(data),
            modality=dc.modality,
            model=method if workdir is None else config.model.name,
            latent=None,
            normalization=dc.normalization,
            subjects=tuple(subjects),
            seconds_per_subject=(time.perf_counter() - t0) / max(len(subjects), 1),
        )

    restore_one.check = getattr(fn, "check", lambda v: None)
    return Restorer(method, config, dc, restore_one, summarize)


def _network_restorer(workdir, data, method, seed=0, devices=None, **options) -> Restorer:
    """A network method: slices through the compiled restoration, in chunks."""
    if workdir is None:
        raise ConfigError(f"--method {method} needs --workdir, a trained run")
    spec = method_spec(method)
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
    rows, rep = distributed.batch_sharding(mesh), distributed.replicated(mesh)
    frame = (bs, dc.image_size, dc.image_size)
    images = jax.ShapeDtypeStruct((*frame, dc.context_slices), jnp.float32, sharding=rows)
    masks = jax.ShapeDtypeStruct((*frame, 1), jnp.float32, sharding=rows)
    key = config.train.key(seed)
    t0 = time.perf_counter()
    fn = fn.lower(
        params,
        images,
        masks,
        jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=rep),
        jax.ShapeDtypeStruct((), jnp.float32, sharding=rep),
    ).compile()
    compile_s = time.perf_counter() - t0
    timing = {"run_s": 0.0, "slices": 0, "start": time.perf_counter()}
    done: list[str] = []

    def restore_one(vol):
        vs = slice_volume(vol, dc)
        t0 = time.perf_counter()
        subject_key = jax.random.fold_in(key, len(done))  # the subject's index
        restored_slices = run_slices(fn, params, vs.images, vs.masks, subject_key, lam, bs, mesh)
        timing["run_s"] += time.perf_counter() - t0
        timing["slices"] += len(vs.index)
        done.append(vol.subject)
        return (*vs.restored_volume(restored_slices), vs.normalized)

    rc = config.restore
    restore_one.check = grid_check(workdir)

    def summarize(subjects):
        n_slices, run_s = timing["slices"], timing["run_s"]
        iters = spec.iterations(rc)
        spec_m = model_spec(config.model.name)
        settings = spec.needs_lambda or iters > 1
        return RestoreSummary(
            method=method,
            run=str(Path(workdir).absolute()),
            data=str(data),
            modality=dc.modality,
            model=config.model.name,
            latent=spec_m.latent(config.model) if spec_m.latent else None,
            normalization=dc.normalization,
            subjects=tuple(subjects),
            seconds_per_subject=(time.perf_counter() - timing["start"]) / max(len(subjects), 1),
            slices=n_slices,
            compile_s=compile_s,
            seconds_per_slice=run_s / max(n_slices, 1),
            iterations=iters,
            seconds_per_iteration_per_image=run_s / max(n_slices, 1) / iters,
            device=jax.devices()[0].platform,
            devices=int(mesh.devices.size),
            seed=seed,
            restore=dataclasses.asdict(rc) if settings else None,
            lam=lam if settings else None,
        )

    return Restorer(method, config, dc, restore_one, summarize)


def grid_check(workdir) -> Callable:
    """``check(volume)``: a :class:`DataError` when the run recorded the grid its training
    scans shared (``grid.json``) and the volume lies on another: a model of anatomy on one
    grid reads a scan on another as misregistration, everywhere."""
    from jaxuad.train.trainer import GRID_FILE

    path = Path(workdir) / GRID_FILE
    if not path.is_file():
        return lambda vol: None
    grid = read_json(path, "training grid")
    shape, affine = tuple(grid["shape"]), np.asarray(grid["affine"])

    def check(vol):
        if not same_grid(vol.image.shape, vol.affine, shape, affine):
            raise DataError(
                f"sub-{vol.subject}: its grid {vol.image.shape} (or affine) is not the one "
                f"{workdir} was trained on, {shape}: bring the scan onto it first, "
                f"jaxuad-preprocess --data SCANS --template {workdir} --out PREPROCESSED"
            )

    return check


def restorer(workdir, data, *, method: str | None = None, **options) -> Restorer:
    """The :class:`Restorer` of ``method`` (default: the run's ``restore.method``) with the
    run in ``workdir``; ``options`` as for :func:`restore_cohort`."""
    if method is None:
        stored = run_config(workdir)
        method = stored.restore.method if stored is not None else Config().restore.method
    if method_spec(method).network:
        return _network_restorer(workdir, data, method, **options)
    return _voxelwise_restorer(workdir, data, method, **options)


def signed(restored: np.ndarray, residual: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The signed score of a restoration: ``residual`` with the sign of ``x - restored``."""
    return np.where(x >= restored, residual, -residual).astype(np.float32)


def _scored(r: Restorer, workdir, data) -> Restorer:
    """``r`` with the scoring of ``restore.normative``, ``restore.fuse`` and
    ``restore.per_scan`` (:mod:`jaxuad.restore.normative`): the residual becomes |z|, the
    score, and the restoration ``x - z * scale``, the run's restoration with its healthy
    bias (and the other parts' evidence) added, so ``x - restored`` has the sign of z."""
    from jaxuad.restore.normative import fused_score, load_normative, per_scan

    rc = r.config.restore
    stats, parts, weights, fit = None, [], [], None
    if rc.normative:
        prior = rc.prior if method_spec(r.method).needs_lambda else None
        fit, stats = load_normative(workdir, r.method, prior)
        weights.append(fit.fuse.get("self", 1.0))
        for part in rc.fuse:
            key = str(Path(part).absolute())
            if key not in fit.fuse:
                raise ConfigError(
                    f"{workdir}: its normative fit has no weight for the fused run {part}; "
                    f"refit with jaxuad-restore --fit-normative ... --fuse {' '.join(rc.fuse)}"
                )
            parts.append(restorer(part, data, modality=r.data.modality))
            weights.append(fit.fuse[key])

    def restore_one(vol):
        restored, residual, x = r.restore_one(vol)
        scale, valid = np.float32(1.0), np.asarray(vol.brainmask, bool)
        z = signed(restored, residual, x)
        if stats is not None:
            z = stats.standardize(x - restored, vol.brainmask)
            scale, valid = stats.scale, stats.valid(vol.brainmask)
            if parts:
                z = fused_score([z, *(signed(*p.restore_one(vol)) for p in parts)], weights)
        if rc.per_scan:
            z = per_scan(z, valid)
        restored = np.where(valid, x - z * scale, restored).astype(np.float32)
        return restored, (np.abs(z) * valid).astype(np.float32), x

    def check(vol):
        if stats is not None:
            stats.check_grid(vol)
        for p in (r, *parts):
            getattr(p.restore_one, "check", lambda v: None)(vol)

    def summarize(subjects):
        summary = r.summarize(subjects)
        if fit is None:
            return summary
        normative = {
            "fitted_on": fit.data,
            "subjects": list(fit.subjects),
            "smooth_mm": fit.smooth_mm,
            "min_scale": fit.min_scale,
            "fuse": {p: fit.fuse[str(Path(p).absolute())] for p in rc.fuse},
        }
        return dataclasses.replace(summary, normative=normative)

    restore_one.check = check
    return r._replace(restore_one=restore_one, summarize=summarize)


def restore_cohort(
    workdir,
    data,
    out,
    *,
    method: str | None = None,
    seed: int = 0,
    progress=True,
    devices: int | None = None,
    overwrite: bool = False,
    space: str = "template",
    **options,
) -> RestoreSummary:
    """Restores every subject of ``data`` with the run in ``workdir``.

    ``out`` must be apart from the inputs, and new or empty; with ``overwrite`` it may hold
    an earlier restoration (nothing else), which is replaced only once the new one is
    complete. The folder never mixes two restorations and never holds half of one.

    ``method``: a registered method (default: the run's ``restore.method``). ``options``:
    ``modality``, ``step`` (checkpoint), ``restore_overrides`` (a dict of
    :class:`RestoreConfig` fields; ``normative=True`` scores against the run's normative
    statistics). ``devices``: split each chunk of slices over this many devices (default:
    all); the results are those of one device. ``space``: as :func:`write_cohort`. All
    input volumes are validated (and lambda resolved) before anything is written. Only
    process 0 of a multi-process run writes. Returns the summary also written to
    ``out/restore.json``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder (--out)")
    stored = run_config(workdir)
    if method is None:
        method = stored.restore.method if stored is not None else Config().restore.method
    modality = options.get("modality") or (stored or Config()).data.modality
    preflight(out, data, modality)
    if distributed.is_primary():  # new, empty or (overwrite) an earlier restoration's
        OutputFolder(out, overwrite=overwrite, owned=owned_files).check()
    r = restorer(workdir, data, method=method, seed=seed, devices=devices, **options)
    if r.config.restore.normative or r.config.restore.per_scan:
        r = _scored(r, workdir, data)
    volumes = list(iter_volumes(data, r.data.modality))
    for vol in volumes:  # every grid checked before anything is written
        getattr(r.restore_one, "check", lambda v: None)(vol)
    check_space(space, data, volumes)
    summarize = lambda subjects: dataclasses.replace(r.summarize(subjects), space=space)  # noqa: E731
    return write_cohort(out, volumes, r.restore_one, summarize, method=method,
                        progress=progress, overwrite=overwrite, space=space, data=data)  # fmt: skip


def check_space(space: str, data, volumes) -> None:
    """:class:`ConfigError` for an unknown space, or ``native``/``both`` for scans that did
    not come from ``jaxuad-preprocess`` (no record of the scan as acquired)."""
    from jaxuad.preprocess import SPACES, NativeSpace

    if space not in SPACES:
        raise ConfigError(f"--space: must be one of {' | '.join(SPACES)}, got {space!r}")
    if space == "template":
        return
    for vol in volumes:
        if NativeSpace.read(data, vol.subject) is None:
            raise DataError(
                f"{data}: sub-{vol.subject} has no sub-{vol.subject}_native.json: --space "
                f"{space} needs scans preprocessed by jaxuad-preprocess"
            )


def fit_normative_cohort(
    workdir, data, *, method: str | None = None, seed: int = 0, progress=True, **options
):
    """Fits the normative statistics of ``method``'s residuals on the healthy scans of
    ``data`` (the model must not have trained on them) and stores them in the run, with
    the fusion weights of ``restore.fuse``'s runs when given. Returns the
    :class:`~jaxuad.restore.normative.NormativeFit`."""
    from jaxuad.restore.normative import (
        NormativeFit,
        fit_normative,
        fusion_weights,
        save_normative,
    )

    overrides = dict(options.pop("restore_overrides", None) or {})
    fuse = tuple(overrides.pop("fuse", ()))
    overrides["normative"] = False  # the raw residuals are what is fitted
    r = restorer(workdir, data, method=method, seed=seed, restore_overrides=overrides,
                 **options)  # fmt: skip
    rc = dataclasses.replace(r.config.restore, normative=bool(fuse), fuse=fuse)
    parts = [restorer(p, data, modality=r.data.modality) for p in rc.fuse]
    volumes = healthy_volumes(data, r.data.modality, "normative scoring")
    for vol in volumes:
        getattr(r.restore_one, "check", lambda v: None)(vol)
    for vol in volumes[1:]:
        if not same_grid(vol.image.shape, vol.affine, volumes[0].image.shape, volumes[0].affine):
            raise DataError(
                f"sub-{vol.subject}: grid differs from sub-{volumes[0].subject}'s; normative "
                "statistics need healthy scans on one grid"
            )
    signed_d, masks, part_scores = [], [], [[] for _ in parts]
    with_lambda = method_spec(r.method).needs_lambda
    bar = tqdm(volumes, desc=f"normative ({r.method})", unit="subject", disable=not progress)
    for vol in bar:
        restored, _, x = r.restore_one(vol)
        signed_d.append(x - restored)
        masks.append(vol.brainmask)
        for scores, p in zip(part_scores, parts, strict=True):
            scores.append(signed(*p.restore_one(vol)))
    v0 = volumes[0]
    stats = fit_normative(
        signed_d, masks, v0.affine, v0.voxel_size,
        smooth_mm=rc.normative_smooth_mm, min_scale=rc.normative_min_scale,
    )  # fmt: skip
    valid = [stats.valid(m) for m in masks]
    own = [stats.standardize(d, m) for d, m in zip(signed_d, masks, strict=True)]
    (w_self, *w_parts) = fusion_weights([own, *part_scores], valid)
    fuse = {str(Path(p).absolute()): w for p, w in zip(rc.fuse, w_parts, strict=True)}
    fuse["self"] = w_self
    fit = NormativeFit(
        method=r.method,
        prior=rc.prior if with_lambda else None,
        data=str(data),
        subjects=tuple(v.subject for v in volumes),
        smooth_mm=rc.normative_smooth_mm,
        min_scale=rc.normative_min_scale,
        healthy_quantile=1.0 / w_self,
        fuse=fuse if parts else {},
    )
    if distributed.is_primary():
        save_normative(workdir, fit, stats)
    return fit


__all__ = [
    "Restorer",
    "fit_normative_cohort",
    "make_restorer",
    "restore_cohort",
    "restorer",
    "run_slices",
    "write_cohort",
]

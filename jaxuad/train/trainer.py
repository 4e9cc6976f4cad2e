"""The training driver: one loop for every model, resumable and guarded against NaNs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxuad import distributed
from jaxuad.config import Config, ConfigError, save_json, to_dict
from jaxuad.core.io import check_apart
from jaxuad.core.signals import held_interrupts
from jaxuad.data import (
    batch_indices,
    common_grid,
    input_locations,
    iter_volumes,
    phantom,
    prefetch,
    slice_volume,
    write_json,
)
from jaxuad.data.augment import Augmentation, augment
from jaxuad.data.preprocess import background_value, with_fitted_landmarks
from jaxuad.data.store import SliceStore, build_store, open_store, store_key
from jaxuad.data.template import TEMPLATE_FILE, MeanImage
from jaxuad.train import precompile
from jaxuad.train.checkpoint import Checkpoints
from jaxuad.train.run import _abstract_state, _has_checkpoints, build_model
from jaxuad.train.schemes import phases_for, scheme_of, total_steps
from jaxuad.train.step import TrainState, init_state, make_train_step

GRID_FILE = "grid.json"  # the grid every training scan shared, when they did


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became non-finite; the last good checkpoint was kept."""


class TrainResult(NamedTuple):
    """What :func:`train` returns: final state, steps run, last metrics, run folder."""

    state: TrainState
    steps: int
    final_metrics: dict
    workdir: Path


def training_volumes(config: Config):
    """The training scans (a generator of Volume): the data folder/manifest, or the
    phantom's healthy cohort."""
    dc = config.data
    if dc.path is None:
        return (
            s.volume(sid, dc.modality)
            for sid, s in phantom.cohort(dc.phantom_n_healthy, dc.phantom_seed)
        )
    return iter_volumes(dc.path, dc.modality)


def _sliced(config: Config, template: MeanImage | None):
    """(subject id, [n, S, S, k] slices) per training scan, each normalised volume added to
    ``template`` (the cohort's mean image) on the way."""
    for v in training_volumes(config):
        vs = slice_volume(v, config.data)
        if template is not None:
            template.add(vs.normalized, v.brainmask, v.affine)
        yield v.subject, vs.images


def training_images(config: Config, template: MeanImage | None = None) -> np.ndarray:
    """[N, S, S, k] training slices of :func:`training_volumes` (and their normalised
    volumes added to ``template``, the cohort's mean image, on the way)."""
    return np.concatenate([images for _, images in _sliced(config, template)], axis=0)


STORE_FOLDER = "slices"  # the run's slice store (train.stream)


def training_store(config: Config, workdir, template: MeanImage | None = None) -> SliceStore:
    """The training slices as an on-disk :class:`~jaxuad.data.store.SliceStore` in
    ``workdir/slices``: built once (process 0; the others wait for it), reused while the
    data settings and input files are unchanged."""
    from jaxuad.config import to_dict

    dc, folder = config.data, Path(workdir) / STORE_FOLDER
    key = store_key(to_dict(config)["data"], dc.path, dc.modality)
    store = open_store(folder, key)
    if store is None and distributed.is_primary():
        store = build_store(folder, _sliced(config, template), key)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jaxuad slice store")
        store = store or open_store(folder, key)
    return store


# Settings that change how long a run goes on, what it keeps and where its batches are read
# from, never its weights.
RESUMABLE = (
    "epochs", "keep_checkpoints", "checkpoint_every", "log_every", "stream", "loader_threads",
    "precompile",
)


def _check_resume_config(stored: Config, config: Config) -> None:
    """Resuming must not silently change the experiment; only ``RESUMABLE`` train keys may
    differ."""
    kept = {k: getattr(stored.train, k) for k in RESUMABLE}
    if stored.data.path is not None and config.data.path is not None:
        # Runs record their data path absolute (runs from before hold it as typed, which
        # resolves against the current folder): the same file named another way is the same.
        if Path(stored.data.path).resolve() == Path(config.data.path).resolve():
            stored = dataclasses.replace(
                stored, data=dataclasses.replace(stored.data, path=config.data.path)
            )
    a, b = (
        to_dict(stored),
        to_dict(dataclasses.replace(config, train=dataclasses.replace(config.train, **kept))),
    )
    diffs = [
        f"{s}.{k}: run has {a[s][k]!r}, now {b[s][k]!r}"
        for s in a
        for k in a[s]
        if a[s][k] != b[s][k]
    ]
    if diffs:
        raise ConfigError("--resume with a different config:\n  " + "\n  ".join(diffs))


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a kill


def _trim_log(path: Path, last_step: int) -> None:
    """Drops log lines written after the checkpoint we resume from (they will be redone),
    and a last line a kill cut short."""
    if path.exists():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        kept = [ln for ln in lines if (s := _step_of(ln)) is not None and s <= last_step]
        path.write_text("".join(ln + "\n" for ln in kept))


@contextlib.contextmanager
def _locked(workdir: Path):
    """Holds an exclusive lock on ``workdir`` (``workdir/.lock``) while the block runs: a
    second training of the same run fails at once instead of interleaving with the first."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (workdir / ".lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"{workdir}: another jaxuad-train is using this run folder; wait for it to "
                "finish or choose another --workdir"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _remove_new_run(workdir: Path, before: set[str] | None) -> None:
    """After a fresh run failed before its first checkpoint: removes what it wrote (the
    folder, if it made it; else only the entries that were not there before), so a failed
    start leaves no half run behind and nothing of the user's is touched."""
    if before is None:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for path in workdir.iterdir():
        if path.name not in before:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def train(
    config: Config,
    workdir: str | Path,
    *,
    resume: bool = False,
    images: np.ndarray | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    devices: int | None = None,
) -> TrainResult:
    """Trains ``config.model`` and writes checkpoints, ``config.json`` and ``metrics.jsonl``.

    Args:
      config: the resolved config.
      workdir: run directory; must not hold checkpoints unless ``resume``.
      resume: continue from the latest checkpoint; the result equals an uninterrupted run.
      images: [N, S, S, 1] training slices; loaded from ``config.data`` when None.
      stop_after: stop (with a checkpoint) after this global step, as a kill would; for tests.
      progress: show a progress bar.
      devices: data-parallel over this many devices (default: every visible one, across
        all processes of a ``jax.distributed`` run); ``train.batch_size`` is the global
        batch and must be divisible by it. The result equals a one-device run up to float
        reduction order. Only process 0 writes ``config.json`` and ``metrics.jsonl``.

    Raises:
      TrainingDiverged: non-finite loss; the run stops and keeps its last good checkpoint.
    """
    workdir = Path(workdir)
    if config.data.path is not None:
        # The run records the file it read, not the spelling of the command that named it,
        # so a resume from another folder finds (and compares against) the same data.
        data = dataclasses.replace(config.data, path=str(Path(config.data.path).resolve()))
        config = dataclasses.replace(config, data=data)
    if config.data.path is not None and distributed.is_primary():
        check_apart(workdir, *input_locations(config.data.path, config.data.modality),
                    flag="--workdir")  # fmt: skip
    with _run_folder(workdir) as before:
        try:
            return _train_in(config, workdir, resume, images, stop_after, progress, devices)
        except BaseException:
            if distributed.is_primary() and not resume and not _has_checkpoints(workdir):
                _remove_new_run(workdir, before)
            raise


@contextlib.contextmanager
def _run_folder(workdir: Path):
    """Creates ``workdir`` if needed and holds its lock before anything else happens, so
    two trainings started at once on one new folder cannot both run (process 0 only: the
    others of a multi-process run share its folder). Yields the names the folder held
    before (None when this call created it). A failure to take the lock removes nothing:
    the folder is the other training's."""
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"{workdir}: exists and is not a folder (--workdir)")
    if not distributed.is_primary():
        workdir.mkdir(parents=True, exist_ok=True)
        yield set()
        return
    try:
        workdir.mkdir(parents=True)
        before = None
    except FileExistsError:
        before = {p.name for p in workdir.iterdir()}
    with _locked(workdir):  # on failure the folder is another training's, even if made here
        yield before


def _train_in(config, workdir, resume, images, stop_after, progress, devices) -> TrainResult:
    if config.data.histogram_match and not config.data.histogram_landmarks:
        if images is not None:
            raise ConfigError(
                "data.histogram_match: pass images=None (train() fits the landmarks on the "
                "training scans, then loads them matched) or a config with landmarks"
            )
        data = with_fitted_landmarks(config.data, training_volumes(config))
        config = dataclasses.replace(config, data=data)
    fit = scheme_of(config).fit
    if fit is not None:  # a baseline without a network: one pass over the scans
        if not distributed.is_primary():
            return TrainResult(None, 0, {}, workdir)
        return TrainResult(None, 0, fit(config, workdir, training_volumes(config), progress),
                           workdir)  # fmt: skip
    return _train(config, workdir, resume, images, stop_after, progress, devices)


def _train(config, workdir, resume, images, stop_after, progress, devices):
    tc = config.train
    has_checkpoints = _has_checkpoints(workdir)
    if has_checkpoints and not resume:
        raise ConfigError(
            f"{workdir}: already holds checkpoints; pass --resume to continue "
            "it or choose a new --workdir"
        )
    if resume and has_checkpoints:
        # The latest checkpoint holds the config its weights were trained with: it decides,
        # whatever config.json says (or whether it is still there).
        ckpt = Checkpoints(workdir, tc.keep_checkpoints)
        try:
            stored = ckpt.config()
        finally:
            ckpt.close()
        _check_resume_config(stored, config)
    # Data is loaded and validated before anything is written: bad input leaves no run.
    template = MeanImage()
    if images is None and tc.stream:
        _grain()  # before the store is built
        images = training_store(config, workdir, template)
    elif images is None:
        images = training_images(config, template)
    n = images.shape[0]
    if n < tc.batch_size:
        raise ConfigError(f"only {n} training slices for batch size {tc.batch_size}")
    mesh = distributed.make_mesh(devices)
    distributed.check_divisible(
        tc.batch_size,
        mesh,
        "train.batch_size",
        "the batch is the global one: change it with --set train.batch_size=N or use "
        "--devices to pick a divisor",
    )
    steps_per_epoch = n // tc.batch_size
    total = total_steps(config, steps_per_epoch)
    phases = phases_for(config, steps_per_epoch)

    return _loop(config, workdir, images, phases, mesh, total, steps_per_epoch, stop_after,
                 progress, template)  # fmt: skip


def _grain():
    try:
        import grain
    except ImportError:
        raise ConfigError("train.stream needs Grain: pip install 'jaxuad[stream]'") from None
    return grain


def _batches(config: Config, images, start: int, end: int, steps_per_epoch: int, mesh):
    """(host batches of steps ``start`` to ``end``, how to put one on the mesh). Step s's
    rows are ``batch_indices`` of its epoch whatever ``images`` is; an in-memory array is
    indexed on the prefetch thread, a :class:`SliceStore` read by ``train.loader_threads``
    Grain threads, each process reading only its own devices' rows."""
    tc = config.train
    n, shape = len(images), (tc.batch_size, *images.shape[1:])
    sharding = distributed.batch_sharding(mesh)
    aug = Augmentation(tc.augment_flip, tc.augment_intensity, tc.augment_rotate_deg,
                       tc.augment_scale)  # fmt: skip
    fill = background_value(config.data.normalization)

    def rows(s: int) -> np.ndarray:
        return batch_indices(n, tc.batch_size, tc.seed, s // steps_per_epoch)[s % steps_per_epoch]

    def host(s: int, part: slice = slice(None)) -> np.ndarray:
        x = images[rows(s)[part]]
        return augment(x, aug, seed=tc.seed, step=s, fill=fill, part=part,
                       batch_size=tc.batch_size)  # fmt: skip

    if not isinstance(images, SliceStore):
        return (host(s) for s in range(start, end)), lambda b: distributed.put(b, sharding)
    grain = _grain()

    parts = list(sharding.addressable_devices_indices_map(shape).items())
    threads = tc.loader_threads
    stream = (
        grain.MapDataset.range(start, end)
        .map(lambda s: [host(s, index[0]) for _, index in parts])
        .to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads))
    )

    def put(local: list[np.ndarray]) -> jax.Array:
        shards = [jax.device_put(x, d) for (d, _), x in zip(parts, local, strict=True)]
        return jax.make_array_from_single_device_arrays(shape, sharding, shards)

    return iter(stream), put


def _loop(config, workdir, images, phases, mesh, total, steps_per_epoch, stop_after, progress,
          template=None):  # fmt: skip
    tc = config.train
    primary = distributed.is_primary()
    if primary:
        save_json(config, workdir / "config.json")
        if template is not None and not (workdir / TEMPLATE_FILE).exists():
            template.write(workdir)  # what jaxuad-preprocess registers new scans to
        if config.data.path is not None and not (workdir / GRID_FILE).exists():
            grid = common_grid(config.data.path, config.data.modality)
            if grid is not None:  # restorations check scans against it
                write_json(grid, workdir / GRID_FILE)
    ckpt = Checkpoints(workdir, tc.keep_checkpoints)
    start = ckpt.latest_step()

    graphdef, params = build_model(config, tc.seed)
    train_step = make_train_step(graphdef, phases, tc, mesh)
    rep = distributed.replicated(mesh)
    if start is not None:
        state = ckpt.restore(_abstract_state(params, phases, rep), start)
    else:
        state, start = distributed.put(init_state(params, phases), rep), 0
    key = distributed.put(tc.key(tc.seed + 1), rep)
    log_path = workdir / "metrics.jsonl"
    if primary:
        _trim_log(log_path, start)

    end = total if stop_after is None else min(total, stop_after)
    if start >= end:  # resuming a run that is done: nothing to train, nothing to save
        ckpt.close()
        if primary:
            print(f"{workdir}: already at step {start} of {total}; nothing to train")
        return TrainResult(state, start, {}, workdir)
    if precompile.worthwhile(config):  # the step from the cache, compiled elsewhere
        shape = (tc.batch_size, *images.shape[1:])
        precompile.compile_in_child(config, steps_per_epoch, mesh.devices.size, shape)

    batches, put = _batches(config, images, start, end, steps_per_epoch, mesh)

    bar = tqdm(
        total=total,
        initial=start,
        unit="step",
        disable=not (progress and primary),
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
    )
    acc, acc_steps, t_log, last = None, 0, time.perf_counter(), {}

    def flush(step: int) -> dict:
        nonlocal acc, acc_steps, t_log
        if acc is None:
            return last
        host = {k: float(v) for k, v in jax.device_get(acc).items()}
        dt = time.perf_counter() - t_log
        if host["finite"] < acc_steps:
            good = ckpt.latest_step()
            raise TrainingDiverged(
                f"non-finite loss or gradient between steps {step - acc_steps} and {step}; "
                "stopped. "
                + (
                    f"Last good checkpoint: step {good} in {ckpt.directory}"
                    if good is not None
                    else "No checkpoint was written before it (train.checkpoint_every)."
                )
            )
        row = {
            "step": step,
            "epoch": step / steps_per_epoch,
            **{k: v / acc_steps for k, v in host.items() if k != "finite"},
            "images_per_s": acc_steps * tc.batch_size / dt,
        }
        if primary:
            with log_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        shown = {k.removesuffix("_loss"): f"{v:.4g}" for k, v in row.items() if k.endswith("_loss")}
        bar.set_postfix(**shown, img_s=f"{row['images_per_s']:.1f}")
        acc, acc_steps, t_log = None, 0, time.perf_counter()
        return row

    def save(step: int) -> None:
        nonlocal t_log
        ckpt.save(step, state, to_dict(config))
        t_log = time.perf_counter()  # keep checkpoint I/O out of images/s

    step = start
    try:
        with held_interrupts() as pending:
            for batch in prefetch(batches, put=put):
                if pending:
                    pending.pop()()  # the signal's own handler: KeyboardInterrupt
                state, metrics = train_step(state, batch, key)
                acc = metrics if acc is None else jax.tree.map(jnp.add, acc, metrics)
                acc_steps += 1
                step += 1
                bar.update(1)
                if step % tc.log_every == 0 or step == end:
                    last = flush(step)
                if step % tc.checkpoint_every == 0 and step != end:
                    last = flush(step)
                    save(step)
        last = flush(step)
        save(step)
    except KeyboardInterrupt:
        if any(x.is_deleted() for x in jax.tree.leaves(state)):  # a second signal, mid-step
            kept = ckpt.latest_step()
            print(f"\ninterrupted during a step: last checkpoint at step {kept}", file=sys.stderr)
            raise
        flush(step)  # raises TrainingDiverged rather than saving a bad state
        if ckpt.latest_step() != step:
            save(step)
        print(
            f"\ninterrupted: checkpoint saved at step {step}; continue with --resume",
            file=sys.stderr,
        )
        raise
    finally:
        bar.close()
        ckpt.close()
    return TrainResult(state, step, last, workdir)

"""A trained run as one handle (:class:`Run`): its config, model, parameters and the
lambdas ``jaxuad-restore --calibrate`` stored beside it. Loading needs the checkpoint code
only, not the training driver."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import jax
from flax import nnx

from jaxuad import models
from jaxuad.config import Config, ConfigError
from jaxuad.data import DataError, read_json
from jaxuad.train.checkpoint import Checkpoints
from jaxuad.train.schemes import phases_for
from jaxuad.train.step import TrainState, init_state

CALIBRATION_FILE = "calibration.json"  # lambdas by "method/prior", from jaxuad-restore --calibrate


def build_model(config: Config, seed: int, *, abstract: bool = False):
    """Model graph definition and initial parameters (a pure dict); with ``abstract``,
    parameter shapes only (``nnx.eval_shape``), for restoring a checkpoint into."""
    rngs = lambda: nnx.Rngs(params=config.train.key(seed))
    make = lambda: models.create(
        config.model, config.data.image_size, rngs=rngs(), in_channels=config.data.context_slices
    )
    graphdef, state = nnx.split(nnx.eval_shape(make) if abstract else make())
    return graphdef, nnx.to_pure_dict(state)


def _abstract_state(params: dict, phases, sharding) -> TrainState:
    """Shapes, dtypes and the target ``sharding`` of the train state, to restore into: a
    checkpoint written on any number of devices restores onto any other."""
    shapes = jax.eval_shape(lambda p: init_state(p, phases), params)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def _has_checkpoints(workdir: Path) -> bool:
    return (workdir / "checkpoints").is_dir() and any(
        p.name.isdigit() for p in (workdir / "checkpoints").iterdir()
    )


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run, restored from one checkpoint onto this process's first device.

    Attributes:
      workdir: the run folder.
      config: the resolved config the checkpoint was trained with (stored in it).
      graphdef: the model's graph definition (``nnx.split``).
      params: the parameters, a pure dict of arrays.
      step: the checkpoint's training step.
    """

    workdir: Path
    config: Config
    graphdef: nnx.GraphDef
    params: dict
    step: int

    def model(self) -> nnx.Module:
        """The trained model, ready to call: ``run.model()(y).recon`` is [B, S, S, 1]."""
        return nnx.merge(self.graphdef, self.params)

    def calibration(self) -> dict:
        """``calibration.json``: {"method/prior": {"lam", "grid", "ssim", ...}}; {} if none."""
        return read_calibration(self.workdir)

    def lam(self, method: str, prior: str | None = None) -> float | None:
        """The calibrated lambda for ``method`` with ``prior`` (default: the config's
        ``restore.prior``), or None when that pair was not calibrated."""
        return calibrated_lambda(self.workdir, method, prior or self.config.restore.prior)


def read_calibration(workdir: str | Path) -> dict:
    """``workdir/calibration.json`` ({} when absent), or :class:`DataError` naming it."""
    path = Path(workdir) / CALIBRATION_FILE
    if not path.is_file():
        return {}
    stored = read_json(path, "calibration file")
    if not isinstance(stored, dict):
        raise DataError(f"{path}: not a calibration file written by jaxuad-restore --calibrate")
    return stored


def calibration_key(method: str, prior: str) -> str:
    """The key of ``calibration.json`` under which a method's lambda for a prior is kept."""
    return f"{method}/{prior}"


def calibrated_lambda(workdir: str | Path, method: str, prior: str) -> float | None:
    """The lambda stored for ``method``/``prior`` in ``workdir``, or None."""
    key = calibration_key(method, prior)
    entry = read_calibration(workdir).get(key)
    if entry is None:
        return None
    lam = entry.get("lam") if isinstance(entry, dict) else None
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        raise DataError(f"{Path(workdir) / CALIBRATION_FILE}: entry {key!r} holds no valid lam")
    return float(lam)


def load_run(workdir: str | Path, step: int | None = None) -> Run:
    """Loads the run in ``workdir`` at checkpoint ``step`` (default: the latest).

    Raises:
      ConfigError: no run folder, or no checkpoint in it.
      DataError: no checkpoint at ``step``, or an unreadable one (the message lists the
        steps kept).
    """
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise ConfigError(f"{workdir}: no such run folder (--workdir)")
    if not _has_checkpoints(workdir):
        what = "no checkpoint yet (did training start?)"
        if not (workdir / "config.json").is_file():
            what = "not a jaxuad run (no config.json, no checkpoints)"
        raise ConfigError(f"{workdir}: {what}")
    ckpt = Checkpoints(workdir)
    try:
        config = ckpt.config(step)  # what the weights were trained with, not config.json
        graphdef, params = build_model(config, config.train.seed, abstract=True)
        phases = phases_for(config, 1)  # the optimizer states' structure only
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        state = ckpt.restore(_abstract_state(params, phases, device), step)
    finally:
        ckpt.close()
    return Run(workdir, config, graphdef, state.params, int(state.step))

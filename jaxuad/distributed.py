"""Running on several devices and hosts with JAX's own distribution: one ``Mesh``, one axis.

jaxuad is data-parallel only: models are small (tens of MB) and images independent, so
every device holds the whole model and a share of the images.

* **Training** shards each global batch along the mesh's ``data`` axis and replicates
  parameters and optimiser state; XLA inserts the gradient all-reduce. The global batch
  is the configured ``train.batch_size`` whatever the device count.
* **Restoration and post-processing** shard the slices of a chunk (or the volumes of a
  group) along the same axis. Images never interact, so results equal a single-device run.
* **Several hosts** (processes) join through :func:`initialize`, a thin wrapper over
  ``jax.distributed.initialize``. Every process runs the same program on the same inputs
  (each reads the data itself) and feeds its own devices' rows of each batch; process 0
  alone writes checkpoints' metadata, logs and reports (:func:`is_primary`).

On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` makes N virtual devices,
which is how the tests and ``bin/bench-scale`` exercise all of this on one machine.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxuad.config import ConfigError

DATA_AXIS = "data"
ENV = {
    "coordinator": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
) -> bool:
    """Joins a multi-process run; returns whether one was started.

    Arguments left None are read from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``
    and ``JAX_PROCESS_ID``. With none of them set, nothing happens (a single-process run)
    unless ``auto``, which lets JAX detect the cluster itself (SLURM, Open MPI, TPU pods,
    Kubernetes). Must run before anything touches a device; a second call in a process
    that has joined already does nothing.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator = coordinator or os.environ.get(ENV["coordinator"])
    if num_processes is None and os.environ.get(ENV["num_processes"]):
        num_processes = _env_int("num_processes")
    if process_id is None and os.environ.get(ENV["process_id"]):
        process_id = _env_int("process_id")
    given = (coordinator, num_processes, process_id)
    if not auto and all(v is None for v in given):
        return False
    if not auto and any(v is None for v in given):
        raise ConfigError(
            "a multi-process run needs all of --coordinator, --num-processes and "
            f"--process-id (or {', '.join(ENV.values())}); got coordinator={coordinator}, "
            f"num_processes={num_processes}, process_id={process_id}"
        )
    if num_processes is not None and not 0 <= (process_id or 0) < num_processes:
        raise ConfigError(f"--process-id {process_id} is not in [0, {num_processes})")
    # CPU devices of different processes talk through gloo (GPU and TPU bring their own).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True


def _env_int(name: str) -> int:
    text = os.environ[ENV[name]]
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{ENV[name]}={text!r} is not an integer") from None


def is_primary() -> bool:
    """Whether this process writes logs, reports and outputs (process 0)."""
    return jax.process_index() == 0


def make_mesh(devices: int | None = None) -> Mesh:
    """A 1D mesh over ``devices`` devices (default: every visible one), axis ``data``.

    With several processes each contributes the same number of its own devices, so
    ``devices`` must be a multiple of the process count.
    """
    available = jax.devices()
    n = len(available) if devices is None else devices
    procs = jax.process_count()
    if not 1 <= n <= len(available):
        raise ConfigError(f"--devices {n}: this run sees {len(available)} device(s)")
    if n % procs:
        raise ConfigError(f"--devices {n} is not a multiple of the {procs} processes")
    per_process = n // procs
    chosen = [
        d
        for p in range(procs)
        for d in [d for d in available if d.process_index == p][:per_process]
    ]
    return Mesh(np.array(chosen), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh's devices."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_divisible(size: int, mesh: Mesh, what: str, fix: str) -> None:
    """A clear error when ``size`` rows cannot be split evenly over the mesh."""
    n = mesh.devices.size
    if size % n:
        raise ConfigError(f"{what} {size} is not divisible by {n} devices; {fix}")


def put(tree, sharding: NamedSharding):
    """Places host or device arrays (identical on every process) with ``sharding``: each
    process transfers only the parts its own devices hold."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def to_host(x: jax.Array) -> np.ndarray:
    """The whole array as NumPy on every process (gathered where other processes hold
    parts of it)."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "check_divisible",
    "initialize",
    "is_primary",
    "make_mesh",
    "put",
    "replicated",
    "to_host",
]

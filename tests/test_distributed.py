"""Argument handling of jaxuad.distributed on this process's single device (the sharded
runs themselves are in tests/multidevice and tests/test_multidevice.py)."""

from __future__ import annotations

import jax
import pytest

from jaxuad import distributed
from jaxuad.config import ConfigError

ENV = tuple(distributed.ENV.values())


@pytest.fixture
def no_cluster_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_options_means_one_process(no_cluster_env):
    assert distributed.initialize() is False
    assert not jax.distributed.is_initialized() and distributed.is_primary()


def test_incomplete_or_bad_options_are_clear_errors(no_cluster_env):
    with pytest.raises(ConfigError, match="needs all of --coordinator, --num-processes"):
        distributed.initialize("127.0.0.1:1234", 2)
    no_cluster_env.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES='two' is not an integer"):
        distributed.initialize()
    no_cluster_env.setenv("JAX_NUM_PROCESSES", "2")
    with pytest.raises(ConfigError, match=r"--process-id 2 is not in \[0, 2\)"):
        distributed.initialize("127.0.0.1:1234", process_id=2)
    assert not jax.distributed.is_initialized()


def test_mesh_sizes_and_divisibility():
    mesh = distributed.make_mesh()
    assert mesh.devices.size == jax.device_count() and mesh.axis_names == ("data",)
    with pytest.raises(ConfigError, match=f"--devices {jax.device_count() + 1}: this run sees"):
        distributed.make_mesh(jax.device_count() + 1)
    with pytest.raises(ConfigError, match="--devices 0"):
        distributed.make_mesh(0)
    distributed.check_divisible(8, mesh, "train.batch_size", "fix")  # 1 device divides all

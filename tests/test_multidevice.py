"""Several devices and several processes, each in processes of their own.

* ``tests/multidevice`` runs under pytest with 4 virtual CPU devices
  (``--xla_force_host_platform_device_count=4`` must be set before JAX starts);
* two ``jaxuad-train`` processes join over loopback with ``jax.distributed`` (one CPU
  device each) and must train what one process on one device trains.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from jaxuad.train import load_run

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_multidevice_suite_on_four_virtual_devices():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/multidevice"],
        cwd=ROOT,
        env=_env(
            JAXUAD_MULTIDEVICE="1",
            XLA_FLAGS="--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0",
        ),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_over_loopback_train_like_one(trained_run, phantom_dir, tmp_path):
    """The conftest's trained_run (one process, one device) trained again by two processes
    that share the global batch: same weights, and only process 0 writes logs."""
    workdir = tmp_path / "run"
    port = _free_port()
    argv = [
        "--model", "svae", "--variant", "smoke", "--data", str(phantom_dir / "healthy"),
        "--modality", "FLAIR", "--set", "train.epochs=3", "--workdir", str(workdir),
        "--no-progress", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
    ]  # fmt: skip
    code = "import sys; from jaxuad.cli.train import entry; sys.argv[1:] = sys.argv[2:]; entry()"
    env = _env(XLA_FLAGS="--xla_backend_optimization_level=0")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, "jaxuad-train", *argv, "--process-id", str(i)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outs)
    assert "trained svae" in outs[0] and "trained svae" not in outs[1]  # process 0 reports
    one, two = (jax.tree.leaves(load_run(w)[2]) for w in (trained_run, workdir))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    logged = (workdir / "metrics.jsonl").read_text().splitlines()
    assert logged == [ln for ln in logged if ln] and len(logged) == len(
        (trained_run / "metrics.jsonl").read_text().splitlines()
    )  # one writer: no line twice

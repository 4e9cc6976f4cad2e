"""Several devices and several processes, each in processes of their own.

* ``tests/multidevice`` runs under pytest with 4 virtual CPU devices
  (``--xla_force_host_platform_device_count=4`` must be set before JAX starts);
* two processes join over loopback with ``jax.distributed`` (one CPU device each), train
  with ``jaxuad-train`` and restore with ``jaxuad-restore``, and must produce what one
  process on one device produces.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from jaxuad.data import read_nifti
from jaxuad.restore import restore_cohort
from jaxuad.train import load_run

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def test_multidevice_suite_on_four_virtual_devices(phantom_dir, trained_run, tmp_path):
    run_copy = shutil.copytree(trained_run, tmp_path / "run")  # the child writes into it
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/multidevice"],
        cwd=ROOT,
        env=_env(
            JAXUAD_MULTIDEVICE="1",
            JAXUAD_TEST_PHANTOM=str(phantom_dir),  # saves the child generating and training
            JAXUAD_TEST_RUN=str(run_copy),
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


def test_two_processes_over_loopback_train_and_restore_like_one(trained_run, phantom_dir, tmp_path):
    """The conftest's trained_run (one process, one device) trained again by two processes
    that share each global batch: the same weights. Then both restore the lesion phantom
    with that run (each chunk split over the two), as one process does alone. Only
    process 0 writes."""
    workdir, restored = tmp_path / "run", tmp_path / "restored"
    cluster = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    train_argv = [
        "--model", "svae", "--variant", "smoke", "--data", str(phantom_dir / "healthy"),
        "--modality", "FLAIR", "--set", "train.epochs=3", "--workdir", str(workdir),
        "--no-progress", *cluster,
    ]  # fmt: skip
    restore_argv = [
        "--workdir", str(workdir), "--data", str(phantom_dir / "lesion"), "--out",
        str(restored), "--set", "restore.batch_size=8", "--no-progress", *cluster,
    ]  # fmt: skip
    code = (  # one process joins once, then trains and restores
        "import json, sys; from jaxuad.cli import restore, train; t, r = json.loads(sys.argv[1]); "
        "train.main(t); restore.main(r)"
    )
    env = _env(XLA_FLAGS="--xla_backend_optimization_level=0")
    procs = []
    for i in range(2):
        pid = ["--process-id", str(i)]
        argv = json.dumps([train_argv + pid, restore_argv + pid])
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, argv],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outs)
    assert "trained svae" in outs[0] and "trained svae" not in outs[1]  # process 0 reports
    assert json.loads((restored / "restore.json").read_text())["devices"] == 2

    one, two = (jax.tree.leaves(load_run(w).params) for w in (trained_run, workdir))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    logged = (workdir / "metrics.jsonl").read_text().splitlines()
    assert len(logged) == len((trained_run / "metrics.jsonl").read_text().splitlines())

    reference = tmp_path / "reference"
    restore_cohort(workdir, phantom_dir / "lesion", reference, progress=False,
                   restore_overrides=dict(batch_size=8))  # fmt: skip
    names = sorted(p.name for p in reference.glob("sub-*_re*.nii.gz"))
    assert names == sorted(p.name for p in restored.glob("sub-*_re*.nii.gz")) and names
    for name in names:
        np.testing.assert_allclose(
            read_nifti(restored / name)[0], read_nifti(reference / name)[0], atol=1e-6
        )


def test_two_processes_streaming_each_read_half_and_train_like_one(
    trained_run, phantom_dir, tmp_path
):
    """train.stream over two processes: process 0 builds the slice store, each reads only
    its device's half of every global batch, and the weights are the one-process run's."""
    workdir = tmp_path / "run"
    cluster = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    argv = [
        "--model", "svae", "--variant", "smoke", "--data", str(phantom_dir / "healthy"),
        "--modality", "FLAIR", "--set", "train.epochs=3", "--workdir", str(workdir),
        "--stream", "--no-progress", *cluster,
    ]  # fmt: skip
    code = (  # counts the rows each process reads
        "import json, sys; from jaxuad.cli import train; from jaxuad.data import store; "
        "read = store.SliceStore.__getitem__; n = []; "
        "store.SliceStore.__getitem__ = lambda s, r: n.append(len(r)) or read(s, r); "
        "train.main(json.loads(sys.argv[1])); print('rows read', sum(n))"
    )
    env = _env(XLA_FLAGS="--xla_backend_optimization_level=0")
    procs = [
        subprocess.Popen([sys.executable, "-c", code, json.dumps(argv + ["--process-id", str(i)])],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)  # fmt: skip
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outs)
    one, two = (jax.tree.leaves(load_run(w).params) for w in (trained_run, workdir))
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    steps = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    batch = json.loads((workdir / "config.json").read_text())["train"]["batch_size"]
    reads = [int(o.rsplit("rows read ", 1)[1].split()[0]) for o in outs]
    assert reads == [steps * batch // 2] * 2  # each process read its half, no more

"""The train step compiled in a child process, so a first run steps as fast as a cached one.

jaxuad's allocator options (:mod:`jaxuad.runtime`: one glibc arena, no ``mmap``, no trim)
make a compiled step run faster, but compiling a large program in that one arena leaves it
fragmented, and the process that compiled its step runs it slower: ``vae_chen`` at 26-31
img/s against 54-56 when the step came from the persistent compilation cache (2 cores;
``bin/bench-first-run``). So :func:`~jaxuad.train.train` first runs this module in a child
process with glibc's default allocator (which also compiles faster), which builds the same
step for the same shapes and shardings and compiles it into the persistent cache; the
training process then loads it from there and never compiles it.

Only where it pays: the runtime defaults applied (:func:`jaxuad.runtime.configure`, as the
commands do: allocator options and the persistent cache), one process, ``train.precompile``
on and ``JAXUAD_PRECOMPILE`` not ``0`` (for processes whose configs one cannot reach, such
as the commands a test suite starts). A child that fails costs nothing but its time: the
training process then compiles the step itself, as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from jaxuad.config import Config, to_dict


def worthwhile(config: Config) -> bool:
    """Whether compiling in a child helps this process (see the module docstring)."""
    import jax

    from jaxuad import runtime

    done = runtime.applied()
    return (
        config.train.precompile
        and os.environ.get("JAXUAD_PRECOMPILE") != "0"
        and done["configured"]
        and done["malloc"]
        and jax.process_count() == 1
        and bool(jax.config.jax_compilation_cache_dir)
    )


def compile_in_child(config: Config, steps_per_epoch: int, devices: int, batch_shape) -> bool:
    """Compiles the train step of ``config`` (``steps_per_epoch`` decides its phases'
    step ranges) for a batch of ``batch_shape`` on a mesh of ``devices`` devices into the
    persistent cache, in a child process. Returns whether the child succeeded."""
    import jax

    spec = {"config": to_dict(config), "steps_per_epoch": steps_per_epoch, "devices": devices,
            "batch_shape": list(batch_shape)}  # fmt: skip
    env = {**os.environ, "JAXUAD_MALLOC": "default",
           "JAXUAD_CACHE_DIR": str(jax.config.jax_compilation_cache_dir)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        r = subprocess.run([sys.executable, "-m", "jaxuad.train.precompile", str(path)],
                           env=env, capture_output=True, text=True)  # fmt: skip
    if r.returncode:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"note: compiling the train step in a child failed ({tail}); compiling here",
              file=sys.stderr)  # fmt: skip
    return r.returncode == 0


def _child(path: str) -> None:
    from jaxuad import runtime

    runtime.configure()  # the parent's XLA flags and cache; glibc's allocator (JAXUAD_MALLOC)
    import numpy as np

    from jaxuad import distributed
    from jaxuad.config import from_dict
    from jaxuad.train.run import build_model
    from jaxuad.train.schemes import phases_for
    from jaxuad.train.step import init_state, make_train_step

    spec = json.loads(Path(path).read_text())
    config = from_dict(spec["config"])
    tc = config.train
    mesh = distributed.make_mesh(spec["devices"])
    graphdef, params = build_model(config, tc.seed)
    phases = phases_for(config, spec["steps_per_epoch"])
    step = make_train_step(graphdef, phases, tc, mesh)
    rep = distributed.replicated(mesh)
    # the arguments as train() places them, so the program (and its cache key) is the same
    state = distributed.put(init_state(params, phases), rep)
    batch = distributed.put(np.zeros(spec["batch_shape"], np.float32),
                            distributed.batch_sharding(mesh))  # fmt: skip
    key = distributed.put(tc.key(tc.seed + 1), rep)
    step.lower(state, batch, key).compile()


if __name__ == "__main__":
    _child(sys.argv[1])

"""Process-wide JAX defaults that jaxuad sets before JAX starts its backend.

Each setting was measured on the project's 2-core CPU machines (see README, "Speed"):

* ``--xla_cpu_experimental_ynn_fusion_type=`` (empty) turns off XLA CPU's experimental YNN
  fusions, which made conv-heavy train steps about 2x slower here.
* The ``rbg`` PRNG makes Flax initialisation several times faster to compile than the
  default threefry implementation; keys stay explicit and reproducible for a given seed.
* A persistent compilation cache turns a second start-up of the same program from tens of
  seconds into a few.

Every default yields to the user: an ``XLA_FLAGS`` entry that is already set, or
``JAXUAD_NO_DEFAULTS=1``, leaves the environment untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


def _set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in _CPU_FLAGS:
        name = flag.split("=")[0]
        if name not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags


def cache_dir() -> Path:
    return Path(os.environ.get("JAXUAD_CACHE_DIR", Path.home() / ".cache" / "jaxuad" / "xla"))


def apply_defaults() -> None:
    if os.environ.get("JAXUAD_NO_DEFAULTS") == "1":
        return
    _set_xla_flags()
    import jax

    jax.config.update("jax_default_prng_impl", "rbg")
    jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

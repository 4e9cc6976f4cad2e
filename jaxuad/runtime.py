"""jaxuad's process-wide runtime defaults, applied only when asked for.

Importing jaxuad changes nothing in the importing process. The command-line tools call
:func:`configure` before they start JAX; research code that wants the same defaults calls
it too, first thing, before JAX runs anything::

    import jaxuad
    jaxuad.runtime.configure()

Each default was measured on the project's 2-core CPU machines (see docs/benchmarks.md):

* ``--xla_cpu_experimental_ynn_fusion_type=`` (empty) in ``XLA_FLAGS`` turns off XLA CPU's
  experimental YNN fusions, which made conv-heavy train steps about 2x slower here. XLA
  reads ``XLA_FLAGS`` once, when JAX starts its first backend: later calls cannot change it.
* A persistent compilation cache (:func:`cache_dir`) turns a second start-up of the same
  program from tens of seconds into a few.
* glibc's allocator keeps freed memory for reuse (:data:`MALLOC_OPTIONS`: one arena, no
  ``mmap``, never trimmed). XLA CPU allocates each execution's temporaries afresh (a 114 MB
  and a 71 MB buffer per sVAE train step, 779 MB for ``vae_chen`` at batch 64), and glibc
  serves blocks over 32 MB with a fresh ``mmap`` and returns a free heap top above its trim
  threshold to the system, so every step page-faulted its whole working set back in:
  ~30,000 faults (117 MB) and 10-15 % of an sVAE step; ~190,000 faults (740 MB) and 25 % of
  a ``vae_chen`` step when the threshold was 1 GiB; with these options none after the
  first two steps. The price: the process keeps its peak heap, and a process that
  *compiles* a large program in its one arena leaves it fragmented: the same ``vae_chen``
  step ran at 26-31 img/s in the process that compiled it against 54-56 when loaded from
  the cache (2 cores; glibc's defaults: 45-49 either way). So ``jaxuad-train`` compiles its
  step in a child process with glibc's defaults (:func:`jaxuad.train.precompile`), which
  writes it to the cache, and loads it from there.

The PRNG is not among them: a run's keys are made with the implementation its config names
(``train.prng_impl``), whatever JAX's default is, so a run restores and resumes bit for bit
in any process.

Every default yields to the user: an ``XLA_FLAGS`` entry that is already set, an allocator
option set through ``MALLOC_*`` or ``GLIBC_TUNABLES`` (or ``JAXUAD_MALLOC=default``), or
``JAXUAD_NO_DEFAULTS=1``, leaves the process untouched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from pathlib import Path

__all__ = ["MALLOC_OPTIONS", "applied", "cache_dir", "configure", "malloc_env"]

_APPLIED = {"configured": False, "malloc": False}  # what configure() did in this process


def applied() -> dict[str, bool]:
    """What :func:`configure` applied in this process: ``configured`` (flags and the
    persistent cache) and ``malloc`` (:data:`MALLOC_OPTIONS`)."""
    return dict(_APPLIED)

_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)

# glibc mallopt parameters and the environment variables that set the same at start-up.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
MALLOC_OPTIONS = {  # environment variable: (mallopt parameter, value)
    "MALLOC_ARENA_MAX": (_M_ARENA_MAX, 1),  # every thread's blocks from the one heap...
    "MALLOC_MMAP_MAX_": (_M_MMAP_MAX, 0),  # ... never from mmap ...
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, -1),  # ... never given back (-1: SIZE_MAX)
}


def malloc_env() -> dict[str, str]:
    """The allocator options as environment variables, for other processes (the PyTorch
    reference of the benchmarks, for instance). mallopt takes an int and glibc reads it as
    ``size_t``, so -1 is written out as SIZE_MAX."""
    return {name: str(ctypes.c_size_t(value).value) for name, (_, value) in MALLOC_OPTIONS.items()}


def _tune_malloc() -> bool:
    """Applies :data:`MALLOC_OPTIONS` to this process (glibc only; nothing if the user has
    set any allocator option). Returns whether it did."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("JAXUAD_MALLOC") == "default":  # glibc's own defaults, asked for
        return False
    if any(name in os.environ for name in MALLOC_OPTIONS) or "malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in MALLOC_OPTIONS.values())


def _set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in _CPU_FLAGS:
        name = flag.split("=")[0]
        if name not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags


def cache_dir() -> Path:
    """Where :func:`configure` keeps compiled programs: ``$JAXUAD_CACHE_DIR``, else
    ``~/.cache/jaxuad/xla``."""
    return Path(os.environ.get("JAXUAD_CACHE_DIR", Path.home() / ".cache" / "jaxuad" / "xla"))


def configure() -> bool:
    """Applies jaxuad's runtime defaults (module docstring) to this process.

    Call it before JAX runs anything: ``XLA_FLAGS`` take effect only if no backend has
    started yet. Idempotent. Returns False, changing nothing, when ``JAXUAD_NO_DEFAULTS=1``.

    Example:
      >>> import jaxuad
      >>> applied = jaxuad.runtime.configure()
    """
    if os.environ.get("JAXUAD_NO_DEFAULTS") == "1":
        return False
    _set_xla_flags()
    if not _APPLIED["configured"]:
        _APPLIED["malloc"] = _tune_malloc()  # before JAX starts the threads that allocate
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache_dir()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _APPLIED["configured"] = True
    return True

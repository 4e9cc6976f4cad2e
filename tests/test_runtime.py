"""jaxuad's runtime defaults (jaxuad/runtime.py), each checked in a fresh interpreter: applied
by ``configure()`` only, never by an import."""

import os
import platform
import subprocess
import sys

import pytest

_REUSE = """
import ctypes, ctypes.util, resource
import jaxuad.runtime
if {configure}:
    jaxuad.runtime.configure()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = {n}
a = libc.malloc(n); ctypes.memset(a, 1, n); libc.free(a)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = libc.malloc(n); ctypes.memset(b, 1, n)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(n: int = 48 << 20, configure: bool = True, **env) -> int:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "JAXUAD_NO"))}
    r = subprocess.run(
        [sys.executable, "-c", _REUSE.format(n=n, configure=configure)],
        env={**full, **env},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="allocator options are glibc's")
def test_freed_memory_is_reused_without_page_faults():
    """A 48 MB block allocated again after being freed: with jaxuad's allocator options it
    comes back without page faults; glibc's defaults (mmap for blocks over 32 MB) fault in
    all of its ~12,000 pages again; an option the user set wins over jaxuad's; importing
    jaxuad without calling ``configure()`` leaves glibc's defaults."""
    assert _faults() < 1000
    assert _faults(configure=False) > 10000
    assert _faults(JAXUAD_NO_DEFAULTS="1") > 10000
    assert _faults(MALLOC_ARENA_MAX="4") > 10000


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="allocator options are glibc's")
def test_freed_heap_top_is_kept_however_large():
    """``vae_chen``'s batch-64 train step needs 779 MB of temporaries: with a trim threshold
    of 1 GiB glibc gave the free heap top back after every step and the next one faulted
    it all in again. A freed 1.1 GiB block now comes back without faults, also through
    the environment variables that ``malloc_env`` hands to other processes."""
    from jaxuad.runtime import malloc_env

    assert _faults(n=1100 << 20) < 1000
    assert _faults(n=1100 << 20, **malloc_env()) < 1000
    assert _faults(n=1100 << 20, **{**malloc_env(), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}) > 10000

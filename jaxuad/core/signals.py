"""Ctrl-C and SIGTERM held until the program reaches a point where stopping is safe."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def held_interrupts():
    """Holds SIGINT and SIGTERM until the caller is at a safe point.

    Inside this context a signal whose handler is a Python function (Ctrl-C's
    ``KeyboardInterrupt``, the commands' SIGTERM handler) is queued rather than run: the
    context yields the queue, and the caller runs the queued handler at its next safe point
    (``if pending: pending.pop()()``), or it runs on leaving the context. A second signal
    while one is queued runs its handler at once (press Ctrl-C twice to stop right away).

    Why: a handler that raises anywhere can land inside a donated train step (its state
    then names deleted buffers) or inside a library's ``__del__``, where Python prints the
    exception and drops it, so the signal is lost. Signals left to the operating system
    (``SIG_DFL``, ``SIG_IGN``) are not touched, and outside the main thread nothing is.
    """
    pending: list = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    saved = {}

    def hold(signum, frame):
        handler = saved[signum]
        if pending:
            handler(signum, frame)
            return
        pending.append(lambda: handler(signum, None))

    for sig in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(sig)):
            saved[sig] = signal.signal(sig, hold)
    try:
        yield pending
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    if pending:  # one that came after the last safe point (not reached on an exception)
        pending.pop()()

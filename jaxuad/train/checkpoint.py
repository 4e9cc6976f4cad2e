"""Checkpoints through one small wrapper over orbax's ``CheckpointManager``.

A checkpoint holds the train state and, as JSON, the resolved config, so a checkpoint
directory alone says how to rebuild its model. Orbax writes each step to a temporary
directory and renames it when complete: a run killed mid-save keeps its earlier checkpoints.
Restoring goes into shapes from ``jax.eval_shape`` of the initialiser, so nothing is
allocated twice. Each checkpoint also stores a SHA-256 of its state; a restored state that
does not match it (bytes changed on disk after the save) is refused as damaged, rather than
resumed into a "non-finite loss" that blames training.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxuad.config import Config, ConfigError, from_dict
from jaxuad.core.errors import CheckpointError
from jaxuad.train.step import TrainState


class _held_stderr:
    """Holds what is written to file descriptor 2 while a read runs and passes it on after,
    unless :meth:`drop` was called: a damaged checkpoint makes tensorstore's remaining reads
    fail in background threads, each printing an "Event loop is closed" traceback after
    the error that names the checkpoint. ``drop`` waits for them, then discards them."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        self._keep = True
        return self

    def drop(self) -> None:
        time.sleep(0.5)  # the failing reads' callbacks land within milliseconds
        self._keep = False

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        if self._keep:
            self._file.seek(0)
            text = self._file.read().decode(errors="replace")
            if text:
                sys.stderr.write(text)
        self._file.close()


def state_digest(state: TrainState) -> str:
    """SHA-256 over every array of ``state`` (shape, dtype and bytes, in tree order)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(state)):
        a = np.ascontiguousarray(leaf)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class Checkpoints:
    """Orbax checkpoints of a run folder, each with the resolved config it was trained with."""

    def __init__(self, workdir: str | Path, keep: int = 3):
        self.directory = Path(workdir).absolute() / "checkpoints"
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        """The newest checkpoint's step, or None."""
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        """The steps kept, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: TrainState, config: dict) -> None:
        """Writes the state at ``step`` with the config and the state's checksum
        (atomically, as orbax does)."""
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state._asdict()),
                    config=ocp.args.JsonSave(config),
                    checksum=ocp.args.JsonSave({"sha256": state_digest(state)}),
                ),
                force=True,
            )
        except Exception as e:  # a full disk reaches us as orbax's or tensorstore's own type
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{self.directory / str(step)}: cannot write the checkpoint ({first}); the "
                "earlier checkpoints are kept"
            ) from e
        self._manager.wait_until_finished()

    def _step(self, step: int | None) -> int:
        steps = self.steps()
        if step is None and steps:
            return steps[-1]
        if step not in steps:
            kept = ", ".join(map(str, steps)) or "none"
            raise CheckpointError(
                f"{self.directory}: no checkpoint at step {step} (steps kept: {kept})"
            )
        return step

    def _unreadable(self, step: int, e: Exception) -> CheckpointError:
        others = [s for s in self.steps() if s != step]
        hint = (
            f"other steps kept: {', '.join(map(str, others))} (--step N restores one; to "
            f"resume from one, move {self.directory / str(step)} away)"
            if others
            else "no other checkpoint is kept"
        )
        return CheckpointError(
            f"{self.directory / str(step)}: checkpoint cannot be read "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); {hint}"
        )

    def restore(self, abstract: TrainState, step: int | None = None) -> TrainState:
        """The train state at ``step`` (default: the latest), into ``abstract``'s shapes.

        Raises:
          CheckpointError: no checkpoint at ``step``, or one that cannot be read (truncated,
            zeroed or missing files); the message lists the other steps kept.
        """
        step = self._step(step)
        try:
            with _held_stderr() as held:
                try:
                    out = self._manager.restore(
                        step,
                        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract._asdict())),
                    )
                except Exception:
                    held.drop()  # tensorstore's reads still failing behind the first error
                    raise
            state = TrainState(**out["state"])
        except Exception as e:  # orbax and tensorstore raise many types for damaged files
            raise self._unreadable(step, e) from e
        stored = self._checksum(step)
        if stored is not None and stored != state_digest(state):
            raise self._unreadable(
                step, ValueError("its state does not match the checksum written with it")
            )
        return state

    def _checksum(self, step: int) -> str | None:
        """The checksum saved with ``step`` (None for checkpoints of earlier versions)."""
        if not (self.directory / str(step) / "checksum").exists():
            return None
        try:
            args = ocp.args.Composite(checksum=ocp.args.JsonRestore())
            return dict(self._manager.restore(step, args=args)["checksum"])["sha256"]
        except Exception as e:
            raise self._unreadable(step, e) from e

    def config(self, step: int | None = None) -> Config:
        """The resolved config stored with the checkpoint at ``step`` (default: the latest):
        the one its weights were trained with.

        Raises:
          CheckpointError: as :meth:`restore`.
          ConfigError: the stored config does not load (naming the checkpoint folder).
        """
        step = self._step(step)
        try:
            args = ocp.args.Composite(config=ocp.args.JsonRestore())
            stored = dict(self._manager.restore(step, args=args)["config"])
        except Exception as e:
            raise self._unreadable(step, e) from e
        try:
            return from_dict(stored)
        except ConfigError as e:
            raise ConfigError(f"{self.directory}: stored config: {e}") from e

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.close()

"""Checkpoints through one small wrapper over orbax's ``CheckpointManager``.

A checkpoint holds the train state and, as JSON, the resolved config, so a checkpoint
directory alone says how to rebuild its model. Orbax writes each step to a temporary
directory and renames it when complete: a run killed mid-save keeps its earlier checkpoints.
Restoring goes into shapes from ``jax.eval_shape`` of the initialiser, so nothing is
allocated twice.
"""

from __future__ import annotations

from pathlib import Path

import orbax.checkpoint as ocp

from jaxuad.train.step import TrainState


class Checkpoints:
    def __init__(self, workdir: str | Path, keep: int = 3):
        self.directory = Path(workdir).absolute() / "checkpoints"
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: TrainState, config: dict) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state._asdict()), config=ocp.args.JsonSave(config)
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore(self, abstract: TrainState, step: int | None = None) -> TrainState:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no checkpoint to restore")
        out = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract._asdict()))
        )
        return TrainState(**out["state"])

    def close(self) -> None:
        self._manager.close()

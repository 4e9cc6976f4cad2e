"""A reproduction's commands: each a call of the library, with the jaxuad command line that
does the same (what ``commands.sh`` records, to be rerun by hand).

A command holds typed values only (paths, names, :data:`~jaxuad.config.Changes`); the
library call and the command line are both built from them, so they cannot disagree
(``tests/test_reproduce.py`` reads the command lines back through the CLIs' parsers).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from jaxuad.config import Changes, assignments


def _sets(changes: Changes) -> list[str]:
    return [a for s in assignments(changes) for a in ("--set", s)]


@dataclass(frozen=True)
class Command:
    """One step's work. ``argv()`` is its command line; calling it runs it in this process
    (``resume``: continue a killed training run)."""

    progress: bool

    @property
    def _quiet(self) -> list[str]:
        return [] if self.progress else ["--no-progress"]

    def argv(self) -> list[str]:
        raise NotImplementedError

    def __call__(self, resume: bool = False) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class MakePhantom(Command):
    """``jaxuad-phantom``: healthy and lesion cohorts of the procedural phantom."""

    out: Path
    n_healthy: int
    n_lesion: int
    seed: int = 0

    def argv(self) -> list[str]:
        return ["jaxuad-phantom", "--out", str(self.out), "--n-healthy", str(self.n_healthy),
                "--n-lesion", str(self.n_lesion), "--seed", str(self.seed), "--overwrite",
                *self._quiet]  # fmt: skip

    def __call__(self, resume: bool = False) -> None:
        from jaxuad.data import phantom

        for name, n in (("healthy", self.n_healthy), ("lesion", self.n_lesion)):
            if n:
                phantom.write_cohort(self.out / name, n, self.seed, name)


@dataclass(frozen=True)
class Train(Command):
    """``jaxuad-train``: a model config and variant, ``changes`` applied, on ``data``."""

    model: str
    variant: str
    data: Path
    modality: str
    workdir: Path
    changes: Changes

    def argv(self) -> list[str]:
        return ["jaxuad-train", "--model", self.model, "--variant", self.variant, "--data",
                str(self.data), "--modality", self.modality, "--workdir", str(self.workdir),
                *_sets(self.changes), *self._quiet]  # fmt: skip

    def config(self):
        """The :class:`~jaxuad.config.Config` this command trains."""
        from jaxuad.config import apply_changes, load_config

        config = apply_changes(load_config(self.model, self.variant), self.changes)
        data = dataclasses.replace(config.data, path=str(self.data), modality=self.modality)
        return dataclasses.replace(config, data=data)

    def __call__(self, resume: bool = False) -> None:
        from jaxuad.train import train

        train(self.config(), self.workdir, resume=resume, progress=self.progress)


@dataclass(frozen=True)
class Calibrate(Command):
    """``jaxuad-restore --calibrate``: lambda of ``method`` and ``prior`` on healthy
    ``data``, stored in the run with its SSIM curve drawn beside it."""

    workdir: Path
    data: Path
    method: str
    prior: str
    changes: Changes  # restore.* only

    def argv(self) -> list[str]:
        return ["jaxuad-restore", "--calibrate", "--workdir", str(self.workdir), "--data",
                str(self.data), "--method", self.method, "--prior", self.prior,
                *_sets(self.changes), *self._quiet]  # fmt: skip

    def __call__(self, resume: bool = False) -> None:
        from jaxuad.report import calibration_figure
        from jaxuad.restore import calibrate

        overrides = {"prior": self.prior, **self.changes.get("restore", {})}
        cal = calibrate(self.workdir, self.data, method=self.method,
                        restore_overrides=overrides, progress=self.progress)  # fmt: skip
        calibration_figure(self.workdir, cal)


@dataclass(frozen=True)
class Restore(Command):
    """``jaxuad-restore``: every scan of ``data`` restored into ``out`` (replaced)."""

    workdir: Path | None  # None for the voxel-wise baselines that need no run
    data: Path
    modality: str
    out: Path
    method: str
    prior: str | None
    changes: Changes  # restore.* only

    def argv(self) -> list[str]:
        run = ["--workdir", str(self.workdir)] if self.workdir is not None else []
        prior = ["--prior", self.prior] if self.prior else []
        return ["jaxuad-restore", *run, "--data", str(self.data), "--modality", self.modality,
                "--out", str(self.out), "--overwrite", "--method", self.method, *prior,
                *_sets(self.changes), *self._quiet]  # fmt: skip

    def __call__(self, resume: bool = False) -> None:
        from jaxuad.restore import restore_cohort

        overrides = {**({"prior": self.prior} if self.prior else {}),
                     **self.changes.get("restore", {})}  # fmt: skip
        restore_cohort(self.workdir, self.data, self.out, method=self.method,
                       modality=self.modality, restore_overrides=overrides, overwrite=True,
                       progress=self.progress)  # fmt: skip


@dataclass(frozen=True)
class Evaluate(Command):
    """``jaxuad-evaluate``: ``pred`` scored against ``data``'s lesion masks at thresholds
    fitted on ``healthy``; metrics, figures and ``report.md`` into ``out``."""

    pred: Path
    data: Path
    modality: str
    healthy: Path
    out: Path
    changes: Changes  # evaluate.* only

    def argv(self) -> list[str]:
        return ["jaxuad-evaluate", "--pred", str(self.pred), "--data", str(self.data),
                "--modality", self.modality, "--healthy", str(self.healthy), "--out",
                str(self.out), *_sets(self.changes), *self._quiet]  # fmt: skip

    def __call__(self, resume: bool = False) -> None:
        from jaxuad.config import EvaluateConfig
        from jaxuad.evaluate import evaluate
        from jaxuad.report import write_report

        cfg = EvaluateConfig(**self.changes.get("evaluate", {}))
        result = evaluate(self.pred, self.data, self.out, cfg, healthy=self.healthy,
                          modality=self.modality, progress=self.progress)  # fmt: skip
        write_report(self.out, result)

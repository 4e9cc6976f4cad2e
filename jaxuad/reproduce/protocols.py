"""The types of a reproduction's protocol, and how one is found.

A paper's protocol (its training runs, table rows, budgets and claims) is configuration, as
a model's config is: it lives in ``configs/reproduce/<paper>.py`` (installed as
``jaxuad.configs.reproduce``), whose ``get_protocol()`` returns a :class:`Protocol`."""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

PAPERS = ("baur", "chen")
DATASETS = ("real", "phantom")
# Where the real scans are (ixi/, mslub/): --shared, else this environment variable
# (bin/reproduce-* set it to the ../shared/data beside the checkout).
SHARED_DATA_ENV = "JAXUAD_SHARED_DATA"


def shared_data() -> Path | None:
    """The data folder named by ``$JAXUAD_SHARED_DATA``, or None."""
    value = os.environ.get(SHARED_DATA_ENV)
    return Path(value) if value else None


@dataclass(frozen=True)
class Budget:
    """What one reproduction may spend. ``None`` keeps the model config's own value."""

    epochs: int | None = None  # training epochs (None: 150, AnoGAN 82)
    train_subjects: int | None = None  # healthy training subjects (None: all not held out)
    holdout: int = 20  # healthy subjects never trained on (thresholds, lambda)
    threshold_subjects: int | None = None  # of those, used for thresholds and lambda
    slices: str = "brain"  # brain: every slice with brain; middle:N: N central slices
    steps: int | None = None  # LG / MAP iterations (None: 800)
    restore_learning_rate: float | None = None  # their Adam step (None: 5e-3)
    samples: int | None = None  # L decoder samples of the local Gaussian (None: 16)
    anogan_steps: int | None = None  # AnoGAN latent search steps (None: 100)
    calibrate_slices: int | None = None  # healthy slices of the lambda search (None: 64)
    lam_grid: tuple[float, ...] | None = None  # lambda values searched (None: 0.1..1e4)
    learning_rate: float | None = None  # training learning rate (None: the paper's)
    variant: str = "default"  # config variant (smoke: tiny shapes, for tests)
    phantom_healthy: int = 12  # phantom cohort sizes
    phantom_lesion: int = 6

    def describe(self) -> str:
        """The settings this budget changes; everything else is the paper's."""
        cut = [
            f"{f.name}={getattr(self, f.name)}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default and not f.name.startswith("phantom_")
        ]
        return ", ".join(cut) if cut else "the papers' settings throughout"


SMOKE = Budget(
    epochs=1,
    holdout=2,
    slices="middle:8",
    variant="smoke",
    phantom_healthy=3,
    phantom_lesion=2,
    calibrate_slices=4,
    steps=5,
    anogan_steps=3,
)  # every paper's and data set's ``smoke`` budget: tiny shapes, for tests


@dataclass(frozen=True)
class Row:
    """One table row: a trained run restored by one method (and prior)."""

    label: str  # as the paper names it
    run: str  # training run (work folder name)
    method: str  # restoration method
    prior: str | None = None  # tv | l1 for the iterative methods


def row_key(row: Row) -> str:
    """The row's folder name: run, method and prior, repeats dropped."""
    return "-".join(dict.fromkeys(p for p in (row.run, row.method, row.prior) if p))


@dataclass(frozen=True)
class Claim:
    """"A better than B": holds at a threshold when every pair's row A has a strictly
    higher mean Dice than its row B (rows by :func:`row_key`)."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    thresholds: tuple[str, ...]


@dataclass(frozen=True)
class Protocol:
    """One paper's reproduction."""

    runs: dict[str, tuple[str, str | None]]  # work folder -> (--model, --variant or None)
    rows: tuple[Row, ...]  # the table, in order; the last rows are the baselines'
    baselines: tuple[str, ...]  # row keys of the voxel-wise baselines
    claims: tuple[Claim, ...]
    threshold: str  # the table's main threshold: the best model against the baselines
    budgets: dict[tuple[str, str], Budget]  # (data set, budget name) -> Budget

    def budget(self, data: str, name: str) -> Budget:
        return SMOKE if name == "smoke" else self.budgets[(data, name)]


PROTOCOLS_PACKAGE = "jaxuad.configs.reproduce"


def load_protocol(paper: str) -> Protocol:
    """The protocol of ``paper`` (one of :data:`PAPERS`)."""
    if paper not in PAPERS:
        raise ValueError(f"no protocol for {paper!r}; papers are {', '.join(PAPERS)}")
    return importlib.import_module(f"{PROTOCOLS_PACKAGE}.{paper}").get_protocol()

"""The reproductions' protocols: papers, data sets, budgets and the rows of each table."""

from __future__ import annotations

import dataclasses
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


DECADES = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4)
_SMOKE = Budget(
    epochs=1,
    holdout=2,
    slices="middle:8",
    variant="smoke",
    phantom_healthy=3,
    phantom_lesion=2,
    calibrate_slices=4,
    steps=5,
    anogan_steps=3,
)
BUDGETS: dict[tuple[str, str, str], Budget] = {
    # Baur et al.: 150 epochs (AnoGAN 82), reconstruction, AnoGAN's 100-step latent search.
    ("baur", "real", "paper"): Budget(),
    ("baur", "real", "small"): Budget(epochs=2, train_subjects=30, anogan_steps=15),
    ("baur", "phantom", "paper"): Budget(holdout=4),
    ("baur", "phantom", "small"): Budget(epochs=4, holdout=4, slices="middle:32", anogan_steps=15),
    # Chen et al.: Adam 2e-5 for (their) 150 epochs; 800 iterations, L = 16.
    ("chen", "real", "paper"): Budget(),
    # small: 50 iterations at 8x the step size reach as far as the paper's 800 at 5e-3 can
    # move a pixel (Adam moves each by at most ~lr per step); lambda on a decade grid.
    ("chen", "real", "small"): Budget(
        epochs=8,
        train_subjects=20,
        threshold_subjects=5,
        steps=50,
        restore_learning_rate=4e-2,
        samples=4,
        calibrate_slices=16,
        lam_grid=DECADES,
        learning_rate=1e-3,
    ),
    ("chen", "phantom", "paper"): Budget(holdout=4),
    ("chen", "phantom", "small"): Budget(
        epochs=10,
        holdout=4,
        threshold_subjects=2,
        slices="middle:16",
        steps=50,
        restore_learning_rate=4e-2,
        samples=4,
        calibrate_slices=8,
        lam_grid=DECADES,
        learning_rate=1e-3,
    ),
    **{(p, d, "smoke"): _SMOKE for p in PAPERS for d in DATASETS},
}


@dataclass(frozen=True)
class Row:
    """One table row: a trained run restored by one method (and prior)."""

    label: str  # as the paper names it
    run: str  # training run (work folder name)
    method: str = "reconstruction"
    prior: str | None = None  # tv | l1 for the iterative methods


# (work folder, --model, --variant or None)
BAUR_RUNS = {
    "dae": ("dae", None),
    "sae1": ("sae", "sae1"),
    "sae": ("sae", None),
    "sae_gan": ("sae_gan", None),
    "dvae": ("dvae", None),
    "svae": ("svae", None),
    "anovaegan": ("anovaegan", None),
    "anogan": ("anogan", None),
    "atlas": ("atlas", None),
}
# Every table ends with the voxel-wise baselines, so each claim is read against them
# (intensity needs no training run; the atlas is "trained" by jaxuad-train --model atlas).
BASELINE_ROWS = [
    Row("intensity (baseline)", "intensity", "intensity"),
    Row("voxel-wise atlas (baseline)", "atlas", "atlas"),
]
BAUR_ROWS = [
    Row("dAE", "dae"),
    Row("sAE (8x8 bottleneck)", "sae1"),
    Row("sAE (16x16 bottleneck)", "sae"),
    Row("AE-GAN (sAE + D)", "sae_gan"),
    Row("dVAE", "dvae"),
    Row("sVAE", "svae"),
    Row("AnoVAEGAN", "anovaegan"),
    Row("AnoGAN", "anogan", "anogan"),
    *BASELINE_ROWS,
]
CHEN_RUNS = {
    "vae_chen": ("vae_chen", None),
    "aae": ("aae", None),
    "gmvae": ("gmvae", None),
    "atlas": ("atlas", None),
}
CHEN_ROWS = [
    Row("VAE (reconstruction)", "vae_chen"),
    Row("AAE (reconstruction)", "aae"),
    *[
        Row(label, run, method, prior)
        for prior in ("tv", "l1")
        for label, run, method in (
            ("VAE-MAP", "vae_chen", "map"),
            ("GMVAE-MAP", "gmvae", "gmvae_map"),
            ("VAE-LG(est)", "vae_chen", "lg_est"),
            ("VAE-LG(neural)", "vae_chen", "lg_neural"),
            ("AAE-LG", "aae", "lg_neural"),
        )
    ],
    *BASELINE_ROWS,
]


def row_key(row: Row) -> str:
    """The row's folder name: run, method and prior, repeats dropped."""
    return "-".join(dict.fromkeys(p for p in (row.run, row.method, row.prior) if p))

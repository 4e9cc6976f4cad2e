"""Chen et al. 2019, Table 1: restoration by local Gaussian approximation (VAE-LG est and
neural, AAE-LG) against VAE-MAP and GMVAE-MAP, each with a TV and an L1 prior, by Dice at
healthy false-positive rates and AUROC."""

from jaxuad.configs.reproduce import BASELINE_ROWS, BASELINE_RUNS, RECONSTRUCTION

from jaxuad.reproduce.protocols import Budget, Claim, Protocol, Row, row_key

PRIORS = ("tv", "l1")
LOW_FPR = ("fpr0.1", "fpr0.5", "fpr1")
# The small budgets' restoration: 50 iterations at 8x the step size reach as far as the
# paper's 800 at 5e-3 can move a pixel (Adam moves each by at most ~lr per step), lambda on
# a decade grid, training at Adam 1e-3 (2e-5 barely moves in a few epochs).
SMALL = dict(steps=50, restore_learning_rate=4e-2, samples=4,
             lam_grid=(0.1, 1.0, 10.0, 100.0, 1e3, 1e4), learning_rate=1e-3)  # fmt: skip
ITERATIVE = (  # (label, run, method), each row once per prior
    ("VAE-MAP", "vae_chen", "map"),
    ("GMVAE-MAP", "gmvae", "gmvae_map"),
    ("VAE-LG(est)", "vae_chen", "lg_est"),
    ("VAE-LG(neural)", "vae_chen", "lg_neural"),
    ("AAE-LG", "aae", "lg_neural"),
)


def get_protocol() -> Protocol:
    iterative = [Row(label, run, method, p) for p in PRIORS for label, run, method in ITERATIVE]
    return Protocol(
        runs={"vae_chen": ("vae_chen", None), "aae": ("aae", None), "gmvae": ("gmvae", None),
              **BASELINE_RUNS},  # fmt: skip
        rows=(
            Row("VAE (reconstruction)", "vae_chen", RECONSTRUCTION),
            Row("AAE (reconstruction)", "aae", RECONSTRUCTION),
            *iterative,
            *BASELINE_ROWS,
        ),
        baselines=tuple(row_key(r) for r in BASELINE_ROWS),
        claims=(
            Claim("LG(neural) better than MAP",
                  tuple((f"vae_chen-lg_neural-{p}", f"vae_chen-map-{p}") for p in PRIORS),
                  LOW_FPR),
            Claim("MAP better than reconstruction",
                  tuple((f"vae_chen-map-{p}", f"vae_chen-{RECONSTRUCTION}") for p in PRIORS),
                  LOW_FPR),
            Claim("TV better than L1",
                  tuple((row_key(r), row_key(r)[:-2] + "l1") for r in iterative
                        if r.prior == "tv"),
                  ("fpr0.1", "fpr1")),
        ),  # fmt: skip
        threshold="fpr1",
        # Adam 2e-5 for (their) 150 epochs; 800 iterations, L = 16.
        budgets={
            ("real", "paper"): Budget(),
            ("real", "small"): Budget(
                epochs=8, train_subjects=20, threshold_subjects=5, calibrate_slices=16, **SMALL
            ),
            ("phantom", "paper"): Budget(holdout=4),
            ("phantom", "small"): Budget(
                epochs=10, holdout=4, threshold_subjects=2, slices="middle:16",
                calibrate_slices=8, **SMALL,
            ),  # fmt: skip
        },
    )

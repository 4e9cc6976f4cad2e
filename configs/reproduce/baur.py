"""Baur et al. 2018, Table 1: dense and spatial (V)AEs, their adversarial variants and
AnoGAN, by Dice after 3D post-processing at the 98th percentile of healthy residuals."""

from jaxuad.configs.reproduce import BASELINE_ROWS, BASELINE_RUNS, RECONSTRUCTION

from jaxuad.reproduce.protocols import Budget, Claim, Protocol, Row, row_key

REC = "-" + RECONSTRUCTION


def get_protocol() -> Protocol:
    return Protocol(
        runs={
            "dae": ("dae", None),
            "sae1": ("sae", "sae1"),
            "sae": ("sae", None),
            "sae_gan": ("sae_gan", None),
            "dvae": ("dvae", None),
            "svae": ("svae", None),
            "anovaegan": ("anovaegan", None),
            "anogan": ("anogan", None),
            **BASELINE_RUNS,
        },
        rows=(
            Row("dAE", "dae", RECONSTRUCTION),
            Row("sAE (8x8 bottleneck)", "sae1", RECONSTRUCTION),
            Row("sAE (16x16 bottleneck)", "sae", RECONSTRUCTION),
            Row("AE-GAN (sAE + D)", "sae_gan", RECONSTRUCTION),
            Row("dVAE", "dvae", RECONSTRUCTION),
            Row("sVAE", "svae", RECONSTRUCTION),
            Row("AnoVAEGAN", "anovaegan", RECONSTRUCTION),
            Row("AnoGAN", "anogan", "anogan"),
            *BASELINE_ROWS,
        ),
        baselines=tuple(row_key(r) for r in BASELINE_ROWS),
        claims=(
            Claim("spatial better than dense",
                  (("sae" + REC, "dae" + REC), ("svae" + REC, "dvae" + REC)), ("percentile",)),
            Claim("adversarial training helps",
                  (("sae_gan" + REC, "sae" + REC), ("anovaegan" + REC, "svae" + REC)),
                  ("percentile",)),
        ),  # fmt: skip
        threshold="percentile",
        # 150 epochs (AnoGAN 82), reconstruction, AnoGAN's 100-step latent search.
        budgets={
            ("real", "paper"): Budget(),
            ("real", "small"): Budget(epochs=2, train_subjects=30, anogan_steps=15),
            ("phantom", "paper"): Budget(holdout=4),
            ("phantom", "small"): Budget(
                epochs=4, holdout=4, slices="middle:32", anogan_steps=15
            ),
        },
    )

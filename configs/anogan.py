"""AnoGAN (Schlegl et al. 2017) as Baur et al. 2018 trained it: z = 64, a DCGAN generator
and discriminator on healthy axial slices, Adam 1e-4 (beta1 0.5). Baur et al. stopped at
82 of 150 epochs because later samples became unrealistic, so ``train.epochs`` is 82.

Detection by iterative latent search is ``jaxuad-restore --method anogan``. Variants:
``default`` and ``smoke``.
"""

import dataclasses

from jaxuad.config import Config, ModelConfig, RestoreConfig, TrainConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    config = Config(
        model=ModelConfig(name="anogan", z_dim=64),
        train=TrainConfig(epochs=82),
        restore=RestoreConfig(method="anogan"),
    )
    config = apply_variant(config, variant)
    if variant == "smoke":  # keep the paper's z size visible in the smoke run's shapes
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, z_dim=8))
    return config

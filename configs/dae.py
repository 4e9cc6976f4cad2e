"""Dense autoencoder, Baur et al. 2018 Table 1 "dAE": z = 512.

Variants: ``default`` (the paper's settings: Adam 1e-3, batch 8, 150 epochs) and ``smoke``
(tiny shapes for tests).
"""

from jaxuad.config import Config, ModelConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    return apply_variant(Config(model=ModelConfig(name="dae")), variant)

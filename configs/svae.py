"""Spatial VAE, Baur et al. 2018 Table 1 "sVAE": z = 16x16x64 at 256 input, 8x8x64 at 128.

Variants: ``default`` (the paper's settings: Adam 1e-3, batch 8, 150 epochs) and ``smoke``
(tiny shapes for tests).
"""

from jaxuad.config import Config, ModelConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    return apply_variant(Config(model=ModelConfig(name="svae")), variant)

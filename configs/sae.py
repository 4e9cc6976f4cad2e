"""Spatial autoencoder, Baur et al. 2018 Table 1 "sAE".

Variants: ``default`` = sAE3 (16x16x64 bottleneck at 256 input, ratio 1/16, so 8x8x64 at
128), ``sae1`` = sAE1 (8x8x64 at 256, ratio 1/32, so 4x4x64 at 128), ``smoke`` (tiny shapes),
and ``sae1-smoke``.
"""

import dataclasses

from jaxuad.config import Config, ModelConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    config = Config(model=ModelConfig(name="sae"))
    if variant.startswith("sae1"):
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, bottleneck_res=4)
        )
        variant = variant.removeprefix("sae1").removeprefix("-") or "default"
    return apply_variant(config, variant)

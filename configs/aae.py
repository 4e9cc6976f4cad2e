"""Adversarial autoencoder (Makhzani et al. 2015) as Chen et al. 2019 use it for AAE-LG:
Chen's residual encoder and decoder with a deterministic 2x2x256 code, and an MLP
discriminator that pushes codes towards N(0, I). Phases: reconstruction (Adam 2e-5), the
latent discriminator, then the encoder as its generator (both Adam 1e-4, beta1 0.5). The
variance network trains jointly, for AAE-LG(neural). Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, apply_variant, chen2019


def get_config(variant: str = "default") -> Config:
    return apply_variant(chen2019("aae"), variant)

"""Spatial AE with an adversarial loss on its reconstructions: Baur et al. 2018's "AE-GAN"
(a context encoder, Pathak et al. 2016), z = 16x16x64 at 256 input (8x8x64 at 128).

Phases per batch: L1 reconstruction - train.adv_weight * log D(x_hat) (Adam 1e-3), then
the discriminator update (Adam 1e-4, beta1 0.5). ``--set train.generator_update=separate``
gives -log D(x_hat) a decoder phase of its own at 1e-4. Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, ModelConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    return apply_variant(Config(model=ModelConfig(name="sae_gan")), variant)

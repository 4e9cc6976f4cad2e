"""AnoVAEGAN, Baur et al. 2018: the spatial VAE (16x16x64 at 256 input, 8x8x64 at 128) with
a discriminator on its reconstructions.

Generator: lambda1 L1 + lambda2 KL - lambda3 log D(Dec(Enc(x))); discriminator:
-log D(x) - log(1 - D(Dec(Enc(x)))). Updates alternate: L1 + KL at Adam 1e-3 (lambda1 = 1,
lambda2 = train.kl_weight), then the adversarial term (lambda3 = train.adv_weight) and the
discriminator at 1e-4. Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, ModelConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    return apply_variant(Config(model=ModelConfig(name="anovaegan")), variant)

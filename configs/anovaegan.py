"""AnoVAEGAN, Baur et al. 2018: the spatial VAE (16x16x64 at 256 input, 8x8x64 at 128) with
a discriminator on its reconstructions.

Autoencoder: lambda1 L1 + lambda2 KL - lambda3 log D(Dec(Enc(x))), one loss (Baur's Eq. 1)
at Adam 1e-3 (lambda1 = 1, lambda2 = train.kl_weight, lambda3 = train.adv_weight);
discriminator: -log D(x) - log(1 - D(Dec(Enc(x)))) at 1e-4, beta1 0.5; the two alternate
per batch. ``--set train.generator_update=separate`` moves the adversarial term into a
phase of its own at 1e-4 (less stable: Adam then moves the decoder ~1e-4 per step
however small that term is). Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, ModelConfig, apply_variant


def get_config(variant: str = "default") -> Config:
    return apply_variant(Config(model=ModelConfig(name="anovaegan")), variant)

"""Chen et al. 2019's fully convolutional VAE: one conv, six residual blocks (8, 16, 32, 64,
128, 256 channels, 3x3), a 2x2x256 code at 128x128, a symmetric decoder, LeakyReLU hidden
and identity outputs; Adam 2e-5, batch 64, z-scored inputs. The variance network (4 conv
layers, 8-16-8-1 channels) trains jointly, for VAE-LG(neural); VAE-LG(est) and VAE-MAP use
the same run. Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, apply_variant, chen2019


def get_config(variant: str = "default") -> Config:
    return apply_variant(chen2019("vae_chen"), variant)

"""VAE with a Gaussian-mixture prior, as You et al. 2019 use it for GMVAE-MAP: Chen's
residual architecture, a code of 2x2 positions whose 256-vectors each follow a learnt
mixture of ``model.gmm_components`` diagonal Gaussians. The KL term is the one-sample
estimate log q(z|x) - log p(z). Its ELBO as a function of the image is
:func:`jaxuad.train.losses.negative_elbo`. No variance network by default (GMVAE-MAP does
not use one). Variants: ``default`` and ``smoke``.
"""

from jaxuad.config import Config, apply_variant, chen2019


def get_config(variant: str = "default") -> Config:
    return apply_variant(chen2019("gmvae", gmm_components=10, variance_net=False), variant)

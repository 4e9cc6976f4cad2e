"""Model registry: name -> factory(ModelConfig, image_size, rngs=...) -> nnx.Module.

Autoencoding models are called as ``model(x, key=...)`` and return an :class:`AEOutput`;
generative models (VAEs, GMVAE, AAE, AnoGAN) also have ``sample(key, n)``.
:func:`jaxuad.train.schemes.phases_for` gives each model's training phases.

=========  =====================================================  ==========================
name       model                                                   paper
=========  =====================================================  ==========================
dae, dvae  dense AE / VAE                                          Baur et al. 2018
sae, svae  spatial AE / VAE                                        Baur et al. 2018
sae_gan    spatial AE + image discriminator ("AE-GAN")             Baur et al. 2018
anovaegan  spatial VAE + image discriminator                       Baur et al. 2018
anogan     DCGAN generator + discriminator                         Schlegl et al. 2017
vae_chen   residual fully convolutional VAE (2x2x256 code)         Chen et al. 2019
aae        adversarial AE: residual AE + latent discriminator      Chen et al. 2019 (AAE-LG)
gmvae      residual VAE with a Gaussian-mixture prior              You et al. 2019 (GMVAE-MAP)
=========  =====================================================  ==========================

Any autoencoding model gets Chen et al.'s variance network with ``model.variance_net``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flax import nnx

from jaxuad.config import MODEL_NAMES, ModelConfig
from jaxuad.models.autoencoders import AEOutput, Autoencoder
from jaxuad.models.gan import GAN
from jaxuad.models.layers import resolve_conv_impl
from jaxuad.models.unet import UNet

_AE = functools.partial

REGISTRY: dict[str, Callable[..., nnx.Module]] = {
    "dae": _AE(Autoencoder, bottleneck="dense", variational=False),
    "sae": _AE(Autoencoder, bottleneck="spatial", variational=False),
    "dvae": _AE(Autoencoder, bottleneck="dense", variational=True),
    "svae": _AE(Autoencoder, bottleneck="spatial", variational=True),
    "sae_gan": _AE(Autoencoder, bottleneck="spatial", variational=False, discriminator="image"),
    "anovaegan": _AE(Autoencoder, bottleneck="spatial", variational=True, discriminator="image"),
    "vae_chen": _AE(Autoencoder, bottleneck="spatial", variational=True),
    "aae": _AE(Autoencoder, bottleneck="spatial", variational=False, discriminator="latent"),
    "gmvae": _AE(Autoencoder, bottleneck="spatial", variational=True, prior="mixture"),
    "anogan": GAN,
    "unet_dae": UNet,
}


assert tuple(REGISTRY) == MODEL_NAMES, "jaxuad.config.MODEL_NAMES must list the registry"


def create(cfg: ModelConfig, image_size: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """The model ``cfg.name`` for [B, image_size, image_size, 1] inputs, its convolutions
    computed as ``cfg.conv_impl`` says (:func:`~jaxuad.models.layers.resolve_conv_impl`).

    Example:
      >>> import dataclasses
      >>> from flax import nnx
      >>> from jaxuad.config import load_config
      >>> cfg = dataclasses.replace(load_config("svae", "smoke").model, conv_impl="xla")
      >>> model = create(cfg, 32, rngs=nnx.Rngs(0))
      >>> model.decoder.out.conv_impl
      'xla'
    """
    if cfg.name not in REGISTRY:
        raise ValueError(f"unknown model {cfg.name!r}; registered: {', '.join(REGISTRY)}")
    if cfg.name == "anogan" and cfg.variance_net:
        raise ValueError("anogan has no encoder, so no variance network (model.variance_net)")
    model = REGISTRY[cfg.name](cfg, image_size, rngs=rngs)
    model.set_attributes(conv_impl=resolve_conv_impl(cfg.conv_impl), raise_if_not_found=False)
    return model


__all__ = [
    "GAN",
    "REGISTRY",
    "AEOutput",
    "Autoencoder",
    "create",
    "resolve_conv_impl",
]

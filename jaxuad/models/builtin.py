"""The models jaxuad ships, one :func:`~jaxuad.models.registry.register_model` entry each.

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
unet_dae   UNet denoising autoencoder, coarse noise                Kascenas et al. 2022
atlas      per-voxel mean and std of healthy scans (no network)   baseline
=========  =====================================================  ==========================
"""

from __future__ import annotations

from jaxuad.config import Config, ConfigError, set_default
from jaxuad.core.lazy import deferred
from jaxuad.models.geometry import stage_strides
from jaxuad.models.registry import ModelSpec, register_model


def _ae(**kinds):
    """A factory of :class:`~jaxuad.models.autoencoders.Autoencoder` with the given
    bottleneck, posterior, prior and discriminator."""
    return deferred("jaxuad.models.autoencoders:Autoencoder", **kinds)


# Built on first use, so the registry (and every --help) loads without JAX.
GAN = deferred("jaxuad.models.gan:GAN")
UNet = deferred("jaxuad.models.unet:UNet")


def _dense_latent(m) -> str:
    return str(m.z_dim)


def _spatial_latent(m) -> str:
    return f"{m.bottleneck_res}x{m.bottleneck_res}x{m.z_channels}"


def _check_autoencoder(bottleneck: str):
    def check(config: Config) -> None:
        try:
            stage_strides(config.model, config.data.image_size, bottleneck)
        except ValueError as e:
            raise ConfigError(f"data.image_size / model.bottleneck_res: {e}") from None

    return check


def _check_divisible(levels_of):
    def check(config: Config) -> None:
        n, size = levels_of(config.model), config.data.image_size
        if size % 2**n:
            raise ConfigError(
                f"data.image_size: {size} is not divisible by 2**{n} "
                f"({config.model.name}'s {n} downsamplings, model.features)"
            )

    return check


_BAUR = "Baur et al. 2018"
_CHEN = "Chen et al. 2019"
_SPATIAL = dict(encoder=True, latent=_spatial_latent, check=_check_autoencoder("spatial"))
_DENSE = dict(encoder=True, latent=_dense_latent, check=_check_autoencoder("dense"))
_VAE = dict(variational=True, prior="normal", generative=True)
# AE-GAN and AnoVAEGAN runs stored before train.generator_update existed trained their
# generator in a phase of its own.
_SEPARATE_GENERATOR = {"train": {"generator_update": "separate"}}

for spec in (
    ModelSpec("dae", _ae(bottleneck="dense", variational=False), "autoencoder",
              "dense autoencoder, z = 512", _BAUR, **_DENSE),
    ModelSpec("sae", _ae(bottleneck="spatial", variational=False), "autoencoder",
              "spatial autoencoder, z = 8x8x64 at 128 px", _BAUR, **_SPATIAL),
    ModelSpec("dvae", _ae(bottleneck="dense", variational=True), "autoencoder",
              "dense VAE, z = 512", _BAUR, **_DENSE, **_VAE),
    ModelSpec("svae", _ae(bottleneck="spatial", variational=True), "autoencoder",
              "spatial VAE, z = 8x8x64 at 128 px", _BAUR, **_SPATIAL, **_VAE),
    ModelSpec("sae_gan", _ae(bottleneck="spatial", variational=False, discriminator="image"),
              "image_gan", "AE-GAN: sae with an image discriminator", _BAUR, **_SPATIAL,
              legacy=_SEPARATE_GENERATOR),
    ModelSpec("anovaegan", _ae(bottleneck="spatial", variational=True, discriminator="image"),
              "image_gan", "AnoVAEGAN: svae with an image discriminator", _BAUR, **_SPATIAL,
              **_VAE, legacy=_SEPARATE_GENERATOR),
    ModelSpec("vae_chen", _ae(bottleneck="spatial", variational=True), "autoencoder",
              "Chen's residual VAE, 2x2x256 code", _CHEN, **_SPATIAL, **_VAE),
    ModelSpec("aae", _ae(bottleneck="spatial", variational=False, discriminator="latent"),
              "latent_adversarial", "adversarial autoencoder (latent discriminator)", _CHEN,
              **_SPATIAL, prior="normal", generative=True),
    ModelSpec("gmvae", _ae(bottleneck="spatial", variational=True, prior="mixture"),
              "mixture_vae", "VAE with a Gaussian-mixture prior", "You et al. 2019",
              **_SPATIAL, variational=True, prior="mixture", generative=True),
    ModelSpec("anogan", GAN, "gan", "DCGAN; restored by latent search", "Schlegl et al. 2017",
              generative=True, generator=True, latent=_dense_latent,
              check=_check_divisible(lambda m: len(m.features))),
    ModelSpec("unet_dae", UNet, "denoising", "UNet denoising autoencoder (coarse noise)",
              "Kascenas et al. 2022", latent=lambda m: "UNet",
              check=_check_divisible(lambda m: len(m.features) - 1)),
    ModelSpec("atlas", None, "voxelwise", "per-voxel mean and std of healthy scans (no network)",
              "baseline"),
):  # fmt: skip
    register_model(spec)

set_default("model.name", "svae")

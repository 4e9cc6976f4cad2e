"""The autoencoding models of both papers: Baur et al. 2018's dense/spatial AEs and VAEs
(and, with a discriminator, AE-GAN and AnoVAEGAN), Chen et al. 2019's residual VAE, the AAE
and the GMVAE.

One encoder and one decoder serve every variant, so that (as in Baur et al.) model
complexity is the same across them and only the bottleneck differs:

* encoder: ``len(features)`` conv stages (k x k, LeakyReLU 0.2); the first
  ``log2(S / r)`` stages have stride 2 and the rest stride 1, so the last feature map is
  r x r (r = ``bottleneck_res`` for spatial models; S / 2**len(features) for dense ones);
* bottleneck: ``dense`` flattens and maps to ``z_dim`` (Baur: 512); ``spatial`` is a 1x1 conv
  to ``z_channels`` (Baur: 16x16x64 "sAE3" and 8x8x64 "sAE1" at 256 input, the same ratios
  at 128). VAEs predict a mean and log-variance of the same shape;
* decoder: the mirror image, upsampling with :class:`~jaxuad.models.layers.UpConv`, and a
  final k x k conv to one channel with identity output.

``model.arch="chen"`` replaces each stage by a :class:`~jaxuad.models.layers.ResBlock` after
a stem conv (Chen et al.: one conv, six residual blocks of 8 to 256 channels, 3x3 kernels,
a 2x2x256 code at 128 input).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import ModelConfig
from jaxuad.models.discriminators import ImageDiscriminator, LatentDiscriminator
from jaxuad.models.geometry import stage_strides
from jaxuad.models.layers import Conv, DownConv, ResBlock, UpConv, conv
from jaxuad.models.priors import MixturePrior, gaussian_log_prob, kl_standard_normal, per_image
from jaxuad.models.variance import VarianceNet


class AEOutput(NamedTuple):
    """An autoencoder's pass: recon [B, S, S, 1], the code's mean and log-variance, z."""

    recon: jax.Array  # [B, S, S, 1]
    mean: jax.Array  # [B, z...] latent mean (the code itself for plain autoencoders)
    logvar: jax.Array | None  # [B, z...], None for plain autoencoders
    z: jax.Array  # [B, z...] the code that was decoded (a sample, or the mean)


class Encoder(nnx.Module):
    """``len(strides)`` stages from 1 channel to ``features[-1]``. Each stage is one conv
    (``residual=False``, Baur) or a :class:`ResBlock` after a stem conv (Chen)."""

    def __init__(self, features, kernel_size: int, strides, *, residual: bool, rngs: nnx.Rngs,
                 in_channels: int = 1):  # fmt: skip
        k = kernel_size
        self.stem = conv(in_channels, features[0], k, rngs=rngs) if residual else None
        chans = ((features[0],) if residual else (in_channels,)) + tuple(features)
        stages = []
        for i, s in enumerate(strides):
            cin, cout = chans[i], chans[i + 1]
            if residual:
                stages.append(ResBlock(cin, cout, k, "down" if s == 2 else "same", rngs=rngs))
            elif s == 2:
                stages.append(DownConv(cin, cout, k, 2, rngs=rngs))
            else:
                stages.append(conv(cin, cout, k, rngs=rngs))
        self.convs = nnx.List(stages)
        self.residual = residual

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.stem is not None:
            x = nnx.leaky_relu(self.stem(x), 0.2)
        for stage in self.convs:
            x = stage(x)
            if not self.residual:  # a ResBlock applies its own activation
                x = nnx.leaky_relu(x, 0.2)
        return x


class Decoder(nnx.Module):
    """The mirror of :class:`Encoder`, from ``features[-1]`` channels to a one-channel
    image with identity output."""

    def __init__(self, features, kernel_size: int, strides, *, residual: bool, rngs: nnx.Rngs):
        chans = (*features[:1], *features)  # out channels mirror the encoder's inputs
        k = kernel_size
        layers = []
        for i in reversed(range(len(strides))):
            cin, cout = features[i], chans[i]
            if residual:
                layers.append(
                    ResBlock(cin, cout, k, "up" if strides[i] == 2 else "same", rngs=rngs)
                )
            elif strides[i] == 2:
                layers.append(UpConv(cin, cout, k, 2, rngs=rngs))
            else:
                layers.append(conv(cin, cout, k, rngs=rngs))
        self.ups = nnx.List(layers)
        self.residual = residual
        # Zero-initialised output: training starts from the all-background image instead of
        # unit-scale noise. With random output weights, Adam's first steps shrink the output
        # towards zero and tiny L1-trained models then sat on that plateau for 100s of steps
        # (1 seed in 4 never left it in 400); zero-init escaped within 30-210 steps for every
        # model and seed tried.
        self.out = conv(chans[0], 1, k, rngs=rngs, kernel_init=nnx.initializers.zeros_init())

    def __call__(self, h: jax.Array) -> jax.Array:
        for layer in self.ups:
            h = layer(h)
            if not self.residual:
                h = nnx.leaky_relu(h, 0.2)
        return self.out(h)


class Autoencoder(nnx.Module):
    """Dense or spatial, plain or variational autoencoder, with the optional parts that
    turn it into the papers' other models:

    * ``discriminator="image"``: an :class:`ImageDiscriminator` (``disc``) on
      reconstructions: AE-GAN (``sae_gan``) and AnoVAEGAN (``anovaegan``);
    * ``discriminator="latent"``: a :class:`LatentDiscriminator` on the code: the
      adversarial autoencoder (``aae``), whose code is pushed towards N(0, I);
    * ``prior="mixture"``: a learnt Gaussian-mixture prior (``prior``): GMVAE;
    * ``cfg.variance_net``: Chen et al.'s :class:`VarianceNet` (``var_net``).

    Top-level attribute names are the parameter groups that training phases own
    (:mod:`jaxuad.train.schemes`): ``encoder``, ``to_z``, ``from_z``, ``decoder``, ``disc``,
    ``prior``, ``var_net``.

    Example::

      model = Autoencoder(ModelConfig(), 128, bottleneck="spatial", variational=True,
                          rngs=nnx.Rngs(0))
      out = model(x, key=jax.random.key(1))   # x: [B, 128, 128, 1]
    """

    def __init__(
        self,
        cfg: ModelConfig,
        image_size: int,
        *,
        bottleneck: str,
        variational: bool,
        discriminator: str | None = None,
        prior: str = "normal",
        rngs: nnx.Rngs,
        in_channels: int = 1,
    ):
        if bottleneck not in ("dense", "spatial"):
            raise ValueError(f"bottleneck must be dense or spatial, got {bottleneck!r}")
        if cfg.arch not in ("baur", "chen"):
            raise ValueError(f"model.arch must be baur or chen, got {cfg.arch!r}")
        if prior == "mixture" and not variational:
            raise ValueError("a mixture prior needs a variational model")
        self.bottleneck = bottleneck
        self.variational = variational
        self.discriminator = discriminator
        strides = stage_strides(cfg, image_size, bottleneck)
        self.feature_res = image_size // 2 ** sum(s == 2 for s in strides)
        top, residual = cfg.features[-1], cfg.arch == "chen"
        self.encoder = Encoder(cfg.features, cfg.kernel_size, strides, residual=residual,
                               rngs=rngs, in_channels=in_channels)  # fmt: skip
        self.decoder = Decoder(cfg.features, cfg.kernel_size, strides, residual=residual, rngs=rngs)
        mult = 2 if variational else 1
        if bottleneck == "dense":
            flat = self.feature_res**2 * top
            self.to_z = nnx.Linear(flat, cfg.z_dim * mult, rngs=rngs)
            self.from_z = nnx.Linear(cfg.z_dim, flat, rngs=rngs)
            self.latent_shape = (cfg.z_dim,)
        else:
            self.to_z = Conv(top, cfg.z_channels * mult, (1, 1), rngs=rngs)
            self.from_z = Conv(cfg.z_channels, top, (1, 1), rngs=rngs)
            self.latent_shape = (self.feature_res, self.feature_res, cfg.z_channels)
        if discriminator == "image":
            self.disc = ImageDiscriminator(
                image_size, cfg.disc_features, cfg.kernel_size, rngs=rngs
            )
        elif discriminator == "latent":
            self.disc = LatentDiscriminator(
                math.prod(self.latent_shape), cfg.latent_disc_hidden, rngs=rngs
            )
        elif discriminator is not None:
            raise ValueError(f"discriminator must be image, latent or None, got {discriminator!r}")
        if prior == "mixture":
            self.prior = MixturePrior(cfg.gmm_components, self.latent_shape[-1], rngs=rngs)
        elif prior != "normal":
            raise ValueError(f"prior must be normal or mixture, got {prior!r}")
        self.prior_kind = prior
        if cfg.variance_net:
            self.var_net = VarianceNet(rngs=rngs)

    @property
    def generative(self) -> bool:
        """Whether codes can be drawn from a prior (VAEs, GMVAE, AAE)."""
        return self.variational or self.discriminator == "latent"

    @property
    def has_variance_net(self) -> bool:
        """Whether Chen's variance network is part of the model (for lg_neural)."""
        return hasattr(self, "var_net")

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """[B, S, S, 1] -> latent mean (and log-variance for VAEs)."""
        h = self.encoder(x)
        if self.bottleneck == "dense":
            h = h.reshape(h.shape[0], -1)
        h = self.to_z(h)
        if self.variational:
            mean, logvar = jnp.split(h, 2, axis=-1)
            return mean, logvar
        return h, None

    def decode(self, z: jax.Array) -> jax.Array:
        """Images [B, S, S, 1] from codes of ``latent_shape``."""
        h = nnx.leaky_relu(self.from_z(z), 0.2)
        if self.bottleneck == "dense":
            h = h.reshape(h.shape[0], self.feature_res, self.feature_res, -1)
        return self.decoder(h)

    def kl(self, out: AEOutput) -> jax.Array:
        """KL(q(z|x) || p(z)) per image [B]: closed form for N(0, I); for the mixture, the
        one-sample estimate log q(z|x) - log p(z) at the drawn z; zeros for plain AEs."""
        if out.logvar is None:
            return jnp.zeros(out.mean.shape[:1], out.mean.dtype)
        if self.prior_kind == "normal":
            return kl_standard_normal(out.mean, out.logvar)
        log_q = per_image(gaussian_log_prob(out.z, out.mean, out.logvar))
        return log_q - per_image(self.prior.log_prob(out.z))

    def sample_latent(self, key: jax.Array, n: int) -> jax.Array:
        """n codes from the prior: N(0, I), or the mixture for GMVAE."""
        if not self.generative:
            raise ValueError("a plain autoencoder has no prior to sample from")
        if self.prior_kind == "mixture":
            return self.prior.sample(key, (n, *self.latent_shape[:-1]))
        return jax.random.normal(key, (n, *self.latent_shape), jnp.float32)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """n images decoded from prior codes: [n, S, S, 1]."""
        return self.decode(self.sample_latent(key, n))

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> AEOutput:
        """Reconstructs x; VAEs sample z ~ q(z|x) when ``key`` is given, else use the mean."""
        mean, logvar = self.encode(x)
        z = mean
        if self.variational and key is not None:
            z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
        return AEOutput(self.decode(z), mean, logvar, z)

"""Baur et al. 2018's non-adversarial family: dense/spatial autoencoders and VAEs.

One encoder and one decoder serve every variant, so that (as in the paper) model
complexity is the same across them and only the bottleneck differs:

* encoder: ``len(features)`` conv stages (k x k, LeakyReLU 0.2); the first
  ``log2(S / r)`` stages have stride 2 and the rest stride 1, so the last feature map is
  r x r (r = ``bottleneck_res`` for spatial models; S / 2**len(features) for dense ones);
* bottleneck: ``dense`` flattens and maps to ``z_dim`` (Baur: 512); ``spatial`` is a 1x1 conv
  to ``z_channels`` (Baur: 16x16x64 "sAE3" and 8x8x64 "sAE1" at 256 input, the same ratios
  at 128). VAEs predict a mean and log-variance of the same shape;
* decoder: the mirror image, upsampling with :class:`~jaxuad.models.layers.UpConv`, and a
  final k x k conv to one channel with identity output.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import ModelConfig
from jaxuad.models.layers import DownConv, UpConv, he_normal


class AEOutput(NamedTuple):
    recon: jax.Array  # [B, S, S, 1]
    mean: jax.Array  # [B, z...] latent mean (the code itself for plain autoencoders)
    logvar: jax.Array | None  # [B, z...], None for plain autoencoders


def stage_strides(cfg: ModelConfig, image_size: int, bottleneck: str) -> list[int]:
    n = len(cfg.features)
    if bottleneck == "dense":
        n_down = n
    else:
        ratio = image_size / cfg.bottleneck_res
        n_down = round(math.log2(ratio)) if ratio >= 1 else -1
        if 2**n_down != ratio or not 0 <= n_down <= n:
            raise ValueError(
                f"bottleneck_res {cfg.bottleneck_res} needs image_size / bottleneck_res to be "
                f"a power of two <= 2**{n} (image_size {image_size}, {n} stages)"
            )
    if image_size % 2**n_down:
        raise ValueError(f"image_size {image_size} is not divisible by 2**{n_down}")
    return [2] * n_down + [1] * (n - n_down)


class Encoder(nnx.Module):
    def __init__(self, features, kernel_size: int, strides, *, rngs: nnx.Rngs):
        chans = (1, *features)
        k = (kernel_size, kernel_size)
        self.convs = nnx.List(
            [
                DownConv(chans[i], chans[i + 1], kernel_size, 2, rngs=rngs)
                if s == 2
                else nnx.Conv(
                    chans[i], chans[i + 1], k, padding="SAME", kernel_init=he_normal(), rngs=rngs
                )
                for i, s in enumerate(strides)
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = nnx.leaky_relu(conv(x), 0.2)
        return x


class Decoder(nnx.Module):
    def __init__(self, features, kernel_size: int, strides, *, rngs: nnx.Rngs):
        chans = (*features[:1], *features)  # out channels mirror the encoder's inputs
        k = (kernel_size, kernel_size)
        layers = []
        for i in reversed(range(len(strides))):
            cin, cout = features[i], chans[i]
            if strides[i] == 2:
                layers.append(UpConv(cin, cout, kernel_size, 2, rngs=rngs))
            else:
                layers.append(
                    nnx.Conv(cin, cout, k, padding="SAME", kernel_init=he_normal(), rngs=rngs)
                )
        self.ups = nnx.List(layers)
        # Zero-initialised output: training starts from the all-background image instead of
        # unit-scale noise. With random output weights, Adam's first steps shrink the output
        # towards zero and tiny L1-trained models then sat on that plateau for 100s of steps
        # (1 seed in 4 never left it in 400); zero-init escaped within 30-210 steps for every
        # model and seed tried.
        self.out = nnx.Conv(
            chans[0], 1, k, padding="SAME", kernel_init=nnx.initializers.zeros_init(), rngs=rngs
        )

    def __call__(self, h: jax.Array) -> jax.Array:
        for layer in self.ups:
            h = nnx.leaky_relu(layer(h), 0.2)
        return self.out(h)


class Autoencoder(nnx.Module):
    """Dense or spatial, plain or variational autoencoder (Baur et al. 2018, Table 1).

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
        rngs: nnx.Rngs,
    ):
        if bottleneck not in ("dense", "spatial"):
            raise ValueError(f"bottleneck must be dense or spatial, got {bottleneck!r}")
        self.bottleneck = bottleneck
        self.variational = variational
        strides = stage_strides(cfg, image_size, bottleneck)
        self.feature_res = image_size // 2 ** sum(s == 2 for s in strides)
        top = cfg.features[-1]
        self.encoder = Encoder(cfg.features, cfg.kernel_size, strides, rngs=rngs)
        self.decoder = Decoder(cfg.features, cfg.kernel_size, strides, rngs=rngs)
        mult = 2 if variational else 1
        if bottleneck == "dense":
            flat = self.feature_res**2 * top
            self.to_z = nnx.Linear(flat, cfg.z_dim * mult, rngs=rngs)
            self.from_z = nnx.Linear(cfg.z_dim, flat, rngs=rngs)
        else:
            self.to_z = nnx.Conv(top, cfg.z_channels * mult, (1, 1), rngs=rngs)
            self.from_z = nnx.Conv(cfg.z_channels, top, (1, 1), rngs=rngs)

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
        h = nnx.leaky_relu(self.from_z(z), 0.2)
        if self.bottleneck == "dense":
            h = h.reshape(h.shape[0], self.feature_res, self.feature_res, -1)
        return self.decoder(h)

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> AEOutput:
        """Reconstructs x; VAEs sample z ~ q(z|x) when ``key`` is given, else use the mean."""
        mean, logvar = self.encode(x)
        z = mean
        if self.variational and key is not None:
            z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)
        return AEOutput(self.decode(z), mean, logvar)

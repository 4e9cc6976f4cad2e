"""Discriminators for the adversarial models.

* :class:`ImageDiscriminator` judges images (AE-GAN, AnoVAEGAN, AnoGAN): stride-2 conv
  stages with LeakyReLU, then one linear layer to a logit;
* :class:`LatentDiscriminator` judges codes (AAE): an MLP on the flattened code.

Discriminators return logits [B]; losses use ``log D = -softplus(-logit)`` and
``log(1 - D) = -softplus(logit)``, which stay finite where sigmoid would saturate.
"""

from __future__ import annotations

import jax
from flax import nnx

from jaxuad.models.layers import DownConv


class ImageDiscriminator(nnx.Module):
    def __init__(self, image_size: int, features, kernel_size: int, *, rngs: nnx.Rngs):
        if image_size % 2 ** len(features):
            raise ValueError(
                f"image_size {image_size} is not divisible by 2**{len(features)} "
                "(one halving per model.disc_features stage)"
            )
        chans = (1, *features)
        self.convs = nnx.List(
            [
                DownConv(chans[i], chans[i + 1], kernel_size, 2, rngs=rngs)
                for i in range(len(features))
            ]
        )
        res = image_size // 2 ** len(features)
        self.out = nnx.Linear(res * res * features[-1], 1, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """The last conv stage's activations, flattened: [B, F] (AnoGAN's feature match)."""
        for c in self.convs:
            x = nnx.leaky_relu(c(x), 0.2)
        return x.reshape(x.shape[0], -1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.features(x))[:, 0]


class LatentDiscriminator(nnx.Module):
    def __init__(self, in_dim: int, hidden, *, rngs: nnx.Rngs):
        dims = (in_dim, *hidden)
        self.hidden = nnx.List(
            [nnx.Linear(dims[i], dims[i + 1], rngs=rngs) for i in range(len(hidden))]
        )
        self.out = nnx.Linear(dims[-1], 1, rngs=rngs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = z.reshape(z.shape[0], -1)
        for layer in self.hidden:
            h = nnx.leaky_relu(layer(h), 0.2)
        return self.out(h)[:, 0]

"""Chen et al. 2019's variance network and its training target.

The network sees an image X and predicts, per pixel, the expected squared reconstruction
error ``E_{z ~ q(z|X)}[(g(z) - X)^2]``: how much healthy images vary around the model's
reconstruction there. ``lg_neural`` restoration uses it as the local Gaussian's diagonal
covariance.

Architecture as in the paper: four 3x3 conv layers with 8, 16, 8 and 1 channels at full
resolution, LeakyReLU on hidden layers. One deviation: the output goes through softplus
(plus a floor of 1e-6) instead of identity, so the predicted variance is positive by
construction and its inverse, which restoration needs, always exists.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.models.layers import conv

VARIANCE_FEATURES = (8, 16, 8)
MIN_VARIANCE = 1e-6


class VarianceNet(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        chans = (1, *VARIANCE_FEATURES)
        self.convs = nnx.List(
            [conv(chans[i], chans[i + 1], 3, rngs=rngs) for i in range(len(VARIANCE_FEATURES))]
        )
        self.out = conv(chans[-1], 1, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Predicted variance, [B, S, S, 1] -> [B, S, S, 1], every value > 0."""
        for c in self.convs:
            x = nnx.leaky_relu(c(x), 0.2)
        return jax.nn.softplus(self.out(x)) + MIN_VARIANCE


def decoder_samples(model, x: jax.Array, key: jax.Array, n: int) -> jax.Array:
    """g(z_l) for n draws z_l ~ q(z|x), all decoded in one batch: [n, B, S, S, 1].

    The noise for all draws is drawn at once (``normal(key, (n, *mean.shape))``), so draw
    l always uses ``eps[l]``. The B * n codes are decoded as one image-major batch (image
    b's draws side by side): when the images are split over devices
    (:mod:`jaxuad.distributed`) every device decodes only its own images' draws (a
    draw-major batch made XLA's partitioner gather all of it onto every device). It is a
    plain batch, not a ``vmap`` over the images, so layers that process a batch a few
    images at a time (:func:`jaxuad.models.cpu_conv.conv_to_one_channel`) see all of it.
    Deterministic encoders (plain AEs, AAE) give n copies of the reconstruction.
    """
    mean, logvar = model.encode(x)
    if logvar is None:
        return jnp.broadcast_to(model.decode(mean), (n, *x.shape))
    eps = jax.random.normal(key, (n, *mean.shape), mean.dtype)
    z = mean[:, None] + jnp.exp(0.5 * logvar)[:, None] * jnp.moveaxis(eps, 0, 1)  # [B, n, ...]
    g = model.decode(z.reshape(-1, *z.shape[2:]))
    return jnp.moveaxis(g.reshape(*z.shape[:2], *g.shape[1:]), 0, 1)  # -> [n, B, ...]


def variance_target(model, x: jax.Array, key: jax.Array, n: int) -> jax.Array:
    """Monte-Carlo estimate of ``E_{z ~ q(z|x)}[(g(z) - x)^2]`` from n samples: [B, S, S, 1]."""
    return jnp.mean(jnp.square(decoder_samples(model, x, key, n) - x), axis=0)

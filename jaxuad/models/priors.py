"""Latent priors: the standard normal of VAEs and the Gaussian mixture of GMVAE.

Both act per latent *position*: a spatial code [B, h, w, C] is h*w vectors of size C, each
drawn from the prior independently (a dense code [B, D] is one vector). Log densities and
KL terms are summed over positions, giving one value per image.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

LOG_2PI = math.log(2.0 * math.pi)


def per_image(v: jax.Array) -> jax.Array:
    """Sums everything but the leading (batch) axis: [B, ...] -> [B]."""
    return v.reshape(v.shape[0], -1).sum(-1)


def gaussian_log_prob(z: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """Elementwise log N(z; mean, exp(logvar)) (not summed)."""
    return -0.5 * (jnp.square(z - mean) * jnp.exp(-logvar) + logvar + LOG_2PI)


def kl_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) in closed form, summed per image: [B, ...] -> [B]."""
    return per_image(0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar))


class MixturePrior(nnx.Module):
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) over C-dimensional vectors, with learnt
    means, log-variances and mixture logits (the GMVAE prior of You et al. 2019).

    Means start spread as N(0, I) draws so that components are distinct from step 0.
    """

    def __init__(self, components: int, dim: int, *, rngs: nnx.Rngs):
        self.means = nnx.Param(jax.random.normal(rngs.params(), (components, dim)))
        self.logvars = nnx.Param(jnp.zeros((components, dim)))
        self.logits = nnx.Param(jnp.zeros((components,)))

    def log_prob(self, z: jax.Array) -> jax.Array:
        """log p(z) for vectors on the last axis: [..., C] -> [...]."""
        comp = gaussian_log_prob(z[..., None, :], self.means[...], self.logvars[...]).sum(-1)
        return jax.nn.logsumexp(comp + jax.nn.log_softmax(self.logits[...]), axis=-1)

    def sample(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """Draws vectors of shape ``shape + (C,)``: a component, then a Gaussian sample."""
        k_comp, k_eps = jax.random.split(key)
        comp = jax.random.categorical(k_comp, self.logits[...], shape=shape)
        mean, logvar = self.means[...][comp], self.logvars[...][comp]
        return mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_eps, mean.shape)

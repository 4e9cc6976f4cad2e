"""AnoGAN's model (Schlegl et al. 2017; Baur et al. 2018 train it with z = 64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import ModelConfig
from jaxuad.models.autoencoders import Decoder
from jaxuad.models.discriminators import ImageDiscriminator


class GAN(nnx.Module):
    """AnoGAN (Schlegl et al. 2017; Baur et al. 2018 use z = 64): a DCGAN-style generator
    and an :class:`ImageDiscriminator`.

    The generator maps z [B, z_dim] through a dense layer to an r x r x ``features[-1]``
    map (r = S / 2**len(features)) and then through the Baur decoder's upsampling stages.
    """

    def __init__(self, cfg: ModelConfig, image_size: int, *, rngs: nnx.Rngs, in_channels: int = 1):
        if in_channels != 1:
            raise ValueError("anogan generates single slices (in_channels must be 1)")
        n = len(cfg.features)
        if image_size % 2**n:
            raise ValueError(f"image_size {image_size} is not divisible by 2**{n}")
        self.z_dim = cfg.z_dim
        self.res = image_size // 2**n
        self.from_z = nnx.Linear(cfg.z_dim, self.res**2 * cfg.features[-1], rngs=rngs)
        self.generator = Decoder(cfg.features, cfg.kernel_size, [2] * n, residual=False, rngs=rngs)
        self.disc = ImageDiscriminator(image_size, cfg.disc_features, cfg.kernel_size, rngs=rngs)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.z_dim,)

    def generate(self, z: jax.Array) -> jax.Array:
        """G(z): [B, z_dim] -> [B, S, S, 1]."""
        h = nnx.leaky_relu(self.from_z(z), 0.2)
        return self.generator(h.reshape(z.shape[0], self.res, self.res, -1))

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """n images G(z), z ~ N(0, I)."""
        return self.generate(jax.random.normal(key, (n, self.z_dim), jnp.float32))

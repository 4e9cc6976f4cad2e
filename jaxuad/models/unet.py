"""The denoising autoencoder of Kascenas et al. 2022 (*Denoising autoencoders for
unsupervised anomaly detection in brain MRI*, MIDL): a UNet trained to remove *coarse*
noise, restored by one pass.

A UNet can copy its input through the skip connections, so as a plain autoencoder it
would reproduce lesions too. Trained instead to map ``x + n`` back to ``x``, where ``n``
is Gaussian noise drawn on a coarse grid and upsampled (:func:`coarse_noise`), it learns to
replace blob-shaped deviations from healthy anatomy by healthy tissue while keeping fine
detail, and at test time a lesion is such a deviation.

Architecture (after the paper, smaller by default for CPUs): ``len(features)`` levels;
each a block of two 3x3 convs, each followed by swish and GroupNorm; 2x2 average pooling
between levels; on the way up a 2x2 stride-2 transposed conv, the skip concatenated, a
block; a final 1x1 conv to one channel. Kascenas et al.: features 64-128-256-512, noise on
a 16x16 grid with sigma 0.2 (intensities scaled to the brain's 99th percentile), Adam 1e-4.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import ModelConfig
from jaxuad.models.autoencoders import AEOutput
from jaxuad.models.layers import UpConv, conv


def _groups(channels: int) -> int:
    """GroupNorm groups as in the paper: the middle divisor of ``channels``."""
    divisors = sorted(d for d in range(1, channels + 1) if channels % d == 0)
    return divisors[len(divisors) // 2]


class ConvBlock(nnx.Module):
    """Two 3x3 convs, each followed by swish and GroupNorm: [B, H, W, cin] -> [B, H, W, cout]."""

    def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
        self.conv_a = conv(cin, cout, 3, rngs=rngs)
        self.norm_a = nnx.GroupNorm(cout, num_groups=_groups(cout), rngs=rngs)
        self.conv_b = conv(cout, cout, 3, rngs=rngs)
        self.norm_b = nnx.GroupNorm(cout, num_groups=_groups(cout), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.norm_a(nnx.swish(self.conv_a(x)))
        return self.norm_b(nnx.swish(self.conv_b(x)))


def avg_pool2(x: jax.Array) -> jax.Array:
    """2x2 average pooling, stride 2: [B, H, W, C] -> [B, H/2, W/2, C]."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class UNet(nnx.Module):
    """A UNet denoiser with the autoencoders' interface (``model(x).recon``).

    ``encoder`` holds the down path's blocks, ``decoder`` the up path's transposed convs and
    blocks and ``out`` the final 1x1 conv: the parameter groups its training phase owns.
    ``in_channels`` > 1 takes neighbouring slices as channels and restores the centre one.

    Example:
      >>> import dataclasses, jax.numpy as jnp
      >>> from flax import nnx
      >>> cfg = ModelConfig(name="unet_dae", features=(4, 8), conv_impl="xla")
      >>> UNet(cfg, 16, rngs=nnx.Rngs(0))(jnp.ones((2, 16, 16, 1))).recon.shape
      (2, 16, 16, 1)
    """

    def __init__(self, cfg: ModelConfig, image_size: int, *, in_channels: int = 1,
                 rngs: nnx.Rngs):  # fmt: skip
        feats, levels = tuple(cfg.features), len(cfg.features)
        if image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size {image_size} is not divisible by 2**{levels - 1} "
                f"({levels} UNet levels, model.features)"
            )
        chans = (in_channels, *feats)
        self.encoder = nnx.List(
            [ConvBlock(chans[i], chans[i + 1], rngs=rngs) for i in range(levels)]
        )
        ups, blocks = [], []
        for i in reversed(range(levels - 1)):
            ups.append(UpConv(feats[i + 1], feats[i], 2, 2, rngs=rngs))
            blocks.append(ConvBlock(2 * feats[i], feats[i], rngs=rngs))
        self.decoder = nnx.List([nnx.List(pair) for pair in zip(ups, blocks, strict=True)])
        self.out = conv(feats[0], 1, 1, rngs=rngs)
        self.in_channels = in_channels

    generative = False
    variational = False

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> AEOutput:
        """Denoises x [B, S, S, in_channels] -> recon [B, S, S, 1] (``key`` unused: the
        pass is deterministic); ``mean`` and ``z`` hold the deepest feature map."""
        skips = []
        h = x
        for i, block in enumerate(self.encoder):
            h = block(h)
            if i < len(self.encoder) - 1:
                skips.append(h)
                h = avg_pool2(h)
        deepest = h
        for (up, block), skip in zip(self.decoder, reversed(skips), strict=True):
            h = block(jnp.concatenate([up(h), skip], axis=-1))
        return AEOutput(self.out(h), deepest, None, deepest)

    def kl(self, out: AEOutput) -> jax.Array:
        """No prior: zeros [B]."""
        return jnp.zeros(out.recon.shape[:1], out.recon.dtype)


def coarse_noise(key: jax.Array, shape, resolution: int, std: float) -> jax.Array:
    """Gaussian noise drawn on a coarse grid and upsampled bilinearly (Kascenas et al. 2022).

    Values are N(0, std^2) on a ``resolution`` x ``resolution`` grid per image and channel,
    bilinearly interpolated to the frame, so the noise is made of smooth blobs about
    S / resolution pixels across: most of its power lies below ``resolution / 2`` cycles
    per frame. The grid is one cell larger than the frame and cropped at a random offset
    per image, so blobs are not tied to fixed positions (the paper rolls the noise).

    Args:
      key: PRNG key.
      shape: (B, S, S, C) of the images the noise is added to.
      resolution: grid cells across the frame (paper: 16 at S = 128).
      std: standard deviation of the grid values (paper: 0.2).

    Returns:
      [B, S, S, C] float32 noise.

    Example:
      >>> import jax
      >>> coarse_noise(jax.random.key(0), (2, 32, 32, 1), 4, 0.2).shape
      (2, 32, 32, 1)
    """
    b, s, _, c = shape
    cell = -(-s // resolution)  # pixels per grid cell (ceil)
    k_grid, k_shift = jax.random.split(key)
    grid = std * jax.random.normal(k_grid, (b, resolution + 1, resolution + 1, c), jnp.float32)
    fine = jax.image.resize(grid, (b, (resolution + 1) * cell, (resolution + 1) * cell, c),
                            "bilinear")  # fmt: skip
    offsets = jax.random.randint(k_shift, (b, 2), 0, cell)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (s, s, c))

    return jax.vmap(crop)(fine, offsets)

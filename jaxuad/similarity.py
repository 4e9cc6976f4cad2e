"""SSIM (Wang et al. 2004): image similarity, for choosing lambda (Chen et al. 2019,
Sec. 2.3) and for measuring restorations. A stage of its own below restoration, which is
its first user."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    w = np.exp(-0.5 * (r / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("window", "sigma"))
def ssim(
    a: jax.Array,
    b: jax.Array,
    data_range: jax.Array,
    mask: jax.Array | None = None,
    window: int = 11,
    sigma: float = 1.5,
) -> jax.Array:
    """Mean SSIM (Wang et al. 2004) per image: [B, H, W, 1] x 2, data_range [B] -> [B].

    Gaussian-weighted local statistics (window 11, sigma 1.5, population covariances),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = ``data_range``, averaged over the positions
    where the whole window fits (as scikit-image crops its borders) and, given ``mask``
    ([B, H, W, 1] bool), whose centre lies inside it (NaN for an image with no such
    position). Separable convolutions, jitted.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.linspace(0, 1, 32 * 32).reshape(1, 32, 32, 1)
      >>> round(float(ssim(x, x, jnp.ones(1))[0]), 5)  # identical images
      1.0
      >>> bool(ssim(x, 1 - x, jnp.ones(1))[0] < 0)  # inverted: anti-correlated
      True
    """
    w = jnp.asarray(_gaussian_window(window, sigma))
    kh, kw = w.reshape(window, 1, 1, 1), w.reshape(1, window, 1, 1)
    dn = ("NHWC", "HWIO", "NHWC")

    def blur(x):
        x = jax.lax.conv_general_dilated(x, kh, (1, 1), "VALID", dimension_numbers=dn)
        return jax.lax.conv_general_dilated(x, kw, (1, 1), "VALID", dimension_numbers=dn)

    L = jnp.asarray(data_range, a.dtype).reshape(-1, 1, 1, 1)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    if mask is None:
        return s.mean(axis=(1, 2, 3))
    r = window // 2
    m = jnp.asarray(mask, bool)[:, r : a.shape[1] - r, r : a.shape[2] - r]
    return jnp.where(m, s, 0).sum(axis=(1, 2, 3)) / m.sum(axis=(1, 2, 3))

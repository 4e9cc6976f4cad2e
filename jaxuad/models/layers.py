"""The convolution layers of jaxuad's models, as plain Flax NNX modules.

Each layer holds the usual Flax parameters (``kernel`` [k, k, cin, cout], ``bias`` [cout])
and a static ``conv_impl``: ``"xla"`` runs the ``lax`` convolution, ``"cpu"`` the same
convolution by jaxuad's CPU kernels (:mod:`jaxuad.models.cpu_conv`), equal in value and
gradient and up to 16x faster per layer on XLA CPU. :func:`jaxuad.models.create` sets it on
every layer from ``model.conv_impl`` (:func:`resolve_conv_impl`: ``auto`` picks ``cpu`` on
the CPU backend, ``xla`` on GPU and TPU).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from flax import nnx
  >>> up = UpConv(4, 2, 3, rngs=nnx.Rngs(0))          # conv_impl="xla"
  >>> up(jnp.ones((1, 8, 8, 4))).shape
  (1, 16, 16, 2)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import CONV_IMPLS
from jaxuad.models import cpu_conv

NHWC = ("NHWC", "HWIO", "NHWC")


def resolve_conv_impl(impl: str = "auto") -> str:
    """``"cpu"`` or ``"xla"``: ``impl`` itself, or for ``"auto"`` the CPU kernels exactly when
    JAX's default backend is the CPU."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {', '.join(CONV_IMPLS)}, got {impl!r}")
    if impl == "auto":
        return "cpu" if jax.default_backend() == "cpu" else "xla"
    return impl


def he_normal(gain_sq: float = 2.0):
    """He initialisation for LeakyReLU stacks; without it a 10-layer autoencoder starts with
    outputs ~1e-4 of its inputs' spread and barely trains."""
    return nnx.initializers.variance_scaling(gain_sq, "fan_in", "truncated_normal")


class _StridedConv(nnx.Module):
    """``kernel`` [k, k, cin, cout] and ``bias`` [cout], as Flax's conv layers hold them."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int,
        stride: int = 2,
        *,
        rngs: nnx.Rngs,
        gain_sq: float = 2.0,
        conv_impl: str = "xla",
    ):
        self.stride = stride
        self.conv_impl = conv_impl
        self.kernel = nnx.Param(
            he_normal(gain_sq)(rngs.params(), (kernel_size, kernel_size, in_features, out_features))
        )
        self.bias = nnx.Param(jnp.zeros((out_features,)))


class DownConv(_StridedConv):
    """Stride-s convolution with ``SAME`` padding: [B, H, W, cin] -> [B, H/s, W/s, cout].
    Parameters match ``nnx.Conv``, He-initialised."""

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias, s = self.kernel[...].astype(x.dtype), self.bias[...], self.stride
        if self.conv_impl == "cpu":
            return cpu_conv.add_bias(cpu_conv.conv2d(x, kernel, s, "SAME"), bias)
        y = jax.lax.conv_general_dilated(x, kernel, (s, s), "SAME", dimension_numbers=NHWC)
        return y + bias.astype(y.dtype)


class UpConv(_StridedConv):
    """Stride-s transposed convolution with ``SAME`` padding: [B, H, W, cin] -> [B, H*s,
    W*s, cout]. Parameters match ``nnx.ConvTranspose``.

    Each output pixel sees only ~1/stride**2 of the k*k taps, so the He initialisation is
    scaled by stride**2 to keep activations at unit scale."""

    def __init__(self, in_features, out_features, kernel_size, stride=2, *, rngs, **kw):
        kw.setdefault("gain_sq", 2.0 * stride**2)
        super().__init__(in_features, out_features, kernel_size, stride, rngs=rngs, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias, s = self.kernel[...].astype(x.dtype), self.bias[...], self.stride
        if self.conv_impl == "cpu":
            return cpu_conv.add_bias(cpu_conv.conv_transpose_via_phases(x, kernel, s), bias)
        y = jax.lax.conv_transpose(x, kernel, (s, s), "SAME", dimension_numbers=NHWC)
        return y + bias.astype(y.dtype)


class Conv(nnx.Conv):
    """``nnx.Conv`` with a ``conv_impl``: on ``"cpu"``, the 2-D stride-1 convolutions
    jaxuad's models use (``SAME`` or ``VALID``, no dilation, groups or mask) run by
    :func:`jaxuad.models.cpu_conv.conv2d`; everything else is ``nnx.Conv`` itself."""

    def __init__(self, *args, conv_impl: str = "xla", **kw):
        super().__init__(*args, **kw)
        self.conv_impl = conv_impl

    def _cpu_kernels_apply(self, x: jax.Array) -> bool:
        return (
            self.conv_impl == "cpu"
            and x.ndim == 4
            and self.bias is not None
            and self.mask is None
            and self.padding in ("SAME", "VALID")
            and self.feature_group_count == 1
            and all(
                v in (None, 1) or (not isinstance(v, int) and tuple(v) == (1, 1))
                for v in (self.strides, self.input_dilation, self.kernel_dilation)
            )
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        if not self._cpu_kernels_apply(x):
            return super().__call__(x)
        y = cpu_conv.conv2d(x, self.kernel[...].astype(x.dtype), 1, self.padding)
        return cpu_conv.add_bias(y, self.bias[...])


def conv(cin: int, cout: int, k: int, *, rngs: nnx.Rngs, **kw) -> Conv:
    """A stride-1 ``SAME`` conv, He-initialised (``kernel_init`` may override)."""
    kw.setdefault("kernel_init", he_normal())
    return Conv(cin, cout, (k, k), padding="SAME", rngs=rngs, **kw)


def upsample_nearest(x: jax.Array, s: int) -> jax.Array:
    """[B, H, W, C] -> [B, H*s, W*s, C], each pixel repeated s x s."""
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, s, w, s, c))
    return x.reshape(b, h * s, w * s, c)


class ResBlock(nnx.Module):
    """Residual block (Chen et al. 2019): ``act(conv_b(act(conv_a(x))) + skip(x))``.

    ``direction`` "down" halves the resolution (``conv_a`` is a stride-2 :class:`DownConv`,
    the skip a 1x1 conv of the stride-2 subsampled input, as in ResNet); "up" doubles it
    (``conv_a`` is an :class:`UpConv`, the skip a 1x1 conv, nearest-upsampled); "same"
    keeps it (identity skip when the channels agree).
    """

    def __init__(self, cin: int, cout: int, k: int, direction: str, *, rngs: nnx.Rngs):
        if direction not in ("down", "up", "same"):
            raise ValueError(f"direction must be down, up or same, got {direction!r}")
        self.direction = direction
        if direction == "down":
            self.conv_a = DownConv(cin, cout, k, 2, rngs=rngs)
        elif direction == "up":
            self.conv_a = UpConv(cin, cout, k, 2, rngs=rngs)
        else:
            self.conv_a = conv(cin, cout, k, rngs=rngs)
        # The block's output starts as its skip path: conv_b is small, so deep stacks
        # start close to (projected) identity maps and train from step 0.
        self.conv_b = conv(cout, cout, k, rngs=rngs, kernel_init=he_normal(0.1))
        self.skip = None if direction == "same" and cin == cout else conv(cin, cout, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv_b(nnx.leaky_relu(self.conv_a(x), 0.2))
        s = x
        if self.direction == "down":
            s = s[:, ::2, ::2]
        if self.skip is not None:
            s = self.skip(s)
        if self.direction == "up":
            s = upsample_nearest(s, 2)
        return nnx.leaky_relu(h + s, 0.2)

"""Order-preserving integer keys of float32 values (for radix selection and histograms)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_SIGN = jnp.uint32(0x80000000)


def sortable_keys(x: jax.Array) -> jax.Array:
    """float32 -> uint32 whose unsigned order is the floats' order (-0.0 sorts just below
    +0.0; inputs must be finite)."""
    b = lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    return jnp.where(b >= _SIGN, ~b, b | _SIGN)


def from_sortable_keys(k: jax.Array) -> jax.Array:
    """Inverse of :func:`sortable_keys`."""
    b = jnp.where(k >= _SIGN, k & ~_SIGN, ~k)
    return lax.bitcast_convert_type(b, jnp.float32)

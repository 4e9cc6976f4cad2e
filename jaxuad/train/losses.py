"""Training objectives. Each takes ``(model, batch, key, cfg)`` and returns
``(loss, metrics)`` with scalar metrics, so the one train step serves every model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import TrainConfig


def kl_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latent dims: [B, ...] -> [B]."""
    kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
    return kl.reshape(kl.shape[0], -1).sum(-1)


def autoencoder_loss(model: nnx.Module, x: jax.Array, key: jax.Array, cfg: TrainConfig):
    """Baur et al. 2018: L = ||x - x_hat||_1 (+ kl_weight * KL for VAEs), per image, batch mean.

    Args:
      x: [B, S, S, 1] images.
    Returns:
      loss: [] scalar; metrics: dict of [] scalars (loss, l1, kl).
    """
    out = model(x, key=key)
    l1 = jnp.abs(x - out.recon).reshape(x.shape[0], -1).sum(-1)  # [B]
    kl = kl_standard_normal(out.mean, out.logvar) if out.logvar is not None else jnp.zeros_like(l1)
    loss = jnp.mean(l1 + cfg.kl_weight * kl)
    return loss, {"loss": loss, "l1": l1.mean(), "kl": kl.mean()}


def loss_for(model_name: str):
    """The objective that trains registry model ``model_name``."""
    if model_name in ("dae", "sae", "dvae", "svae"):
        return autoencoder_loss
    raise ValueError(f"no loss registered for model {model_name!r}")

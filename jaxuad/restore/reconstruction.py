"""Reconstruction (Baur et al. 2018): one deterministic encode-decode pass per image."""

from __future__ import annotations

import jax
from flax import nnx


def latent_description(config) -> str:
    """Baur's "z" column: ``512`` for dense bottlenecks, ``8x8x64`` for spatial ones."""
    from jaxuad.models import REGISTRY

    m = config.model
    if getattr(REGISTRY[m.name], "keywords", {}).get("bottleneck", "dense") == "dense":
        return str(m.z_dim)
    return f"{m.bottleneck_res}x{m.bottleneck_res}x{m.z_channels}"


def make_reconstruct(graphdef: nnx.GraphDef):
    """``fn(params, x) -> x_hat`` compiled once: deterministic encode-decode (VAEs use the
    posterior mean), x: [B, S, S, 1]."""

    @jax.jit
    def reconstruct(params, x):
        return nnx.merge(graphdef, params)(x).recon

    return reconstruct

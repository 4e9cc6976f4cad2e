"""Reconstruction (Baur et al. 2018): one deterministic encode-decode pass per image
(computed by :func:`jaxuad.restore.cohort.make_restorer`); how its runs are described."""

from __future__ import annotations


def latent_description(config) -> str:
    """Baur's "z" column: ``512`` for dense bottlenecks, ``8x8x64`` for spatial ones."""
    from jaxuad.models import REGISTRY

    m = config.model
    if getattr(REGISTRY[m.name], "keywords", {}).get("bottleneck", "dense") == "dense":
        return str(m.z_dim)
    return f"{m.bottleneck_res}x{m.bottleneck_res}x{m.z_channels}"

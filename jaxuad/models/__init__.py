"""Model registry: name -> factory(ModelConfig, image_size, rngs=...) -> nnx.Module.

Every model is called as ``model(x, key=...)`` and returns a struct with at least ``recon``;
:func:`jaxuad.train.losses.loss_for` gives its training loss.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from flax import nnx

from jaxuad.config import ModelConfig
from jaxuad.models.autoencoders import AEOutput, Autoencoder
from jaxuad.models.layers import UpConv, conv_transpose_via_phases

REGISTRY: dict[str, Callable[..., nnx.Module]] = {
    "dae": functools.partial(Autoencoder, bottleneck="dense", variational=False),
    "sae": functools.partial(Autoencoder, bottleneck="spatial", variational=False),
    "dvae": functools.partial(Autoencoder, bottleneck="dense", variational=True),
    "svae": functools.partial(Autoencoder, bottleneck="spatial", variational=True),
}


def create(cfg: ModelConfig, image_size: int, *, rngs: nnx.Rngs) -> nnx.Module:
    if cfg.name not in REGISTRY:
        raise ValueError(f"unknown model {cfg.name!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[cfg.name](cfg, image_size, rngs=rngs)


__all__ = ["REGISTRY", "AEOutput", "Autoencoder", "UpConv", "conv_transpose_via_phases", "create"]

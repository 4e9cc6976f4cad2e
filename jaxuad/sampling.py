"""Sampling from the prior of a trained generative model.

Works for every model whose spec is ``generative`` (:func:`jaxuad.models.model_names`
lists them): the VAEs, the GMVAE (a mixture component, then a Gaussian draw, per latent
position), the AAE (N(0, I), the distribution its discriminator pushed codes towards) and
AnoGAN. Plain autoencoders have no prior and are refused.

Example::

    from jaxuad.sampling import sample_run
    images = sample_run("runs/svae", 16, seed=0)   # [16, S, S] numpy, normalised units
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jaxuad.config import ConfigError
from jaxuad.models import MODELS, model_spec


def make_sampler(graphdef: nnx.GraphDef):
    """``fn(params, key, n) -> [n, S, S, 1]``, jitted (``n`` static)."""

    @partial(jax.jit, static_argnums=2)
    def sample(params, key, n):
        return nnx.merge(graphdef, params).sample(key, n)

    return sample


def sample_run(workdir: str | Path, n: int, *, seed: int = 0, step: int | None = None):
    """n images drawn from the prior of the model trained in ``workdir``: [n, S, S] numpy."""
    from jaxuad.train import load_run

    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")
    run = load_run(workdir, step)
    config, graphdef, params = run.config, run.graphdef, run.params
    if not model_spec(config.model.name).generative:
        generative = [n for n, s in MODELS.items() if s.generative]
        raise ConfigError(
            f"{workdir}: {config.model.name} is not a generative model (no prior to sample "
            f"from); sampling works for {', '.join(generative)}"
        )
    images = make_sampler(graphdef)(params, config.train.key(seed), n)
    return np.asarray(images[..., 0])

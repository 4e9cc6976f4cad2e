"""The model registry: one :class:`ModelSpec` per model jaxuad can train.

A spec says everything the rest of jaxuad needs to know about a model, so that adding one
is one :func:`register_model` call: how to build it, which training scheme trains it
(a name in :data:`jaxuad.train.schemes.SCHEMES`), what it can do (encode, sample, give a
variational posterior) and so which restoration methods accept it, how to label its
latent, and the cross-field checks its config must pass. Model names, lists of generative
models and the like are read from here, never written out elsewhere.

Example (a model of your own, from your own code)::

    from jaxuad.models import ModelSpec, register_model
    register_model(ModelSpec("my_ae", build=MyAE, scheme="autoencoder", encoder=True,
                             summary="my autoencoder", paper="me 2026"))
    # then: jaxuad-train --model my_config.py, whose get_config sets model.name="my_ae"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from jaxuad.config import Config, ConfigError, register_check, register_legacy
from jaxuad.core.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
      name: the registry key (``model.name``).
      build: ``build(cfg: ModelConfig, image_size: int, *, in_channels: int, rngs) ->
        nnx.Module``; None for a baseline without a network (its scheme fits it).
      scheme: the name of its training scheme in :data:`jaxuad.train.schemes.SCHEMES`.
      summary: one line for tables and ``--help``.
      paper: where it comes from.
      encoder: it maps images to codes (``encode``/``decode``): autoencoding methods apply.
      variational: it has a posterior q(z|x) and an ELBO (local Gaussian, MAP).
      prior: ``"normal"`` or ``"mixture"`` for models with a prior over codes, else None.
      generative: it can draw images from a prior (``sample(key, n)``).
      generator: it is a generator G(z) without an encoder (latent search).
      latent: ``latent(model_config) -> str``, its code's size for tables (``8x8x64``).
      check: ``check(config)`` raises :class:`ConfigError` for settings it cannot be
        built with (an image size its bottleneck does not divide, ...).
      legacy: {section: {key: value}} for keys that runs of this model stored by earlier
        jaxuad versions lack, set to what those runs did (so they load and resume as
        trained).
    """

    name: str
    build: Callable | None
    scheme: str
    summary: str
    paper: str
    encoder: bool = False
    variational: bool = False
    prior: str | None = None
    generative: bool = False
    generator: bool = False
    latent: Callable | None = None
    check: Callable[[Config], None] | None = None
    legacy: dict = field(default_factory=dict)

    @property
    def network(self) -> bool:
        """Whether it is a trained network (not a voxel-wise baseline)."""
        return self.build is not None


MODELS = Registry("model", "model.name")
register_model = MODELS.register
model_spec = MODELS.spec


def model_names(*, network: bool | None = None) -> tuple[str, ...]:
    """Registered model names, in registration order; only networks or only baselines
    with ``network``."""
    return tuple(n for n, s in MODELS.items() if network is None or s.network == network)


@register_check
def _check_model(config: Config) -> None:
    """Config-time checks: the model exists, and its own cross-field checks pass."""
    spec = model_spec(config.model.name)
    if config.model.variance_net and not spec.encoder:
        raise ConfigError(f"model.variance_net: {spec.name} has no encoder, so no variance network")
    if config.data.context_slices > 1 and (config.model.variance_net or spec.generator):
        raise ConfigError(
            f"data.context_slices: {spec.name}"
            + (" with a variance network" if config.model.variance_net else "")
            + " restores single slices (context_slices=1)"
        )
    if spec.check is not None:
        spec.check(config)


@register_legacy
def _fill_legacy(stored: dict) -> dict:
    spec = MODELS.get(stored.get("model", {}).get("name"))
    if spec is None or not spec.legacy:
        return stored
    out = dict(stored)
    for section, values in spec.legacy.items():
        out[section] = {**values, **stored.get(section, {})}
    return out

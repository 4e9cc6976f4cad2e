"""Models: Flax NNX modules and the registry that names them (:mod:`.registry`; the
models jaxuad ships are listed in :mod:`.builtin`).

Autoencoding models are called as ``model(x, key=...)`` and return an :class:`AEOutput`;
generative models (VAEs, GMVAE, AAE, AnoGAN) also have ``sample(key, n)``. A model's
training scheme is named by its spec (:data:`jaxuad.train.schemes.SCHEMES`). Any
autoencoding model gets Chen et al.'s variance network with ``model.variance_net``.

The registry loads without JAX (``jaxuad-train --help`` lists it); the modules load on
first use.
"""

from __future__ import annotations

from jaxuad.config import ModelConfig
from jaxuad.core.lazy import module_getattr
from jaxuad.models import builtin  # noqa: F401  (registers the shipped models)
from jaxuad.models.registry import MODELS, ModelSpec, model_names, model_spec, register_model

_LAZY = {
    "AEOutput": "jaxuad.models.autoencoders",
    "Autoencoder": "jaxuad.models.autoencoders",
    "GAN": "jaxuad.models.gan",
    "UNet": "jaxuad.models.unet",
    "resolve_conv_impl": "jaxuad.models.layers",
}


__getattr__ = module_getattr(__name__, _LAZY)


def create(cfg: ModelConfig, image_size: int, *, rngs, in_channels: int = 1):
    """The model ``cfg.name`` (an ``nnx.Module``) for [B, image_size, image_size,
    in_channels] inputs, its convolutions computed as ``cfg.conv_impl`` says
    (:func:`~jaxuad.models.layers.resolve_conv_impl`).

    Example:
      >>> import dataclasses
      >>> from flax import nnx
      >>> from jaxuad.config import load_config
      >>> cfg = dataclasses.replace(load_config("svae", "smoke").model, conv_impl="xla")
      >>> model = create(cfg, 32, rngs=nnx.Rngs(0))
      >>> model.decoder.out.conv_impl
      'xla'
    """
    from jaxuad.models.layers import resolve_conv_impl

    spec = model_spec(cfg.name)
    if spec.build is None:
        raise ValueError(f"{cfg.name} is a baseline without a network; nothing to create")
    model = spec.build(cfg, image_size, in_channels=in_channels, rngs=rngs)
    model.set_attributes(conv_impl=resolve_conv_impl(cfg.conv_impl), raise_if_not_found=False)
    return model


model_table = MODELS.table


__all__ = [
    "GAN",
    "MODELS",
    "AEOutput",
    "Autoencoder",
    "ModelSpec",
    "UNet",
    "create",
    "model_names",
    "model_spec",
    "model_table",
    "register_model",
    "resolve_conv_impl",
]

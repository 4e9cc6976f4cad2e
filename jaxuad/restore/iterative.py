"""Iterative restoration (Chen et al. 2019; You et al. 2019; Schlegl et al. 2017), every
method one ``lax.scan`` over iterations, batched over images, jit-compatible.

Restoration looks for the healthy image X closest to the observation Y:

* ``lg_est`` / ``lg_neural`` (local Gaussian, Chen et al. Eq. 4). Each step descends
  ``1/2 (X - mu)^T Sigma^-1 (X - mu) + lam R(Y, X)`` with mu and Sigma held fixed at the
  current X: direction ``-[Sigma^-1 (X - mu) + lam grad_X R(Y, X)]``. mu is the mean of
  g(z_l) over L draws z_l ~ q(z|X), decoded as one batch; Sigma is their
  per-pixel sample variance (``est``) or the variance network's prediction (``neural``).
  (Eq. 4 writes ``+lam grad R`` because there R is log P(Y|X); here R is a cost.)
* ``map`` / ``gmvae_map`` (You et al.): the direction is ``grad_X [-ELBO(X)] + lam grad_X
  R(Y, X)``, with the model's negative ELBO (:func:`jaxuad.train.losses.negative_elbo`;
  GMVAE's against its mixture prior).
* ``anogan`` (Schlegl et al.): search z so that G(z) matches Y, minimising ``(1 - a)
  ||Y - G(z)||_1 + a ||f(Y) - f(G(z))||_1`` with f the discriminator's last conv features
  (a = ``anogan_feature_weight``); the restoration is G(z*).

R is ``tv``: the total variation of X - Y, smoothed to ``sum sqrt(dx^2 + dy^2 + eps^2) -
eps`` (forward differences, so it is differentiable at 0), or ``l1``: ``||X - Y||_1``.
Steps are Adam (optax) on X; gradients and updates are confined to the brain mask, so X
equals Y outside it. The PRNG key is explicit: the same key gives the same restoration.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxuad.config import (
    BASELINE_METHODS,
    ITERATIVE_METHODS,
    RESTORE_METHODS,
    ConfigError,
    RestoreConfig,
    TrainConfig,
)
from jaxuad.models.priors import per_image
from jaxuad.models.variance import decoder_samples

ITERATIVE = ITERATIVE_METHODS


def tv(d: jax.Array, eps: float) -> jax.Array:
    """Smoothed isotropic total variation per image: [B, S, S, 1] -> [B]."""
    dx = d[:, 1:, :-1] - d[:, :-1, :-1]
    dy = d[:, :-1, 1:] - d[:, :-1, :-1]
    return per_image(jnp.sqrt(dx * dx + dy * dy + eps * eps) - eps)


def prior_cost(kind: str, y: jax.Array, x: jax.Array, eps: float) -> jax.Array:
    """R(Y, X) per image [B]: ``tv`` of X - Y or ``l1`` = ||X - Y||_1."""
    if kind == "tv":
        return tv(x - y, eps)
    if kind == "l1":
        return per_image(jnp.abs(x - y))
    raise ConfigError(f"restore.prior must be tv or l1, got {kind!r}")


def local_gaussian(model, x: jax.Array, key: jax.Array, samples: int, variance: str, floor):
    """(mu, Sigma) of the local Gaussian at x, each [B, S, S, 1]."""
    g = decoder_samples(model, x, key, samples)  # [L, B, S, S, 1], one batch of B * L
    mu = g.mean(0)
    if variance == "est":
        var = g.var(0, ddof=1)
    elif variance == "neural":
        var = model.var_net(x)
    else:
        raise ValueError(f"variance must be est or neural, got {variance!r}")
    return mu, jnp.maximum(var, floor)


class Restoration(NamedTuple):
    """An iterative restoration's result."""

    x: jax.Array  # [B, S, S, 1] the restored images
    cost: jax.Array  # [steps] mean data term per image over the run (for convergence plots)


def check_method(method: str, model) -> None:
    """Raises ConfigError unless ``model`` can be restored with ``method`` (any of
    :data:`~jaxuad.config.RESTORE_METHODS`, reconstruction included)."""
    if method not in RESTORE_METHODS:
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(RESTORE_METHODS)}")
    if method in BASELINE_METHODS:
        raise ConfigError(
            f"{method} is a voxel-wise baseline without a model: use restore_cohort or "
            "jaxuad.restore.baselines"
        )
    if method == "lg_neural" and not getattr(model, "has_variance_net", False):
        raise ConfigError(
            "lg_neural needs a model trained with a variance network "
            "(jaxuad-train --variance-net, or model.variance_net=true)"
        )
    if method == "gmvae_map" and getattr(model, "prior_kind", None) != "mixture":
        raise ConfigError("gmvae_map needs a gmvae run")
    if method in ("map", "gmvae_map") and not getattr(model, "variational", False):
        raise ConfigError(f"{method} needs a variational model (its ELBO)")
    if method == "anogan" and not hasattr(model, "generate"):
        raise ConfigError("anogan restoration needs an anogan run")
    if method != "anogan" and not hasattr(model, "encode"):
        raise ConfigError(
            f"{method} needs an autoencoding model (this one has no encoder); "
            "use --method anogan (iterative latent search)"
        )


def restore(
    method: str,
    model,
    y: jax.Array,
    mask: jax.Array,
    key: jax.Array,
    cfg: RestoreConfig,
    lam: jax.Array | float | None = None,
    train_cfg: TrainConfig | None = None,
    x0: jax.Array | None = None,
) -> Restoration:
    """Restores a batch. jit-compatible (``method``, ``cfg`` and ``train_cfg`` static).

    Args:
      method: ``reconstruction`` (one encode-decode pass; mask, key and lam unused) or
        one of :data:`ITERATIVE`.
      model: the trained model (an ``nnx.Module``, e.g. ``nnx.merge(graphdef, params)``).
      y: [B, S, S, 1] observed images, normalised as in training.
      mask: [B, S, S, 1] brain mask (1 inside); X only changes inside it.
      key: PRNG key.
      cfg: steps, learning rate, prior, samples, ... (:class:`RestoreConfig`).
      lam: weight of R, a scalar or one per image ([B]), so a lambda grid is one batch.
        Default: ``cfg.lam``; an error when both are None (``anogan`` needs none).
      train_cfg: the run's training config: reconstruction loss and KL weight of the
        ELBO; required for ``map`` / ``gmvae_map`` (Baur's and Chen's ELBOs differ, so
        there is no default).

    Raises:
      ConfigError: an unknown method, a model without what the method needs, no lambda,
        or ``map``/``gmvae_map`` without ``train_cfg``.
      x0: the starting image (default: X0 = Y, as Chen et al.).
    """
    check_method(method, model)
    if method == "reconstruction":  # Baur et al.: one encode-decode pass
        return Restoration(model(y).recon, jnp.zeros((0,), y.dtype))
    mask = mask.astype(y.dtype)
    if method == "anogan":
        return _anogan(model, y, key, cfg)
    lam = cfg.lam if lam is None else lam
    if lam is None:
        raise ConfigError(
            f"{method}: no lambda; pass lam= or set restore.lam (jaxuad-restore --calibrate "
            "finds one)"
        )
    if method in ("map", "gmvae_map") and train_cfg is None:
        raise ConfigError(f"{method}: pass train_cfg=, the run's TrainConfig (its ELBO)")
    lam = jnp.broadcast_to(jnp.asarray(lam, y.dtype), y.shape[:1])[:, None, None, None]
    if method in ("map", "gmvae_map"):
        from jaxuad.train.losses import negative_elbo

        tc = train_cfg

        def data_grad(x, k):
            cost, g = jax.value_and_grad(lambda x: negative_elbo(model, x, k, tc).sum())(x)
            return g, cost / x.shape[0]
    else:
        variance = "est" if method == "lg_est" else "neural"

        def data_grad(x, k):
            mu, var = local_gaussian(model, x, k, cfg.samples, variance, cfg.min_variance)
            d = x - mu
            return d / var, jnp.mean(per_image(d * d / var)) / 2

    def prior_grad(x):
        return jax.grad(lambda x: prior_cost(cfg.prior, y, x, cfg.tv_eps).sum())(x)

    tx = optax.adam(cfg.learning_rate)

    def body(carry, i):
        x, opt = carry
        g, cost = data_grad(x, jax.random.fold_in(key, i))
        g = jax.lax.stop_gradient(g + lam * prior_grad(x)) * mask
        updates, opt = tx.update(g, opt, x)
        return (x + updates * mask, opt), cost

    x0 = y if x0 is None else x0
    (x, _), costs = jax.lax.scan(body, (x0, tx.init(x0)), jnp.arange(cfg.steps))
    return Restoration(x, costs)


def _anogan(model, y: jax.Array, key: jax.Array, cfg: RestoreConfig) -> Restoration:
    a = cfg.anogan_feature_weight
    f_y = model.disc.features(y)

    def loss(z):
        g = model.generate(z)
        res = per_image(jnp.abs(y - g))
        disc = jnp.abs(f_y - model.disc.features(g)).sum(-1)
        return jnp.sum((1 - a) * res + a * disc)

    tx = optax.adam(cfg.anogan_learning_rate)
    z0 = jax.random.normal(key, (y.shape[0], *model.latent_shape), y.dtype)

    def body(carry, _):
        z, opt = carry
        value, g = jax.value_and_grad(loss)(z)
        updates, opt = tx.update(g, opt, z)
        return (z + updates, opt), value / y.shape[0]

    (z, _), costs = jax.lax.scan(body, (z0, tx.init(z0)), None, length=cfg.anogan_steps)
    return Restoration(model.generate(z), costs)


def iterations(method: str, cfg: RestoreConfig) -> int:
    """How many iterations ``method`` runs under ``cfg`` (for time per iteration)."""
    return cfg.anogan_steps if method == "anogan" else cfg.steps


def lg(
    model,
    y: jax.Array,
    mask: jax.Array,
    key: jax.Array,
    *,
    prior: str = "tv",
    lam: jax.Array | float = 1.0,
    steps: int = 800,
    variance: str = "neural",
    learning_rate: float = 5e-3,
    samples: int = 16,
) -> jax.Array:
    """Local-Gaussian restoration of a batch y [B, S, S, 1] (Chen et al. 2019): ``variance``
    "neural" (the model's variance network) or "est" (sample variance of the L decoder
    samples). jit it with ``static_argnames=("prior", "steps", "variance", "samples")``."""
    cfg = RestoreConfig(prior=prior, steps=steps, learning_rate=learning_rate, samples=samples)
    method = {"neural": "lg_neural", "est": "lg_est"}[variance]
    return restore(method, model, y, mask, key, cfg, lam).x

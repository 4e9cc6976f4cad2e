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
* ``mahalanobis`` (Behrendt et al. 2024): no descent; the per-pixel deviation of Y from
  the L decoder samples, (Y - mu) / sigma, written as the restoration Y minus it
  (:func:`sample_deviation`).
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

from jaxuad.config import ConfigError, RestoreConfig, TrainConfig
from jaxuad.models.priors import per_image
from jaxuad.models.variance import decoder_samples


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


def reconstruct(model, y, mask, key, cfg, lam=None, train_cfg=None) -> Restoration:
    """Baur et al. 2018: one deterministic pass, ``model(y).recon`` (mask, key and lam
    unused; a denoising UNet's pass is its restoration too)."""
    return Restoration(model(y).recon, jnp.zeros((0,), y.dtype))


def sample_deviation(model, y, mask, key, cfg, lam=None, train_cfg=None) -> Restoration:
    """Behrendt et al. 2024's Mahalanobis-type score over L decoder samples, written as a
    restoration. With mu and Sigma the mean and per-pixel sample variance of g(z_l),
    z_l ~ q(z|Y), l = 1..L (``cfg.samples``; Sigma floored at ``cfg.min_variance``), the
    restoration is ``X = Y - (Y - mu) / sqrt(Sigma)`` inside the mask (Y outside), so the
    residual Y - X is the per-pixel (diagonal) Mahalanobis deviation ``(Y - mu) / sigma``
    of the scan from what the model draws for it: large where the scan leaves the spread of
    the model's samples, not merely their mean. X itself is a score, not an image."""
    mu, var = local_gaussian(model, y, key, cfg.samples, "est", cfg.min_variance)
    x = y - (y - mu) * jax.lax.rsqrt(var)
    return Restoration(jnp.where(mask > 0, x, y), jnp.zeros((0,), y.dtype))


def _lambda(method: str, lam, cfg: RestoreConfig, y: jax.Array) -> jax.Array:
    lam = cfg.lam if lam is None else lam
    if lam is None:
        raise ConfigError(
            f"{method}: no lambda; pass lam= or set restore.lam (jaxuad-restore --calibrate "
            "finds one)"
        )
    return jnp.broadcast_to(jnp.asarray(lam, y.dtype), y.shape[:1])[:, None, None, None]


def _descend(data_grad, y, mask, key, cfg: RestoreConfig, lam, x0=None) -> Restoration:
    """``cfg.steps`` Adam steps on X from X0 = Y (or ``x0``) along ``data_grad(x, key) +
    lam grad_X R(Y, X)``, inside the brain mask, as one ``lax.scan``."""
    mask = mask.astype(y.dtype)

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


def local_gaussian_restoration(
    variance: str, model, y, mask, key, cfg, lam=None, train_cfg=None, x0=None
) -> Restoration:
    """Chen et al. 2019, Eq. 4: LG(est) with ``variance="est"``, LG(neural) with
    ``"neural"`` (the module docstring has the step)."""
    lam = _lambda(f"lg_{variance}", lam, cfg, y)

    def data_grad(x, k):
        mu, var = local_gaussian(model, x, k, cfg.samples, variance, cfg.min_variance)
        d = x - mu
        return d / var, jnp.mean(per_image(d * d / var)) / 2

    return _descend(data_grad, y, mask, key, cfg, lam, x0)


def lg_est_restoration(model, y, mask, key, cfg, lam=None, train_cfg=None, x0=None):
    """VAE-LG(est): :func:`local_gaussian_restoration` with the samples' variance."""
    return local_gaussian_restoration("est", model, y, mask, key, cfg, lam, train_cfg, x0)


def lg_neural_restoration(model, y, mask, key, cfg, lam=None, train_cfg=None, x0=None):
    """VAE-LG(neural): :func:`local_gaussian_restoration` with the variance network."""
    return local_gaussian_restoration("neural", model, y, mask, key, cfg, lam, train_cfg, x0)


def map_restoration(model, y, mask, key, cfg, lam=None, train_cfg=None, x0=None) -> Restoration:
    """You et al. 2019 (Chen's VAE-MAP / GMVAE-MAP baselines): descend the model's
    negative ELBO plus ``lam R``; the ELBO's likelihood is the run's (``train_cfg``)."""
    from jaxuad.train.losses import negative_elbo

    if train_cfg is None:
        raise ConfigError("MAP restoration: pass train_cfg=, the run's TrainConfig (its ELBO)")
    lam = _lambda("MAP restoration", lam, cfg, y)

    def data_grad(x, k):
        cost, g = jax.value_and_grad(lambda x: negative_elbo(model, x, k, train_cfg).sum())(x)
        return g, cost / x.shape[0]

    return _descend(data_grad, y, mask, key, cfg, lam, x0)


def latent_search(model, y, mask, key, cfg, lam=None, train_cfg=None) -> Restoration:
    """Schlegl et al. 2017 (AnoGAN): z* = argmin (1 - a) ||Y - G(z)||_1 + a ||f(Y) -
    f(G(z))||_1 by ``restore.anogan_steps`` Adam steps from z ~ N(0, I); returns G(z*)."""
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
    """Restores a batch with the registered ``method`` (:data:`jaxuad.restore.METHODS`).
    jit-compatible (``method``, ``cfg`` and ``train_cfg`` static).

    Args:
      method: a network method, e.g. ``reconstruction`` (one pass; mask, key and lam
        unused), ``lg_est``, ``lg_neural``, ``map``, ``gmvae_map``, ``anogan``.
      model: the trained model (an ``nnx.Module``, e.g. ``nnx.merge(graphdef, params)``).
      y: [B, S, S, C] observed images, normalised as in training (C neighbouring slices).
      mask: [B, S, S, 1] brain mask (1 inside); X only changes inside it.
      key: PRNG key.
      cfg: steps, learning rate, prior, samples, ... (:class:`RestoreConfig`).
      lam: weight of R, a scalar or one per image ([B]), so a lambda grid is one batch.
        Default: ``cfg.lam``; an error when both are None for a method that needs one.
      train_cfg: the run's training config: reconstruction loss and KL weight of the
        ELBO; required for ``map`` / ``gmvae_map`` (Baur's and Chen's ELBOs differ, so
        there is no default).
      x0: the starting image of a descent (default: X0 = Y, as Chen et al.).

    Returns:
      :class:`Restoration`: x [B, S, S, 1], the per-step cost.

    Raises:
      ConfigError: an unknown method, a voxel-wise one, no lambda, or ``map``/``gmvae_map``
        without ``train_cfg``.
    """
    from jaxuad.restore.methods import method_spec

    spec = method_spec(method)
    spec.check_model(model)
    extra = {} if x0 is None else {"x0": x0}
    return spec.restore(model, y, mask, key, cfg, lam, train_cfg, **extra)


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
    return local_gaussian_restoration(variance, model, y, mask, key, cfg, lam).x

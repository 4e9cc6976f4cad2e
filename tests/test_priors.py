"""Latent priors against independent references (issue 27, item 3): the Gaussian KL against
its textbook closed form and a Monte Carlo estimate, the mixture density against
scipy.stats, and the mixture's samples against its moments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy import stats

from jaxuad.models.priors import MixturePrior, gaussian_log_prob, kl_standard_normal


def test_gaussian_log_prob_is_scipys_normal_density():
    rng = np.random.default_rng(0)
    z, mean, logvar = rng.normal(size=(3, 4, 5))
    want = stats.norm(mean, np.exp(0.5 * logvar)).logpdf(z)
    np.testing.assert_allclose(gaussian_log_prob(z, mean, logvar), want, rtol=1e-5, atol=1e-5)


def test_kl_to_the_standard_normal_closed_form_and_monte_carlo():
    """KL(N(m, s^2) || N(0, 1)) = log(1/s) + (s^2 + m^2)/2 - 1/2 per dimension, summed per
    image; and the Monte Carlo mean of log q(z) - log p(z) over draws z ~ q."""
    rng = np.random.default_rng(1)
    mean = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    logvar = rng.normal(scale=0.5, size=mean.shape).astype(np.float32)
    s = np.exp(0.5 * logvar.astype(np.float64))
    textbook = (np.log(1 / s) + (s**2 + mean**2) / 2 - 0.5).reshape(2, -1).sum(-1)
    got = np.asarray(kl_standard_normal(mean, logvar))
    np.testing.assert_allclose(got, textbook, rtol=1e-5)
    z = mean + s * rng.normal(size=(200_000, *mean.shape[1:]))[:, None]  # [N, B, ...]
    log_q = stats.norm(mean, s).logpdf(z)
    log_p = stats.norm(0, 1).logpdf(z)
    mc = (log_q - log_p).reshape(z.shape[0], 2, -1).sum(-1).mean(0)
    np.testing.assert_allclose(got, mc, rtol=0.02)


def _mixture(components=3, dim=2, seed=0) -> MixturePrior:
    prior = MixturePrior(components, dim, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    prior.means[...] = jnp.asarray(rng.normal(scale=2.0, size=(components, dim)), jnp.float32)
    prior.logvars[...] = jnp.asarray(rng.normal(scale=0.4, size=(components, dim)), jnp.float32)
    prior.logits[...] = jnp.asarray(rng.normal(size=components), jnp.float32)
    return prior


def test_mixture_log_prob_is_the_scipy_mixture_density():
    prior = _mixture()
    weights = np.asarray(jax.nn.softmax(prior.logits[...]), np.float64)
    means, logvars = np.asarray(prior.means[...]), np.asarray(prior.logvars[...])
    z = np.random.default_rng(2).normal(scale=2.0, size=(7, 5, 2)).astype(np.float32)
    density = sum(
        w * stats.multivariate_normal(m, np.diag(np.exp(lv))).pdf(z)
        for w, m, lv in zip(weights, means, logvars, strict=True)
    )
    np.testing.assert_allclose(prior.log_prob(z), np.log(density), rtol=1e-4, atol=1e-4)


def test_mixture_samples_have_its_moments():
    """E[z] = sum_k pi_k mu_k and Var[z] = sum_k pi_k (sigma_k^2 + mu_k^2) - E[z]^2."""
    prior = _mixture(seed=3)
    weights = np.asarray(jax.nn.softmax(prior.logits[...]), np.float64)[:, None]
    means, var = np.asarray(prior.means[...]), np.exp(np.asarray(prior.logvars[...]))
    mean = (weights * means).sum(0)
    variance = (weights * (var + means**2)).sum(0) - mean**2
    z = np.asarray(prior.sample(jax.random.key(0), (200_000,)), np.float64)
    se = np.sqrt(variance / z.shape[0])
    assert np.all(np.abs(z.mean(0) - mean) < 5 * se)
    np.testing.assert_allclose(z.var(0), variance, rtol=0.03)

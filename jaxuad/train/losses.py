"""Training objectives. Each takes ``(model, batch, key, cfg)`` and returns
``(loss, metrics)`` with a scalar loss and scalar metrics, so one train step serves every
model; :mod:`jaxuad.train.schemes` says which objective updates which parameters.

Discriminators output logits ``l``; ``log D = -softplus(-l)`` and ``log(1 - D) =
-softplus(l)`` stay finite where ``log(sigmoid(l))`` would not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxuad.config import TrainConfig
from jaxuad.models.priors import per_image
from jaxuad.models.variance import variance_target


def reconstruction_error(x: jax.Array, recon: jax.Array, kind: str) -> jax.Array:
    """Per-image summed ``|x - recon|`` (l1) or ``(x - recon)^2`` (l2): [B, ...] -> [B]."""
    if kind == "l1":
        return per_image(jnp.abs(x - recon))
    if kind == "l2":
        return per_image(jnp.square(x - recon))
    raise ValueError(f"train.recon_loss must be l1 or l2, got {kind!r}")


def centre(x: jax.Array) -> jax.Array:
    """The restored slice of [B, S, S, k] inputs (k neighbouring slices): [B, S, S, 1]."""
    c = x.shape[-1] // 2
    return x[..., c : c + 1]


def elbo_terms(model: nnx.Module, x: jax.Array, key: jax.Array, cfg: TrainConfig):
    """Per-image reconstruction error (of the centre slice) and KL at one z ~ q(z|x) (the
    mean without ``key``): ([B], [B]). The KL is closed-form against N(0, I), the
    one-sample estimate against GMVAE's mixture, and zero for plain AEs."""
    out = model(x, key=key)
    return reconstruction_error(centre(x), out.recon, cfg.recon_loss), model.kl(out)


def negative_elbo(model: nnx.Module, x: jax.Array, key: jax.Array, cfg: TrainConfig):
    """Per-image ``rec + kl_weight * KL``: [B].

    For a VAE this is the negative ELBO of a likelihood ``exp(-rec / kl_weight)`` (a
    Laplace or Gaussian whose scale ``kl_weight`` sets), scaled by ``kl_weight`` and up to a
    constant. As a function of x, with ``key`` fixed, it is what MAP restoration
    differentiates (VAE-MAP, GMVAE-MAP).
    """
    rec, kl = elbo_terms(model, x, key, cfg)
    return rec + cfg.kl_weight * kl


def autoencoder_loss(model: nnx.Module, x: jax.Array, key: jax.Array, cfg: TrainConfig):
    """Baur et al. 2018: ``||x - x_hat||_1`` (+ kl_weight * KL for VAEs), batch mean;
    Chen et al. 2019 with ``recon_loss="l2"``.

    Args:
      x: [B, S, S, 1] images.
    Returns:
      loss: [] scalar; metrics: dict of [] scalars (rec, kl).
    """
    rec, kl = elbo_terms(model, x, key, cfg)
    return jnp.mean(rec + cfg.kl_weight * kl), {"rec": rec.mean(), "kl": kl.mean()}


def autoencoder_gan_loss(model: nnx.Module, x: jax.Array, key: jax.Array, cfg: TrainConfig):
    """:func:`autoencoder_loss` + ``adv_weight * -log D(x_hat)`` per image, batch mean:
    Baur et al.'s Eq. 1 as one objective (``train.generator_update="joint"``). The
    discriminator is a constant here; its own phase trains it."""
    out = model(x, key=key)
    rec, kl = reconstruction_error(centre(x), out.recon, cfg.recon_loss), model.kl(out)
    gen = -_log_d(model.disc(out.recon))
    loss = jnp.mean(rec + cfg.kl_weight * kl + cfg.adv_weight * gen)
    return loss, {"rec": rec.mean(), "kl": kl.mean(), "gen": gen.mean()}


def _log_d(logits):
    return -jax.nn.softplus(-logits)


def _log_not_d(logits):
    return -jax.nn.softplus(logits)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array):
    """``-log D(real) - log(1 - D(fake))`` (Goodfellow et al.; Baur et al. Eq. 2), batch mean."""
    loss = -jnp.mean(_log_d(real_logits)) - jnp.mean(_log_not_d(fake_logits))
    return loss, {
        "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
        "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
    }


def image_disc_loss(model, x, key, cfg):
    """The discriminator of AE-GAN / AnoVAEGAN: real slices against reconstructions."""
    recon = jax.lax.stop_gradient(model(x, key=key).recon)
    return discriminator_loss(model.disc(centre(x)), model.disc(recon))


def image_gen_loss(model, x, key, cfg):
    """``-adv_weight * log D(Dec(Enc(x)))``: the generator's adversarial term."""
    loss = -cfg.adv_weight * jnp.mean(_log_d(model.disc(model(x, key=key).recon)))
    return loss, {}


def latent_disc_loss(model, x, key, cfg):
    """AAE: codes drawn from the prior N(0, I) are real, encoded codes are fake."""
    z_fake = jax.lax.stop_gradient(model.encode(x)[0])
    z_real = model.sample_latent(key, x.shape[0])
    return discriminator_loss(model.disc(z_real), model.disc(z_fake))


def latent_gen_loss(model, x, key, cfg):
    """AAE: the encoder learns to make its codes pass for prior draws."""
    return -cfg.adv_weight * jnp.mean(_log_d(model.disc(model.encode(x)[0]))), {}


def gan_disc_loss(model, x, key, cfg):
    """AnoGAN's discriminator: real slices against G(z), z ~ N(0, I)."""
    fake = jax.lax.stop_gradient(model.sample(key, x.shape[0]))
    return discriminator_loss(model.disc(x), model.disc(fake))


def gan_gen_loss(model, x, key, cfg):
    """AnoGAN's generator, the non-saturating ``-log D(G(z))``."""
    return -jnp.mean(_log_d(model.disc(model.sample(key, x.shape[0])))), {}


def variance_loss(model, x, key, cfg):
    """Chen et al. 2019: the variance network regresses (squared error, per image summed,
    batch mean) onto the Monte-Carlo target ``E_q[(g(z) - x)^2]``
    (:func:`~jaxuad.models.variance.variance_target`), which the model itself does not
    learn from (it is held fixed)."""
    target = jax.lax.stop_gradient(variance_target(model, x, key, cfg.variance_samples))
    loss = jnp.mean(per_image(jnp.square(model.var_net(x) - target)))
    return loss, {"var_target": jnp.mean(target)}


def denoising_loss(model, x, key, cfg):
    """Kascenas et al. 2022: restore x from ``x + n`` (n from
    :func:`~jaxuad.models.unet.coarse_noise`, added to the foreground only), squared error
    over the foreground, per image summed, batch mean.

    The foreground is every pixel that differs from the frame's corner, which lies in the
    padding (the background value of any normalisation). With several input channels
    (neighbouring slices) each gets its own noise and the target is the centre one.

    Args:
      x: [B, S, S, C] images, C odd.
    Returns:
      loss: [] scalar; metrics: dict of [] scalars (rec).
    """
    from jaxuad.models.unet import coarse_noise

    foreground = jnp.abs(x - x[:, :1, :1, :]) > 1e-6
    noise = coarse_noise(key, x.shape, cfg.noise_resolution, cfg.noise_std)
    target, keep = centre(x), centre(foreground)
    rec = per_image(jnp.square(model(x + noise * foreground).recon - target) * keep)
    return jnp.mean(rec), {"rec": rec.mean()}

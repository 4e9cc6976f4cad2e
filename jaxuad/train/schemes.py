"""Training schemes: which objective updates which parameters, in which order, when.

A model does not get a training loop of its own. It gets a tuple of :class:`Phase`, and
the one train step (:func:`jaxuad.train.step.make_train_step`) runs them in order on every
batch. Each phase differentiates its loss with respect to the parameter groups it owns
only (the other groups are constants to it) and updates them with its own Adam state.
Phases see the parameters as the earlier phases of the same step left them, which is the
usual alternating GAN update.

=========================  ======================================================
model                      phases (owned groups, learning rate)
=========================  ======================================================
dae sae dvae svae vae_chen  ae: L1/L2 (+ KL) (all, lr)
gmvae                      ae: L2 + one-sample KL to the mixture (all + prior, lr)
sae_gan anovaegan          ae: L1 (+ KL) + adv_weight * -log D(x_hat) (AE, lr);
                           disc: -log D(x) - log(1 - D(x_hat)) (disc, adv lr);
                           train.generator_update="separate": ae without the
                           adversarial term, then gen: -log D(x_hat) (from_z +
                           decoder, adv lr)
aae                        ae (AE, lr); disc on codes, N(0, I) draws are real (disc,
                           adv lr); gen: encoder fools disc (encoder + to_z, adv lr)
anogan                     disc (disc, adv lr); gen: -log D(G(z)) (generator, adv lr)
+ model.variance_net       variance: regress E_q[(g(z) - x)^2] (var_net, variance lr),
                           beside the others ("joint") or after them ("after")
=========================  ======================================================

Baur et al. train with 1e-3 for the reconstruction objective and 1e-4 for the adversarial
training. For AE-GAN and AnoVAEGAN (``train.generator_update="joint"``, the default) the
decoder's objective is their Eq. 1 as one loss, L_rec + L_prior + L_adv, at 1e-3, and the
discriminator trains at 1e-4. With ``"separate"`` a "gen" phase gives the decoder's
adversarial term a rate and Adam state of its own (1e-4), the way the AAE's and AnoGAN's
generators train.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from jaxuad.config import IMAGE_GAN_MODELS, Config, ConfigError
from jaxuad.train import losses

AE_GROUPS = ("encoder", "to_z", "from_z", "decoder")


class Phase(NamedTuple):
    """One optimiser phase: its objective, the parameter groups it updates, its Adam
    settings and the global steps in which it runs."""

    name: str
    owns: tuple[str, ...]  # top-level parameter groups this phase updates
    loss: Callable  # (model, batch, key, TrainConfig) -> (loss, metrics)
    learning_rate: float
    b1: float = 0.9  # Adam beta1
    start: int = 0  # first global step (inclusive) at which the phase runs
    stop: int | None = None  # step (exclusive) from which it no longer runs; None: never


def model_steps(config: Config, steps_per_epoch: int) -> int:
    return config.train.epochs * steps_per_epoch


def total_steps(config: Config, steps_per_epoch: int) -> int:
    """Model epochs, plus the variance network's own epochs when it trains "after"."""
    tc = config.train
    extra = tc.variance_epochs if _variance_after(config) else 0
    return (tc.epochs + extra) * steps_per_epoch


def _variance_after(config: Config) -> bool:
    tc = config.train
    if tc.variance_schedule not in ("joint", "after"):
        raise ConfigError(
            f"train.variance_schedule must be joint or after, got {tc.variance_schedule!r}"
        )
    return config.model.variance_net and tc.variance_schedule == "after"


def phases_for(config: Config, steps_per_epoch: int) -> tuple[Phase, ...]:
    """The phases that train ``config.model.name``, in update order."""
    tc, name = config.train, config.model.name
    lr, adv = tc.learning_rate, {"learning_rate": tc.adv_learning_rate, "b1": tc.adv_b1}
    ae = Phase("ae", AE_GROUPS, losses.autoencoder_loss, lr)
    if name in ("dae", "sae", "dvae", "svae", "vae_chen"):
        phases = [ae]
    elif name == "gmvae":
        phases = [ae._replace(owns=(*AE_GROUPS, "prior"))]
    elif name in IMAGE_GAN_MODELS:
        disc = Phase("disc", ("disc",), losses.image_disc_loss, **adv)
        if tc.generator_update == "joint":
            phases = [ae._replace(loss=losses.autoencoder_gan_loss), disc]
        elif tc.generator_update == "separate":
            gen = Phase("gen", ("from_z", "decoder"), losses.image_gen_loss, **adv)
            phases = [ae, gen, disc]
        else:
            raise ConfigError(
                f"train.generator_update must be separate or joint, got {tc.generator_update!r}"
            )
    elif name == "aae":
        phases = [
            ae,
            Phase("disc", ("disc",), losses.latent_disc_loss, **adv),
            Phase("gen", ("encoder", "to_z"), losses.latent_gen_loss, **adv),
        ]
    elif name == "unet_dae":
        phases = [Phase("ae", ("encoder", "decoder", "out"), losses.denoising_loss, lr)]
    elif name == "anogan":
        phases = [
            Phase("disc", ("disc",), losses.gan_disc_loss, **adv),
            Phase("gen", ("from_z", "generator"), losses.gan_gen_loss, **adv),
        ]
    else:
        raise ConfigError(f"no training scheme for model {name!r}")
    if config.model.variance_net:
        variance = Phase("variance", ("var_net",), losses.variance_loss, tc.variance_learning_rate)
        if _variance_after(config):
            end = model_steps(config, steps_per_epoch)
            phases = [p._replace(stop=end) for p in phases]
            variance = variance._replace(start=end)
        phases.append(variance)
    return tuple(phases)

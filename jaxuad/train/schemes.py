"""Training schemes: which objective updates which parameters, in which order, when.

A model does not get a training loop of its own. It gets a tuple of :class:`Phase`, and
the one train step (:func:`jaxuad.train.step.make_train_step`) runs them in order on every
batch. Each phase differentiates its loss with respect to the parameter groups it owns
only (the other groups are constants to it) and updates them with its own Adam state.
Phases see the parameters as the earlier phases of the same step left them, which is the
usual alternating GAN update.

A model's spec names its scheme (:class:`jaxuad.models.ModelSpec`); :data:`SCHEMES` maps
the name to a :class:`Scheme`:

=========================  ======================================================
scheme                     phases (owned groups, learning rate)
=========================  ======================================================
autoencoder                ae: L1/L2 (+ KL) (all, lr)
mixture_vae                ae: L2 + one-sample KL to the mixture (all + prior, lr)
image_gan                  ae: L1 (+ KL) + adv_weight * -log D(x_hat) (AE, lr);
                           disc: -log D(x) - log(1 - D(x_hat)) (disc, adv lr);
                           train.generator_update="separate": ae without the
                           adversarial term, then gen: -log D(x_hat) (from_z +
                           decoder, adv lr)
latent_adversarial         ae (AE, lr); disc on codes, N(0, I) draws are real (disc,
                           adv lr); gen: encoder fools disc (encoder + to_z, adv lr)
gan                        disc (disc, adv lr); gen: -log D(G(z)) (generator, adv lr)
denoising                  ae: squared error restoring x from x + coarse noise (all, lr)
voxelwise                  no phases: the atlas, fitted in one pass over the scans
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

from jaxuad.config import Config, ConfigError
from jaxuad.models import model_spec
from jaxuad.train import losses
from jaxuad.train.atlas import train_atlas

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
    return config.model.variance_net and config.train.variance_schedule == "after"


class Scheme(NamedTuple):
    """How a model trains: ``phases(config)``, the optimiser phases of a network (without
    the variance network, which :func:`phases_for` adds), or, for a baseline without a
    network, ``fit(config, workdir, volumes, progress) -> metrics``, one pass over the
    scans that writes the run and returns what it counted (``{"scans": n}``)."""

    phases: Callable[[Config], list[Phase]] | None = None
    fit: Callable | None = None


SCHEMES: dict[str, Scheme] = {}


def register_scheme(name: str, scheme: Scheme, *, replace: bool = False) -> Scheme:
    """Adds a training scheme under ``name`` (the ``scheme`` of a model's spec)."""
    if name in SCHEMES and not replace:
        raise ValueError(f"training scheme {name!r} is registered already")
    SCHEMES[name] = scheme
    return scheme


def scheme_of(config: Config) -> Scheme:
    """The training scheme of ``config.model.name``."""
    spec = model_spec(config.model.name)
    if spec.scheme not in SCHEMES:
        raise ConfigError(f"model {spec.name!r}: no training scheme {spec.scheme!r}")
    return SCHEMES[spec.scheme]


def _ae(config: Config) -> Phase:
    return Phase("ae", AE_GROUPS, losses.autoencoder_loss, config.train.learning_rate)


def _adversarial(config: Config) -> dict:
    return {"learning_rate": config.train.adv_learning_rate, "b1": config.train.adv_b1}


def _image_gan(config: Config) -> list[Phase]:
    ae, adv = _ae(config), _adversarial(config)
    disc = Phase("disc", ("disc",), losses.image_disc_loss, **adv)
    if config.train.generator_update == "joint":
        return [ae._replace(loss=losses.autoencoder_gan_loss), disc]
    gen = Phase("gen", ("from_z", "decoder"), losses.image_gen_loss, **adv)
    return [ae, gen, disc]


def _aae(config: Config) -> list[Phase]:
    adv = _adversarial(config)
    return [
        _ae(config),
        Phase("disc", ("disc",), losses.latent_disc_loss, **adv),
        Phase("gen", ("encoder", "to_z"), losses.latent_gen_loss, **adv),
    ]


def _gan(config: Config) -> list[Phase]:
    adv = _adversarial(config)
    return [
        Phase("disc", ("disc",), losses.gan_disc_loss, **adv),
        Phase("gen", ("from_z", "generator"), losses.gan_gen_loss, **adv),
    ]


def _denoising(config: Config) -> list[Phase]:
    owns = ("encoder", "decoder", "out")
    return [Phase("ae", owns, losses.denoising_loss, config.train.learning_rate)]


register_scheme("autoencoder", Scheme(lambda c: [_ae(c)]))
register_scheme("mixture_vae", Scheme(lambda c: [_ae(c)._replace(owns=(*AE_GROUPS, "prior"))]))
register_scheme("image_gan", Scheme(_image_gan))
register_scheme("latent_adversarial", Scheme(_aae))
register_scheme("gan", Scheme(_gan))
register_scheme("denoising", Scheme(_denoising))


def _fit_atlas(config, workdir, volumes, progress) -> dict:
    return {"scans": int(train_atlas(config, workdir, volumes, progress).count.max())}


register_scheme("voxelwise", Scheme(fit=_fit_atlas))


def phases_for(config: Config, steps_per_epoch: int) -> tuple[Phase, ...]:
    """The phases that train ``config.model.name``, in update order (its scheme's, then
    the variance network's when ``model.variance_net``)."""
    scheme = scheme_of(config)
    if scheme.phases is None:
        raise ConfigError(f"{config.model.name} is fitted in one pass, not trained in phases")
    tc = config.train
    phases = list(scheme.phases(config))
    if config.model.variance_net:
        variance = Phase("variance", ("var_net",), losses.variance_loss, tc.variance_learning_rate)
        if _variance_after(config):
            end = model_steps(config, steps_per_epoch)
            phases = [p._replace(stop=end) for p in phases]
            variance = variance._replace(start=end)
        phases.append(variance)
    return tuple(phases)

"""The method registry: one :class:`MethodSpec` per restoration method.

A spec says what the rest of jaxuad needs to know about a method, so adding one is one
:func:`register_method` call: its function (a batch of slices through a model, or a
voxel-wise baseline on whole volumes), whether it needs lambda, how many iterations it
runs, and which models it accepts, with the error text for the others. The cohort driver,
lambda calibration, the command line and the reproductions read this table; no method name
is written out anywhere else.

Example (a method of your own)::

    from jaxuad.restore import MethodSpec, register_method
    def my_restore(model, y, mask, key, cfg, lam=None, train_cfg=None):
        return Restoration(model(y).recon * mask + y * (1 - mask), jnp.zeros((0,)))
    register_method(MethodSpec("masked", "reconstruction inside the mask", "me 2026",
                               restore=my_restore, accepts=accepts_network))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from jaxuad.config import (
    Config,
    ConfigError,
    RestoreConfig,
    register_check,
    register_legacy,
    set_default,
)
from jaxuad.core.lazy import deferred
from jaxuad.core.registry import Registry
from jaxuad.models import ModelSpec, model_spec


@dataclass(frozen=True)
class MethodSpec:
    """One registered restoration method.

    Attributes:
      name: the registry key (``restore.method``, ``--method``).
      summary: one line for tables and ``--help``.
      paper: where it comes from.
      restore: network methods: ``restore(model, y, mask, key, cfg, lam, train_cfg) ->
        Restoration`` on a batch [B, S, S, C] (jit-compatible, ``cfg`` static), or a
        ``"module:function"`` path imported on first use.
      voxelwise: baselines: ``voxelwise(workdir) -> (config, fn)`` where ``fn(x, volume)
        -> (restored, residual)`` on a normalised volume [X, Y, Z] (or a path, as above).
      needs_lambda: it weighs a prior by lambda (``jaxuad-restore --calibrate`` applies).
      iterations: ``iterations(restore_config) -> int``, for time per iteration.
      accepts: ``accepts(model_spec, config) -> None`` when the method can restore that
        run, else the reason it cannot (shown as the error).
      needs: model attributes the method calls (``restore()`` checks a model object has
        them when research code passes one directly).
      run: whether ``--workdir`` is ``"required"`` or ``"optional"`` (a baseline that only
        reads the run's data settings).
      evaluate: ``evaluate(contrast) -> {key: value}``, evaluation settings its scores need
        on a contrast (the intensity baseline's sign).
    """

    name: str
    summary: str
    paper: str
    restore: Callable | str | None = None
    voxelwise: Callable | str | None = None
    needs_lambda: bool = False
    iterations: Callable[[RestoreConfig], int] = lambda rc: 1
    accepts: Callable[[ModelSpec, Config], str | None] = lambda spec, config: None
    needs: tuple[str, ...] = ()
    run: str = "required"
    evaluate: Callable[[str], dict] = lambda contrast: {}

    def __post_init__(self):
        if (self.restore is None) == (self.voxelwise is None):
            raise ValueError(f"method {self.name!r}: give exactly one of restore= and voxelwise=")
        for name in ("restore", "voxelwise"):
            fn = getattr(self, name)
            if isinstance(fn, str):
                object.__setattr__(self, name, deferred(fn))

    @property
    def network(self) -> bool:
        """Whether it restores slices through a trained network."""
        return self.restore is not None

    def check(self, config: Config) -> None:
        """:class:`ConfigError` unless this method can restore a run of ``config``."""
        why = self.accepts(model_spec(config.model.name), config)
        if why:
            raise ConfigError(f"restore.method: {self.name} {why}")

    def check_model(self, model) -> None:
        """:class:`ConfigError` unless ``model`` (an object) has what this method calls."""
        missing = [a for a in self.needs if not hasattr(model, a)]
        if missing:
            raise ConfigError(
                f"{self.name} needs a model with {', '.join(missing)} "
                f"({type(model).__name__} has not)"
            )


METHODS = Registry("method", "restore.method")
register_method = METHODS.register
method_spec = METHODS.spec


def method_names(*, network: bool | None = None, needs_lambda: bool | None = None):
    """Registered method names, in registration order, optionally filtered."""
    return tuple(
        n
        for n, s in METHODS.items()
        if (network is None or s.network == network)
        and (needs_lambda is None or s.needs_lambda == needs_lambda)
    )


def default_method(config: Config) -> str:
    """The first registered method that accepts ``config``'s model."""
    spec = model_spec(config.model.name)
    for m in METHODS.values():
        if not m.accepts(spec, config):
            return m.name
    raise ConfigError(f"no restoration method accepts model {spec.name!r}")


method_table = METHODS.table


# ---- what the built-in methods accept ------------------------------------------------


def accepts_network(spec: ModelSpec, config: Config) -> str | None:
    """Any trained network that maps an image to its restoration in one pass."""
    if not spec.network or spec.generator:
        return "needs a run whose network restores an image in one pass (an autoencoder)"
    return None


def _single_slices(accepts):
    """``accepts`` for methods that optimise the restored slice itself (LG, MAP): they take
    no neighbouring slices as channels."""

    def check(spec, config):
        if config.data.context_slices != 1:
            return "restores single slices: a run with data.context_slices=1"
        return accepts(spec, config)

    return check


def _accepts_encoder(spec, config):
    return None if spec.encoder else "needs an autoencoding run (an encoder and a decoder)"


def _accepts_variance_net(spec, config):
    if not spec.encoder or not config.model.variance_net:
        return (
            "needs a run trained with a variance network (jaxuad-train --variance-net, "
            "or model.variance_net=true)"
        )
    return None


def _accepts_variational(spec, config):
    return None if spec.variational else "needs a variational run (its ELBO)"


def _accepts_mixture(spec, config):
    return None if spec.prior == "mixture" else "needs a run with a Gaussian-mixture prior"


def _accepts_generator(spec, config):
    return None if spec.generator else "needs a generator run without an encoder (a GAN)"


def _accepts_baseline(spec, config):
    if spec.network:
        return "needs a run of a voxel-wise baseline without a network (jaxuad-train --model ...)"
    return None


_ITERATIVE = "jaxuad.restore.iterative"
_steps = lambda rc: rc.steps  # noqa: E731

for _spec in (
    MethodSpec("reconstruction", "one encode-decode pass", "Baur et al. 2018",
               restore=f"{_ITERATIVE}:reconstruct", accepts=accepts_network),
    MethodSpec("lg_est", "local Gaussian, variance from L decoder samples (VAE-LG(est))",
               "Chen et al. 2019", restore=f"{_ITERATIVE}:lg_est_restoration",
               needs_lambda=True, iterations=_steps, accepts=_single_slices(_accepts_encoder),
               needs=("encode",)),
    MethodSpec("lg_neural", "local Gaussian, variance from the variance network "
               "(VAE-LG(neural), AAE-LG)", "Chen et al. 2019",
               restore=f"{_ITERATIVE}:lg_neural_restoration", needs_lambda=True,
               iterations=_steps, accepts=_single_slices(_accepts_variance_net),
               needs=("encode", "var_net")),
    MethodSpec("map", "MAP under the VAE's ELBO (VAE-MAP)", "You et al. 2019",
               restore=f"{_ITERATIVE}:map_restoration", needs_lambda=True, iterations=_steps,
               accepts=_single_slices(_accepts_variational)),
    MethodSpec("gmvae_map", "MAP under the GMVAE's ELBO (GMVAE-MAP)", "You et al. 2019",
               restore=f"{_ITERATIVE}:map_restoration", needs_lambda=True, iterations=_steps,
               accepts=_single_slices(_accepts_mixture)),
    MethodSpec("mahalanobis", "per-pixel Mahalanobis deviation of the scan from L decoder "
               "samples", "Behrendt et al. 2024", restore=f"{_ITERATIVE}:sample_deviation",
               accepts=_single_slices(_accepts_variational), needs=("encode",)),
    MethodSpec("anogan", "latent search for the closest generated image",
               "Schlegl et al. 2017", restore=f"{_ITERATIVE}:latent_search",
               iterations=lambda rc: rc.anogan_steps, accepts=_accepts_generator,
               needs=("generate",)),
    MethodSpec("atlas", "|x - mean| / std against a voxel-wise atlas of healthy scans",
               "baseline", voxelwise="jaxuad.restore.baselines:atlas_method",
               accepts=_accepts_baseline),
    MethodSpec("intensity", "the scan's distance from its brain's median intensity",
               "Meissen et al. 2021 (baseline)",
               voxelwise="jaxuad.restore.baselines:intensity_method", run="optional",
               # the intensity itself scores: MS lesions are dark on T1, bright otherwise
               evaluate=lambda contrast: {
                   "residual_sign": "negative" if contrast == "T1w" else "positive"}),
):  # fmt: skip
    register_method(_spec)


set_default("restore.method", "reconstruction")


@register_check
def _check_method(config: Config) -> None:
    method_spec(config.restore.method).check(config)


@register_legacy
def _default_method(stored: dict) -> dict:
    """Runs stored before methods were checked against models kept the default
    ``reconstruction`` whatever their model; such a run's method becomes the first its
    model accepts (``accepts`` reads only the spec, ``model.*`` and ``data.*``)."""
    from jaxuad.models import MODELS

    model = stored.get("model", {})
    method = stored.get("restore", {}).get("method", "reconstruction")
    if model.get("name") not in MODELS or method not in METHODS:
        return stored
    data = {"context_slices": 1, **stored.get("data", {})}
    view = SimpleNamespace(model=SimpleNamespace(**model), data=SimpleNamespace(**data))
    spec = MODELS[model["name"]]
    if not METHODS[method].accepts(spec, view):
        return stored
    for m in METHODS.values():
        if not m.accepts(spec, view):
            return {**stored, "restore": {**stored.get("restore", {}), "method": m.name}}
    return stored

"""Typed, frozen configuration for every stage of jaxuad.

A config is a tree of frozen dataclasses. ``configs/<model>.py`` files build one with
``get_config(variant)``; command lines override single values with ``--set section.key=value``.
Library code only ever receives these typed objects, never loose dicts; a run directory stores
the resolved config as ``config.json`` so a later ``jaxuad-restore`` sees exactly what trained.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import math
import pkgutil
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxuad.core.errors import ConfigError
from jaxuad.core.io import write_text

if TYPE_CHECKING:
    import jax


MODALITIES = ("T1w", "T2w", "FLAIR")
PRNG_IMPLS = ("rbg", "threefry2x32", "unsafe_rbg")
CONV_IMPLS = ("auto", "xla", "cpu")


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` is of the field annotation ``tp`` (ints count as floats)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


class _Checked:
    """Validates a config section's values when it is built (by a config file, ``--set``,
    ``dataclasses.replace`` or a stored config.json): each value has its declared type and
    lies in its range, else :class:`ConfigError` names ``section.key``."""

    _section = ""

    def __post_init__(self):
        for name, tp in typing.get_type_hints(type(self)).items():
            if name.startswith("_"):
                continue
            value = getattr(self, name)
            if not _matches(value, tp):
                self._fail(name, f"expected {_type_name(tp)}, got {value!r}")
        self._check()

    def _check(self) -> None:  # ranges and choices, per section
        pass

    def _fail(self, name: str, problem: str):
        raise ConfigError(f"{self._section}.{name}: {problem}")

    def _one_of(self, name: str, choices) -> None:
        if getattr(self, name) not in choices:
            choices = " | ".join(map(str, choices))
            self._fail(name, f"must be one of {choices}, got {getattr(self, name)!r}")

    def _at_least(self, low, *names: str) -> None:
        for name in names:
            values = getattr(self, name)
            for v in values if isinstance(values, tuple) else (values,):
                if not (math.isfinite(v) and v >= low):
                    self._fail(name, f"must be >= {low}, got {getattr(self, name)!r}")

    def _positive(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                self._fail(name, f"must be a finite number > 0, got {v!r}")

    def _within(self, name: str, low: float, high: float, *, closed: str = "[]") -> None:
        v = getattr(self, name)
        ok_low = v >= low if closed[0] == "[" else v > low
        ok_high = v <= high if closed[1] == "]" else v < high
        if not (math.isfinite(v) and ok_low and ok_high):
            self._fail(name, f"must lie in {closed[0]}{low:g}, {high:g}{closed[1]}, got {v!r}")


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        return f"a list of {_type_name(args[0])}"
    return "none" if tp is type(None) else tp.__name__


# Checks across sections that need what later stages know (the model registry checks the
# model's name and geometry, the method registry the method against the model). Each
# registry registers its own; every Config runs them when it is built, after loading the
# registries (light modules without JAX) so that no Config escapes them.
REGISTRIES = ("jaxuad.models.registry", "jaxuad.models.builtin", "jaxuad.restore.methods")
_CHECKS: list = []
# Defaults the registries set ("model.name", "restore.method"): config.py names no model.
_DEFAULTS: dict[str, str] = {}
# Fill-ins for keys that configs stored by earlier jaxuad versions lack: fn(dict) -> dict.
_LEGACY: list = []


def register_check(fn):
    """Registers ``fn(config)``, run on every :class:`Config` built from then on; it raises
    :class:`ConfigError` naming the ``section.key`` at fault. Returns ``fn``."""
    _CHECKS.append(fn)
    return fn


def register_legacy(fn):
    """Registers ``fn(stored: dict) -> dict``, applied by :func:`from_dict` to every stored
    config before it is built, to set keys older runs lack to what those runs did."""
    _LEGACY.append(fn)
    return fn


def load_registries() -> None:
    """Imports the registries (:data:`REGISTRIES`), which register their checks and
    defaults here; cheap after the first call."""
    for module in REGISTRIES:
        importlib.import_module(module)


def set_default(key: str, value: str) -> None:
    """Registers the default of ``section.key`` (a registry's own name)."""
    _DEFAULTS[key] = value


def registry_default(key: str) -> str:
    """The default a registry set for ``section.key``."""
    load_registries()
    return _DEFAULTS[key]


@dataclass(frozen=True)
class DataConfig(_Checked):
    """Where images come from and how volumes become 2D model inputs."""

    path: str | None = None  # BIDS-like folder or CSV manifest; None = phantom healthy cohort
    modality: str = "T1w"  # T1w | T2w | FLAIR
    normalization: str = "minmax"  # minmax: [0,1] in brain (Baur); zscore: (Chen), bg -3.5
    slices: str = "brain"  # brain: slices with >= min_brain_fraction brain; middle: n_slices
    min_brain_fraction: float = 0.1  # fraction of the slice's pixels that are brain
    n_slices: int = 20  # for slices="middle": consecutive axial slices around the brain centre
    image_size: int = 128  # model input is image_size x image_size
    # Axial slices a 2D model sees as channels, centred on the one it restores (odd; 1: the
    # slice alone). 2.5D context: k = 3 adds the slice above and below.
    context_slices: int = 1
    fit: str = "pad"  # pad: centre-pad (crop if larger); resize: scale to fit, then pad
    phantom_n_healthy: int = 16  # subjects generated when path is None
    phantom_seed: int = 0
    # Intensity preprocessing before normalisation (jaxuad/data/intensity.py), stored with
    # the run and applied to every scan it trains on, calibrates on and restores:
    curvature_flow: int = 0  # curvature-flow denoising steps (Baur et al.; ITK: 5); 0: off
    curvature_flow_time_step: float = 0.05  # its time step (ITK default; stable to 1/16)
    histogram_match: bool = False  # Nyúl-Udupa landmark matching to the training cohort
    histogram_landmarks: tuple[float, ...] = ()  # the cohort's standard landmarks: fitted
    #   by jaxuad-train when histogram_match is on (leave empty)

    _section = "data"

    def _check(self):
        self._one_of("modality", MODALITIES)
        self._one_of("normalization", ("minmax", "zscore"))
        self._one_of("slices", ("brain", "middle"))
        self._one_of("fit", ("pad", "resize"))
        self._within("min_brain_fraction", 0.0, 1.0)
        self._at_least(1, "n_slices", "phantom_n_healthy")
        self._within("image_size", 8, 1024)
        self._within("context_slices", 1, 15)
        if self.context_slices % 2 == 0:
            self._fail("context_slices", f"must be odd (the restored slice in the centre), "
                       f"got {self.context_slices}")  # fmt: skip
        self._at_least(0, "phantom_seed", "curvature_flow")
        self._within("curvature_flow_time_step", 0.0, 0.0625, closed="(]")


@dataclass(frozen=True)
class ModelConfig(_Checked):
    """Architecture. Encoder and decoder sizes are shared by every Baur variant."""

    # A name in the model registry (jaxuad.models.MODELS; `jaxuad-train --help` lists them).
    name: str = field(default_factory=lambda: registry_default("model.name"))
    # Encoder/decoder family: "baur" = plain conv stages (Baur et al. 2018, Table 1);
    # "chen" = one conv, then a residual block per stage (Chen et al. 2019).
    arch: str = "baur"
    # Conv channels per encoder stage; the decoder mirrors them. Five stages reach Baur's
    # smallest bottleneck (1/32 of the input: 8x8 at 256, 4x4 at 128).
    features: tuple[int, ...] = (32, 64, 128, 256, 256)
    kernel_size: int = 5
    z_dim: int = 512  # dense bottleneck size
    z_channels: int = 64  # spatial bottleneck channels
    # Spatial bottleneck is bottleneck_res^2 x z_channels. Baur's sAE3/sVAE use 16x16 at 256
    # input (1/16), which is 8x8 at 128; sAE1 uses 8x8 at 256 (1/32), 4x4 at 128.
    bottleneck_res: int = 8
    # Image discriminator (sae_gan, anovaegan, anogan): stride-2 conv stages, then a logit.
    disc_features: tuple[int, ...] = (32, 64, 128, 256)
    # Latent discriminator (aae): hidden widths of an MLP on the flattened code.
    latent_disc_hidden: tuple[int, ...] = (512, 512)
    gmm_components: int = 10  # gmvae: Gaussians in the mixture prior (per latent position)
    # Chen et al.'s variance network (4 conv layers, 8-16-8-1 channels, 3x3) beside the
    # model: it predicts E_q[(g(z) - x)^2] per pixel, for lg_neural restoration.
    variance_net: bool = False
    # Convolution kernels: "xla" = the plain lax/nnx convolutions; "cpu" = jaxuad's CPU
    # kernels (jaxuad/models/cpu_conv.py: the same convolutions, 1.2-16x faster per layer
    # on XLA CPU); "auto" = "cpu" when JAX's default backend is the CPU, else "xla".
    conv_impl: str = "auto"

    _section = "model"

    def _check(self):
        self._one_of("arch", ("baur", "chen"))
        self._one_of("conv_impl", CONV_IMPLS)
        for name in ("features", "disc_features"):
            if not getattr(self, name):
                self._fail(name, "must list at least one stage")
        self._at_least(1, "features", "disc_features", "latent_disc_hidden")
        self._at_least(1, "kernel_size", "z_dim", "z_channels", "bottleneck_res")
        self._at_least(1, "gmm_components")


@dataclass(frozen=True)
class TrainConfig(_Checked):
    """Optimisation. Defaults follow Baur et al. 2018: Adam 1e-3, batch 8, 150 epochs.

    Models with several objectives (GANs, AAE, the variance network) update in phases,
    each with its own Adam state, in the order :func:`jaxuad.train.schemes.phases_for` gives.
    """

    epochs: int = 150
    batch_size: int = 8
    learning_rate: float = 1e-3
    # Weight of KL(q(z|x) || N(0, I)) against the per-image summed L1 term, i.e. the scale b
    # of a Laplace likelihood. At 1.0 the spatial VAE collapsed to the prior on the phantom
    # (decoding the posterior mean gave the all-zeros L1); 1e-3 keeps a usable posterior.
    kl_weight: float = 1e-3
    recon_loss: str = "l1"  # l1 (Baur) | l2 (Chen: squared error, a unit-variance Gaussian)
    # Adversarial phases (generator and discriminator): Baur et al. use 1e-4, Adam beta1
    # 0.5 as in DCGAN. adv_weight is lambda_3 of the generator's -log D(x_hat) term.
    adv_learning_rate: float = 1e-4
    adv_b1: float = 0.5
    adv_weight: float = 1.0
    # AE-GAN / AnoVAEGAN: how the decoder learns to fool the discriminator. "joint":
    # adv_weight * -log D(x_hat) joins the reconstruction objective (Baur et al. Eq. 1 as
    # one loss, L_rec + L_prior + L_adv), weighed against it, at learning_rate; only the
    # discriminator trains at adv_learning_rate. "separate": a phase of its own at
    # adv_learning_rate with its own Adam state, which moves the decoder by about
    # adv_learning_rate per step however small the adversarial loss, so it can run away
    # from the reconstruction (it does on IXI T1: docs/results.md).
    generator_update: str = "joint"
    # Variance network (model.variance_net): "joint" trains it beside the model from step
    # 0; "after" trains it for variance_epochs once the model's epochs are done (the model
    # is frozen then). Its target averages variance_samples decoder samples z ~ q(z|x).
    variance_schedule: str = "joint"
    variance_epochs: int = 20
    variance_learning_rate: float = 1e-3
    variance_samples: int = 4
    # Denoising training (unet_dae, Kascenas et al. 2022): the model restores x from
    # x + n, n Gaussian on a noise_resolution^2 grid, upsampled to the frame.
    noise_resolution: int = 16  # grid cells across the frame (paper: 16 at 128 px)
    noise_std: float = 0.2  # std of the grid values (intensities in [0, 1]: minmax)
    # Augmentation of training batches on the host (jaxuad/data/augment.py), all off by
    # default; each batch's draws depend on (seed, step) only, so resuming stays exact.
    augment_flip: float = 0.0  # probability of a left-right flip per slice
    augment_intensity: float = 0.0  # gain 1 + U(-a, a) about the background value
    augment_rotate_deg: float = 0.0  # in-plane rotation U(-r, r) degrees
    augment_scale: float = 0.0  # zoom 1 + U(-s, s)
    # Where training slices come from: false = one array in memory (fast for cohorts that
    # fit); true = an on-disk store beside the run (RUN/slices/, built once and reused on
    # resume) read a batch at a time by loader_threads Grain threads, each process reading
    # only its devices' rows. The batches are the same either way, so it may change on
    # --resume.
    stream: bool = False
    loader_threads: int = 4
    # Compile the train step in a child process with glibc's default allocator, into the
    # persistent cache, and load it from there (jaxuad/train/precompile.py): a process that
    # compiled its own step ran vae_chen up to 2x slower. Only with the commands' runtime
    # defaults; never changes the weights.
    precompile: bool = True
    log_every: int = 50  # steps between metric fetches (and NaN checks)
    checkpoint_every: int = 500  # steps between checkpoints (a final one is always written)
    keep_checkpoints: int = 3
    seed: int = 0
    # PRNG implementation of every key the run makes (initialisation, shuffling, sampling,
    # restoration), whatever JAX's default is: a run restores and resumes bit for bit in any
    # process. rbg compiled Flax initialisation ~4x faster than threefry on 2 CPU cores;
    # threefry streams are the same on every backend, rbg's are not.
    prng_impl: str = "rbg"  # rbg | threefry2x32 | unsafe_rbg

    _section = "train"

    def _check(self):
        self._at_least(1, "epochs", "batch_size", "variance_samples", "log_every")
        self._at_least(1, "noise_resolution")
        self._at_least(0, "noise_std", "augment_rotate_deg")
        self._within("augment_flip", 0.0, 1.0)
        self._within("augment_intensity", 0.0, 1.0, closed="[)")
        self._within("augment_scale", 0.0, 1.0, closed="[)")
        self._at_least(1, "checkpoint_every", "keep_checkpoints", "loader_threads")
        self._at_least(0, "variance_epochs", "seed", "kl_weight", "adv_weight")
        self._within("seed", 0, 2**32 - 1)  # a PRNG seed is 32 bits
        self._positive("learning_rate", "adv_learning_rate", "variance_learning_rate")
        self._within("adv_b1", 0.0, 1.0, closed="[)")
        self._one_of("recon_loss", ("l1", "l2"))
        self._one_of("generator_update", ("joint", "separate"))
        self._one_of("variance_schedule", ("joint", "after"))
        self._one_of("prng_impl", PRNG_IMPLS)

    def key(self, seed: int) -> jax.Array:
        """A typed PRNG key for ``seed`` made with :attr:`prng_impl`."""
        import jax

        return jax.random.key(seed, impl=self.prng_impl)


@dataclass(frozen=True)
class RestoreConfig(_Checked):
    """Turning images into pseudo-healthy restorations."""

    # A name in the method registry (jaxuad.restore.METHODS; `jaxuad-restore --help` lists
    # them) that accepts the run's model.
    method: str = field(default_factory=lambda: registry_default("restore.method"))
    batch_size: int = 32  # slices per compiled call
    prior: str = "tv"  # tv | l1: R(Y, X) = TV(X - Y) (smoothed) or ||X - Y||_1
    # Weight of R. None: the value jaxuad-restore --calibrate stored in the run directory.
    lam: float | None = None
    steps: int = 800  # Adam iterations (Chen et al.: 800 at 5e-3)
    learning_rate: float = 5e-3
    samples: int = 16  # L decoder samples per step for the local Gaussian (vmapped)
    min_variance: float = 1e-4  # floor on the local Gaussian's variance before inverting it
    tv_eps: float = 1e-2  # TV smoothing: sum sqrt(dx^2 + dy^2 + eps^2) - eps
    anogan_steps: int = 100  # Schlegl's latent search (Baur et al.: 100 steps)
    anogan_learning_rate: float = 5e-2
    anogan_feature_weight: float = 0.1  # lambda of Schlegl's discrimination loss
    # lambda calibration (Chen et al. Sec. 2.3): the smallest grid value whose mean SSIM
    # between restored and original healthy slices is at least ssim_target. Half-decades
    # over five decades: the data term scales with 1/Sigma, so the useful lambda moves
    # with how small the model's variance is (a smoke vae_chen needed ~1e3 before the TV
    # prior had any effect).
    lam_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4)
    ssim_target: float = 0.95
    calibrate_slices: int = 64  # healthy slices used (evenly spread over the cohort)
    ssim_region: str = "brain"  # brain: SSIM averaged over brain tissue | frame: the whole
    #   padded frame (the background, equal in both images, inflates it)
    # Normative scoring (jaxuad/restore/normative.py): the residual as a per-voxel z-score
    # against the run's residuals on healthy scans (jaxuad-restore --fit-normative).
    normative: bool = False
    normative_smooth_mm: float = 2.0  # sigma of the statistics' Gaussian smoothing, mm
    normative_min_scale: float = 0.25  # scale floor, a fraction of its median over the brain
    # Runs whose voxel-wise z-scores are fused with the run's own (normative only), each
    # weighed to count equally at 1 % healthy FPR on the --fit-normative scans.
    fuse: tuple[str, ...] = ()
    # Standardise each scan's signed score by its own median and MAD over the brain, so a
    # scan's overall shift (another scanner) does not carry it past healthy thresholds.
    per_scan: bool = False

    _section = "restore"

    def _check(self):
        self._one_of("prior", ("tv", "l1"))
        self._at_least(1, "batch_size", "steps", "samples", "anogan_steps", "calibrate_slices")
        self._one_of("ssim_region", ("brain", "frame"))
        self._positive("learning_rate", "min_variance", "tv_eps", "anogan_learning_rate")
        self._at_least(0, "anogan_feature_weight", "lam_grid")
        if self.lam is not None:
            self._at_least(0, "lam")
        if not self.lam_grid:
            self._fail("lam_grid", "must list at least one value")
        self._within("ssim_target", 0.0, 1.0, closed="(]")
        self._at_least(0, "normative_smooth_mm", "normative_min_scale")
        if self.fuse and not self.normative:
            self._fail("fuse", "fuses normative scores: set restore.normative=true too")


@dataclass(frozen=True)
class EvaluateConfig(_Checked):
    """Post-processing, thresholds and metrics (Baur et al. 2018, Sec. 3.1; Chen et al. 2019).

    Sizes are physical by default (``units="mm"``): the median window, the erosion depth and
    the smallest kept component are given in mm and mm³ and converted per scan from the
    voxel size in its NIfTI header, so a scan at 1 mm and one at 2 mm are post-processed
    alike. Baur et al. used 5x5x5 voxels at about 1 mm: a 5 mm window and 6 mm³. With
    ``units="voxels"`` the ``*_size``/``erosion_iterations`` fields apply as given (the
    papers' settings, voxel for voxel).

    Thresholds are fitted on healthy data only: ``percentile`` (Baur) and the smallest
    threshold whose false-positive rate on healthy brain voxels is at most x % for each x
    in ``fpr_levels`` (Chen). ``seg_threshold`` names the one whose segmentation is
    written as ``sub-<id>_seg.nii.gz``: ``percentile`` or ``fpr<x>`` (e.g. ``fpr1``).
    """

    units: str = "mm"  # mm: the *_mm sizes, per scan's voxel size | voxels: the voxel sizes
    median_mm: float = 5.0  # median window edge in mm (odd voxel count nearest); 0: off
    erosion_mm: float = 3.0  # brain-mask erosion depth in mm (6-connected steps)
    min_component_mm3: float = 6.0  # 3D components smaller than this volume are removed
    median_size: int = 5  # units=voxels: median filter edge (odd), 0 or 1 disables it
    erosion_iterations: int = 3  # units=voxels: brain-mask erosion steps (6-connected)
    min_component_size: int = 6  # units=voxels: components with fewer voxels are removed
    connectivity: int = 26  # 6 | 26, for component removal and lesion-wise detection
    percentile: float = 98.0  # threshold = this percentile of healthy filtered residuals
    fpr_levels: tuple[float, ...] = (0.1, 0.5, 1.0, 5.0)  # max healthy FPR, percent
    seg_threshold: str = "percentile"  # percentile | fpr<x>
    residual_sign: str = "both"  # both | positive: scan brighter than its restoration
    #   (hyperintense lesions: FLAIR, T2) | negative: darker (hypointense lesions on T1)
    hyperintensity_quantile: float = 0.0  # > 0: zero residuals where input < this quantile
    backend: str = "jax"  # jax | scipy: median filter and erosion
    components: str = "auto"  # auto | jax | scipy: connected components (auto: JAX, SciPy
    #   where JAX cannot run)

    _section = "evaluate"

    def _check(self):
        self._one_of("units", ("mm", "voxels"))
        self._at_least(0, "median_size", "erosion_iterations", "min_component_size")
        self._at_least(0.0, "median_mm", "erosion_mm", "min_component_mm3")
        # Windows beyond a brain's size only cost time (a 1000 mm median took minutes).
        self._within("median_mm", 0.0, MAX_WINDOW_MM)
        self._within("erosion_mm", 0.0, MAX_WINDOW_MM)
        self._within("median_size", 0, MAX_WINDOW_VOXELS)
        self._within("erosion_iterations", 0, MAX_WINDOW_VOXELS)
        if self.median_size > 1 and self.median_size % 2 == 0:
            self._fail("median_size", f"must be odd (or 0/1: off), got {self.median_size}")
        self._one_of("connectivity", (6, 26))
        self._within("percentile", 0.0, 100.0, closed="()")
        for level in self.fpr_levels:
            if not (math.isfinite(level) and 0 < level < 100):
                self._fail("fpr_levels", f"each must lie in (0, 100) percent, got {level!r}")
        names = ["percentile", *(f"fpr{level:g}" for level in self.fpr_levels)]
        self._one_of("seg_threshold", names)
        self._one_of("residual_sign", ("both", "positive", "negative"))
        self._within("hyperintensity_quantile", 0.0, 1.0, closed="[)")
        self._one_of("backend", ("jax", "scipy"))
        self._one_of("components", ("auto", "jax", "scipy"))
        unused = "mm" if self.units == "voxels" else "voxels"
        for name in _UNIT_KEYS[unused]:
            if getattr(self, name) != _EVALUATE_DEFAULTS[name]:
                self._fail(
                    name,
                    f"applies with units={unused}, but evaluate.units={self.units}: set "
                    f"evaluate.units={unused} or use "
                    + " / ".join(f"evaluate.{k}" for k in _UNIT_KEYS[self.units]),
                )


MAX_WINDOW_MM = 50.0  # median window edge and erosion depth, in mm (a brain is ~150 mm)
MAX_WINDOW_VOXELS = 51
_UNIT_KEYS = {
    "mm": ("median_mm", "erosion_mm", "min_component_mm3"),
    "voxels": ("median_size", "erosion_iterations", "min_component_size"),
}
_EVALUATE_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(EvaluateConfig) if f.name in sum(
        _UNIT_KEYS.values(), ())
}  # fmt: skip


@dataclass(frozen=True)
class Config:
    """A run's whole configuration: one frozen, checked section per stage."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    restore: RestoreConfig = field(default_factory=RestoreConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self):
        load_registries()
        for check in _CHECKS:
            check(self)


def _coerce(text: str, tp: Any, where: str) -> Any:
    """Parses the string ``text`` as a value of annotation ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(text, inner, where)
    if origin is tuple:
        items = [t for t in text.strip("()[] ").split(",") if t.strip()]
        return tuple(_coerce(t.strip(), args[0], where) for t in items)
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {text!r}")
    try:
        return tp(text)
    except ValueError as e:
        raise ConfigError(f"{where}: expected {tp.__name__}, got {text!r}") from e


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_overrides(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """``section.key=value`` assignments as {section: {key: value}}, each value parsed by
    its declared type (a later assignment of the same key wins); nothing is built yet."""
    changes: dict[str, dict[str, Any]] = {}
    for item in assignments:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=5")
        key, text = item.split("=", 1)
        section_name, name = key.split(".", 1)
        sections = _field_types(Config)
        if section_name not in sections:
            raise ConfigError(
                f"--set {item!r}: unknown section {section_name!r}; "
                f"sections are {', '.join(sections)}"
            )
        types_ = _field_types(sections[section_name])
        if name not in types_:
            raise ConfigError(
                f"--set {item!r}: {section_name} has no key {name!r}; keys are {', '.join(types_)}"
            )
        changes.setdefault(section_name, {})[name] = _coerce(text, types_[name], f"--set {item}")
    return changes


Changes = dict[str, dict[str, Any]]  # {section: {key: value}}, values of the declared types


def override(config: Config, assignments: list[str]) -> Config:
    """Applies ``section.key=value`` assignments (:func:`parse_overrides`, then
    :func:`apply_changes`)."""
    return apply_changes(config, parse_overrides(assignments))


def apply_changes(config: Config, changes: Changes) -> Config:
    """``config`` with ``{section: {key: value}}`` changed.

    All changes are applied together, then the result is checked once: settings that only
    make sense together (``model.name`` and ``restore.method``) may be given in any order.

    Example:
      >>> apply_changes(load_config("svae"), {"train": {"epochs": 3}}).train.epochs
      3
    """
    if not changes:
        return config
    sections = {s: dataclasses.replace(getattr(config, s), **kv) for s, kv in changes.items()}
    return dataclasses.replace(config, **sections)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # short where that is exact
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return "none" if value is None else str(value)


def assignments(changes: Changes) -> list[str]:
    """The ``section.key=value`` assignments that :func:`parse_overrides` reads back as
    ``changes``: how a command line writes them (``--set``).

    Example:
      >>> assignments({"restore": {"steps": 50, "lam_grid": (0.1, 1.0)}})
      ['restore.steps=50', 'restore.lam_grid=0.1,1']
    """
    return [f"{s}.{k}={_text(v)}" for s, kv in changes.items() for k, v in kv.items()]


def to_dict(config: Config) -> dict:
    """``config`` as nested plain dicts (what ``config.json`` stores)."""
    return dataclasses.asdict(config)


def from_dict(d: dict) -> Config:
    """Rebuilds a Config from :func:`to_dict` output, rejecting unknown keys; keys that
    older runs lack take the values those runs had."""
    sections = {}
    for fn in _LEGACY:
        d = fn(d)
    for name, tp in _field_types(Config).items():
        values = dict(d.get(name, {}))
        types_ = _field_types(tp)
        unknown = set(values) - set(types_)
        if unknown:
            raise ConfigError(f"config section {name!r} has unknown keys {sorted(unknown)}")
        for k, v in values.items():
            if typing.get_origin(types_[k]) is tuple and v is not None:
                values[k] = tuple(v)
        sections[name] = tp(**values)
    return Config(**sections)


def save_json(config: Config, path: str | Path) -> None:
    """Writes ``config`` as JSON; the file appears complete or not at all."""
    write_text(json.dumps(to_dict(config), indent=2) + "\n", path)


def load_json(path: str | Path) -> Config:
    """Reads a config.json; anything unreadable, mistyped or out of range is a
    :class:`ConfigError` naming the file."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(d, dict) or not all(isinstance(v, dict) for v in d.values()):
            raise ConfigError("expected an object of sections")
        return from_dict(d)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config: {e}") from e
    except (ConfigError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from e


CONFIGS_PACKAGE = "jaxuad.configs"  # the repository's configs/ folder, installed with jaxuad


def available_models() -> list[str]:
    """Names of the model configs shipped with jaxuad (``configs/<name>.py``)."""
    package = importlib.import_module(CONFIGS_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.ispkg)


def load_config(model: str, variant: str = "default") -> Config:
    """Calls ``get_config(variant)`` of a shipped model config (``model`` names one of
    :func:`available_models`) or of a config file of your own (``model`` ends in ``.py``).

    Example:
      >>> load_config("svae", "smoke").data.image_size
      32
    """
    if model.endswith(".py"):
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        spec = importlib.util.spec_from_file_location(f"jaxuad_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise ConfigError(f"{path}: cannot load config: {type(e).__name__}: {e}") from e
        where = str(path)
    else:
        if model not in available_models():
            raise ConfigError(
                f"no config for model {model!r}; available: {', '.join(available_models())} "
                "(or a path to a config file ending in .py)"
            )
        module = importlib.import_module(f"{CONFIGS_PACKAGE}.{model}")
        where = f"{CONFIGS_PACKAGE}.{model}"
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"{where}: defines no get_config(variant)")
    config = module.get_config(variant)
    if not isinstance(config, Config):
        raise ConfigError(f"{where}: get_config must return jaxuad.config.Config")
    return config


def smoke(config: Config) -> Config:
    """Shrinks a config to seconds-scale runs for tests: 32x32 inputs, tiny channels."""
    r = dataclasses.replace
    res = max(1, config.model.bottleneck_res * 32 // config.data.image_size)
    return r(
        config,
        data=r(
            config.data, image_size=32, fit="resize", phantom_n_healthy=2, min_brain_fraction=0.3
        ),
        model=r(
            config.model,
            features=(8, 8, 16, 16, 16),
            kernel_size=3,
            z_dim=16,
            z_channels=4,
            bottleneck_res=res,
            disc_features=(8, 16),
            latent_disc_hidden=(16,),
            gmm_components=3,
        ),
        train=r(
            config.train,
            epochs=1,
            batch_size=4,
            log_every=5,
            checkpoint_every=10,
            variance_epochs=1,
            variance_samples=2,
        ),
        restore=r(
            config.restore, batch_size=8, steps=20, anogan_steps=10, samples=4, calibrate_slices=8
        ),
    )


def chen2019(name: str, **model) -> Config:
    """Chen et al. 2019's setup for model ``name``: the residual architecture (one conv, six
    residual blocks of 8 to 256 channels, 3x3 kernels, a 2x2x256 code at 128 input), histogram
    matching to the training cohort and z-score normalisation (background -3.5), as their
    Sec. 3 preprocesses, squared-error reconstruction, Adam 2e-5, batch 64, and the variance
    network trained jointly (VAE-LG(neural), AAE-LG(neural))."""
    return Config(
        data=DataConfig(normalization="zscore", histogram_match=True),
        model=ModelConfig(
            name=name,
            arch="chen",
            features=(8, 16, 32, 64, 128, 256),
            kernel_size=3,
            z_channels=256,
            bottleneck_res=2,
            **{"variance_net": True, **model},
        ),
        # kl_weight 1 against a summed squared error is the ELBO of a Gaussian likelihood
        # with variance 1/2 per pixel, on z-scored intensities.
        train=TrainConfig(learning_rate=2e-5, batch_size=64, recon_loss="l2", kl_weight=1.0),
    )


def apply_variant(config: Config, variant: str) -> Config:
    """``default`` or ``smoke``; model files may handle their own variants first."""
    if variant == "default":
        return config
    if variant == "smoke":
        return smoke(config)
    raise ConfigError(f"unknown variant {variant!r} (default | smoke)")

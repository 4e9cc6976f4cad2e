"""Restoration: from an image to its pseudo-healthy version, and the residual between them.

* :mod:`~jaxuad.restore.methods`: the method registry (:data:`METHODS`);
* :mod:`~jaxuad.restore.iterative`: one-pass reconstruction, local Gaussian (``lg_est``,
  ``lg_neural``), MAP (``map``, ``gmvae_map``) and AnoGAN's latent search, each iterative
  method one ``lax.scan``;
* :mod:`~jaxuad.restore.baselines`: the voxel-wise baselines (intensity, atlas);
* :mod:`~jaxuad.restore.cohort`: NIfTI in, NIfTI out for a folder;
* :mod:`~jaxuad.restore.calibration`: lambda by SSIM on healthy brain tissue (Chen et al.);
* :mod:`~jaxuad.restore.normative`: residuals as per-voxel z-scores against healthy scans,
  and their fusion with other runs' scores.

Research code can call the jitted pieces directly::

    from jaxuad.restore import lg
    x = jax.jit(lg, static_argnames=("prior", "steps", "variance", "samples"))(
        model, y, mask, key, prior="tv", lam=2.0, steps=800)

The registry loads without JAX; the rest loads on first use.
"""

from jaxuad.core.lazy import module_getattr
from jaxuad.restore.methods import (
    METHODS,
    MethodSpec,
    method_names,
    method_spec,
    method_table,
    register_method,
)
from jaxuad.restore.summary import RestoreSummary

_LAZY = {
    "Restoration": "jaxuad.restore.iterative",
    "lg": "jaxuad.restore.iterative",
    "prior_cost": "jaxuad.restore.iterative",
    "restore": "jaxuad.restore.iterative",
    "tv": "jaxuad.restore.iterative",
    "make_restorer": "jaxuad.restore.cohort",
    "restore_cohort": "jaxuad.restore.cohort",
    "fit_normative_cohort": "jaxuad.restore.cohort",
    "restorer": "jaxuad.restore.cohort",
    "run_slices": "jaxuad.restore.cohort",
    "calibrate": "jaxuad.restore.calibration",
    "pick_lambda": "jaxuad.restore.calibration",
}


__getattr__ = module_getattr(__name__, _LAZY)


__all__ = [
    "METHODS",
    "MethodSpec",
    "Restoration",
    "RestoreSummary",
    "calibrate",
    "fit_normative_cohort",
    "lg",
    "make_restorer",
    "method_names",
    "method_spec",
    "method_table",
    "pick_lambda",
    "prior_cost",
    "register_method",
    "restore",
    "restore_cohort",
    "restorer",
    "run_slices",
    "tv",
]

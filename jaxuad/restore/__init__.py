"""Restoration: from an image to its pseudo-healthy version, and the residual between them.

* :mod:`~jaxuad.restore.reconstruction`: one encode-decode pass (Baur et al. 2018);
* :mod:`~jaxuad.restore.iterative`: local Gaussian (``lg_est``, ``lg_neural``), MAP
  (``map``, ``gmvae_map``) and AnoGAN's latent search, each one ``lax.scan``;
* :mod:`~jaxuad.restore.cohort`: NIfTI in, NIfTI out for a folder;
* :mod:`~jaxuad.restore.calibrate`: lambda by SSIM on healthy brain tissue (Chen et al.).

Research code can call the jitted pieces directly::

    from jaxuad.restore import lg
    x = jax.jit(lg, static_argnames=("prior", "steps", "variance", "samples"))(
        model, y, mask, key, prior="tv", lam=2.0, steps=800)
"""

from jaxuad.restore.calibrate import calibrate, pick_lambda
from jaxuad.restore.cohort import METHODS, make_restorer, restore_cohort, run_slices
from jaxuad.restore.iterative import ITERATIVE, Restoration, lg, prior_cost, restore, tv

__all__ = [
    "ITERATIVE",
    "lg",
    "METHODS",
    "Restoration",
    "calibrate",
    "make_restorer",
    "pick_lambda",
    "prior_cost",
    "restore",
    "restore_cohort",
    "run_slices",
    "tv",
]

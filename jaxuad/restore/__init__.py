"""Restoration: from an image to its pseudo-healthy version, and the residual between them.

Only ``reconstruction`` (one encode-decode pass, Baur et al. 2018) exists so far; the
iterative methods of Chen et al. 2019 will share this interface and output layout.
"""

from jaxuad.restore.reconstruction import (
    METHODS,
    make_reconstruct,
    reconstruct_slices,
    restore_cohort,
)

__all__ = ["METHODS", "make_reconstruct", "reconstruct_slices", "restore_cohort"]

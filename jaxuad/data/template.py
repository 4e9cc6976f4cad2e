"""A cohort's mean image on its common grid: the template a run's scans are registered to.

A run records the mean of its training scans' normalised intensities over the voxels that
at least half of them hold as brain (``RUN/template.nii.gz``), so preprocessing brings a new
scan onto the run's own grid and anatomy (``jaxuad-preprocess --template RUN``) without the
user naming the space the training data were in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxuad.data.nifti import same_grid, write_nifti

TEMPLATE_FILE = "template.nii.gz"


class MeanImage:
    """Accumulates normalised volumes [X, Y, Z] and their brain masks on one grid; a
    volume on another grid turns it off (no template for a cohort on several grids)."""

    def __init__(self):
        self.total = self.count = self.affine = None
        self.n, self.on = 0, True

    def add(self, image: np.ndarray, brainmask: np.ndarray, affine: np.ndarray) -> None:
        if not self.on:
            return
        if self.total is None:
            self.total = np.zeros(image.shape)
            self.count = np.zeros(image.shape, np.int32)
            self.affine = np.asarray(affine)
        elif not same_grid(image.shape, affine, self.total.shape, self.affine):
            self.on = False
            return
        m = np.asarray(brainmask, bool)
        self.total += np.where(m, image, 0.0)
        self.count += m
        self.n += 1

    def image(self) -> np.ndarray | None:
        """[X, Y, Z] float32 mean where at least half the scans have brain, 0 elsewhere."""
        if not self.on or self.total is None:
            return None
        held = self.count >= max(1, self.n / 2)
        return np.where(held, self.total / np.maximum(self.count, 1), 0.0).astype(np.float32)

    def write(self, folder) -> Path | None:
        """Writes ``folder/template.nii.gz`` (nothing for a cohort on several grids)."""
        image = self.image()
        if image is None:
            return None
        path = Path(folder) / TEMPLATE_FILE
        write_nifti(image, self.affine, path)
        return path

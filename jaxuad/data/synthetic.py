"""Synthetic lesions implanted into healthy scans: a label-free yardstick for choices.

Every choice in jaxuad (a checkpoint, a noise level, a scoring) must be made without the
patients' lesion masks. Healthy scans answer how often a method raises false alarms; they do
not say whether it would find a lesion. Implanting lesions whose place and contrast we set
ourselves into held-out healthy scans gives that second half without looking at a patient.

The lesions imitate MS lesions on T1: ellipsoids in bright (white-matter) tissue, deep inside
the brain, whose voxels are scaled by ``1 + contrast`` (``contrast < 0``: darker, as MS
lesions are on T1; ``> 0`` for T2/FLAIR), with a partial-volume rim. They are a proxy:
real lesions have other shapes, places and textures, so a synthetic score ranks choices, it
does not estimate the Dice on patients.

    >>> import numpy as np
    >>> image = np.full((24, 24, 24), 100.0, np.float32)
    >>> brain = np.zeros(image.shape, bool); brain[2:-2, 2:-2, 2:-2] = True
    >>> out = implant_lesions(image, brain, np.random.default_rng(0), count=(2, 2))
    >>> bool(out.lesion.any()), bool((out.image[out.lesion] < 100).all()), image.max()
    (True, True, np.float32(100.0))
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from jaxuad.data.nifti import voxel_size

# The defaults: MS-like lesions of 6-20 mm across, between grey matter and CSF on T1.
RADIUS_MM = (3.0, 10.0)
CONTRAST = (-0.6, -0.3)


class Implanted(NamedTuple):
    """A scan with implanted lesions.

    Attributes:
      image: (X, Y, Z) float32, the scan with the lesions.
      lesion: (X, Y, Z) bool, where the change is at least half the lesion's contrast.
      centres: (n, 3) int, the lesions' centre voxels.
    """

    image: np.ndarray
    lesion: np.ndarray
    centres: np.ndarray


def implant_lesions(
    image: np.ndarray,
    brainmask: np.ndarray,
    rng: np.random.Generator,
    *,
    count: tuple[int, int] = (4, 12),
    radius_mm: tuple[float, float] = RADIUS_MM,
    contrast: tuple[float, float] = CONTRAST,
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0),
    tissue_quantile: float = 0.6,
    depth_mm: float = 8.0,
) -> Implanted:
    """Implants ``count`` ellipsoidal lesions into ``image``; the input is not changed.

    Centres are drawn among brain voxels at least ``depth_mm`` from the mask's edge whose
    intensity is above the ``tissue_quantile`` of the brain's (white matter on T1). Each
    lesion has three radii drawn from ``radius_mm``, a random orientation and a contrast
    drawn from ``contrast``; a voxel at ellipsoid radius ``r`` is scaled by
    ``1 + c * w(r)``, ``w`` falling from 1 at ``r <= 0.7`` to 0 at ``r = 1.3``. Overlapping
    lesions take the stronger change; nothing changes outside the brain.

    Args:
      image: (X, Y, Z) a healthy scan.
      brainmask: (X, Y, Z) bool.
      rng: the generator (lesions are reproducible from its seed).
      count: inclusive range of the number of lesions.
      radius_mm: range of each semi-axis, in mm.
      contrast: range of the relative intensity change ``c``.
      spacing: voxel size in mm.
      tissue_quantile: centres lie in tissue brighter than this quantile of the brain.
      depth_mm: centres lie at least this far inside the brain mask.

    Returns:
      An ``Implanted``; its ``lesion`` mask is where ``w >= 0.5``, inside the brain.
    """
    brain = np.asarray(brainmask, bool)
    img = np.asarray(image, np.float32)
    sp = np.asarray(spacing, float)
    deep = ndimage.distance_transform_edt(brain, sampling=sp) >= depth_mm
    bright = img >= np.quantile(img[brain], tissue_quantile)
    candidates = np.argwhere(deep & bright)
    if len(candidates) == 0:
        candidates = np.argwhere(brain)
    n = int(rng.integers(count[0], count[1] + 1))
    centres = candidates[rng.choice(len(candidates), size=n, replace=False)]
    change = np.zeros(img.shape, np.float32)  # the signed relative change, strongest wins
    weight = np.zeros(img.shape, np.float32)  # w of the lesion that sets the change
    for centre in centres:
        radii = rng.uniform(*radius_mm, size=3)
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        c = float(rng.uniform(*contrast))
        reach = int(np.ceil(1.3 * radii.max() / sp.min())) + 1
        lo, hi = np.maximum(centre - reach, 0), np.minimum(centre + reach + 1, img.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        pts = np.indices(hi - lo).reshape(3, -1).T + lo  # (B, 3)
        local = ((pts - centre) * sp) @ rot / radii  # (B, 3) in the ellipsoid's frame
        r = np.sqrt(np.square(local).sum(-1)).reshape(hi - lo)
        w = np.clip((1.3 - r) / 0.6, 0.0, 1.0)
        stronger = np.abs(c * w) > np.abs(change[box])
        change[box] = np.where(stronger, c * w, change[box])
        weight[box] = np.where(stronger, w, weight[box])
    change *= brain
    lesion = brain & (weight >= 0.5)
    return Implanted((img * (1.0 + change)).astype(np.float32), lesion, centres)


def moved_grid(
    shape, affine, rotation_deg, shift_mm, voxel_mm
) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid covering the same field of view as (``shape``, ``affine``), rotated about its
    centre by ``rotation_deg`` (about x, y, z in turn), shifted by ``shift_mm`` and with
    voxels of ``voxel_mm``: how another acquisition might lie. Returns (shape, affine)."""
    ax, ay, az = np.deg2rad(rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    affine = np.asarray(affine, float)
    old_voxel = np.asarray(voxel_size(affine))
    new_shape = np.ceil(np.asarray(shape) * old_voxel / np.asarray(voxel_mm)).astype(int)
    new = np.eye(4)
    new[:3, :3] = rz @ ry @ rx @ affine[:3, :3] @ np.diag(np.asarray(voxel_mm) / old_voxel)
    centre = affine @ np.r_[(np.asarray(shape) - 1) / 2, 1]
    new[:3, 3] = centre[:3] + np.asarray(shift_mm) - new[:3, :3] @ ((new_shape - 1) / 2)
    return tuple(int(n) for n in new_shape), new


def resample(volume, affine, shape, new_affine, order: int = 1) -> np.ndarray:
    """``volume`` (on ``affine``) sampled on the grid (``shape``, ``new_affine``): linear for
    ``order=1``, nearest neighbour (masks) for ``order=0``; zero outside."""
    to_src = np.linalg.inv(np.asarray(affine, float)) @ np.asarray(new_affine, float)
    out = ndimage.affine_transform(np.asarray(volume, np.float32), to_src[:3, :3],
                                   to_src[:3, 3], shape, order=order)  # fmt: skip
    return out

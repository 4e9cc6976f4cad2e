"""A procedural 3D brain phantom: jaxuad's embedded default data.

Each subject is generated from a seed in about a second, on the same MNI152 2 mm grid
(91 x 109 x 91) as the real data in ``../shared/data``, so every pipeline stage runs on it
unchanged. The anatomy is built from smooth random fields:

* **outline**: an ellipsoid of random size and aspect whose radius is modulated by
  low-frequency noise, with an interhemispheric fissure;
* **cortex**: a grey-matter ribbon under a thin CSF layer; sulci are the near-zero level
  set of band-pass noise (a labyrinth of thin sheets) restricted to the outer ~15 mm, each
  wrapped in grey matter, which gives gyri between them;
* **white matter**, deep grey nuclei, and lateral/third **ventricles** of random size;
* **contrasts**: T1w, T2w and FLAIR-like tissue intensities with per-subject jitter, a
  partial-volume blur, texture, a smooth multiplicative bias field and Rician noise.

Lesions come with an exact ground-truth mask:

* ``ms``: 4-12 small ovoid periventricular white-matter lesions, hyperintense on T2 and
  FLAIR, hypointense on T1;
* ``tumour``: a mass with necrotic core, enhancing rim and surrounding oedema, whose
  growth displaces the surrounding anatomy (mass effect, a radial warp).
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from jaxuad.data.nifti import Volume, write_nifti_like

SHAPE = (91, 109, 91)
AFFINE = np.array(
    [[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]]
)  # FSL MNI152 2 mm, the grid of ../shared/data
CONTRASTS = ("T1w", "T2w", "FLAIR")
LESION_TYPES = ("ms", "tumour")

# Tissue labels.
BG, CSF, GM, WM, DEEP, MS, CORE, RIM, OEDEMA = range(9)
# Mean intensity of each label per contrast (before per-subject jitter), scanner-like units.
_LABELS = (CSF, GM, WM, DEEP, MS, CORE, RIM, OEDEMA)
_MEANS = {
    "T1w": dict(zip(_LABELS, (0.25, 0.60, 0.90, 0.72, 0.52, 0.20, 0.70, 0.62), strict=True)),
    "T2w": dict(zip(_LABELS, (1.00, 0.62, 0.42, 0.52, 0.85, 0.95, 0.72, 0.80), strict=True)),
    "FLAIR": dict(zip(_LABELS, (0.12, 0.62, 0.46, 0.55, 1.00, 0.45, 0.88, 0.92), strict=True)),
}


@dataclass(frozen=True)
class PhantomSubject:
    images: dict[str, np.ndarray]  # contrast -> [91, 109, 91] float32, 0 outside the brain
    brainmask: np.ndarray  # bool
    lesion: np.ndarray  # bool, all False for healthy subjects
    labels: np.ndarray  # uint8 tissue labels (BG, CSF, GM, WM, DEEP, MS, CORE, RIM, OEDEMA)
    lesion_type: str | None

    def volume(self, subject: str, contrast: str) -> Volume:
        header = nib.Nifti1Header()
        header.set_qform(AFFINE, code=4)  # 4 = MNI152
        header.set_sform(AFFINE, code=4)
        return Volume(subject, self.images[contrast], self.brainmask, self.lesion, AFFINE, header)


def _smooth_noise(rng: np.random.Generator, sigma_vox: float, coarse: int = 1) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma_vox``."""
    shape = tuple(-(-s // coarse) for s in SHAPE)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox / coarse, mode="wrap")
    if coarse > 1:
        field = ndimage.zoom(field, coarse, order=1)[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return (field - field.mean()) / field.std()


def _grid_mm() -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"), -1)
    return (ijk @ AFFINE[:3, :3].T + AFFINE[:3, 3]).astype(np.float32)  # [X, Y, Z, 3]


def _sample(field: np.ndarray, vox: np.ndarray | None) -> np.ndarray:
    """``field`` at voxel coordinates ``vox`` ([3, X, Y, Z]); the field itself if None."""
    return field if vox is None else ndimage.map_coordinates(field, vox, order=1, mode="nearest")


def _ellipsoid(p: np.ndarray, centre, radii, rot: np.ndarray | None = None) -> np.ndarray:
    d = p - np.asarray(centre, np.float32)
    if rot is not None:
        d = d @ rot
    return np.sum((d / np.asarray(radii, np.float32)) ** 2, axis=-1)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def make_subject(seed, lesion_type: str | None = None) -> PhantomSubject:
    """Generates one subject deterministically from ``seed`` (int or SeedSequence).

    Args:
      seed: anything ``np.random.default_rng`` accepts; equal seeds give equal subjects.
      lesion_type: None for a healthy brain, ``"ms"`` or ``"tumour"``.
    """
    if lesion_type not in (None, *LESION_TYPES):
        raise ValueError(f"lesion_type must be None, 'ms' or 'tumour', got {lesion_type!r}")
    rng = np.random.default_rng(seed)
    p = _grid_mm()
    centre = np.array([0.0, -17.0, 12.0], np.float32) + rng.normal(0, 1.5, 3).astype(np.float32)
    radii = np.array([66.0, 84.0, 60.0]) * rng.uniform(0.9, 1.04) * rng.uniform(0.96, 1.04, 3)

    # Mass effect: anatomy at p comes from a point pulled towards the tumour centre.
    vox = None
    if lesion_type == "tumour":
        side = rng.choice([-1.0, 1.0])
        t_centre = centre + np.array(
            [side * rng.uniform(22, 34), rng.uniform(-30, 30), rng.uniform(0, 22)], np.float32
        )
        t_radius = rng.uniform(11, 18)
        d = p - t_centre
        r = np.linalg.norm(d, axis=-1, keepdims=True)
        k = rng.uniform(0.35, 0.55)
        src = t_centre + d * (1 - k * np.exp(-((r / (1.6 * t_radius)) ** 2)))
        p = src.astype(np.float32)
        inv = np.linalg.inv(AFFINE)
        vox = np.moveaxis(p @ inv[:3, :3].T + inv[:3, 3], -1, 0)

    low = _sample(_smooth_noise(rng, 10, coarse=3), vox)
    rho = np.sqrt(_ellipsoid(p, centre, radii)) * (1 + 0.035 * low)
    depth = (1 - rho) * float(np.mean(radii))  # approximate mm below the brain surface
    brain = rho <= 1.0

    labels = np.where(brain, WM, BG).astype(np.uint8)
    # Cortex: grey ribbon under the surface, sulci as the zero set of band-pass noise.
    fine = _smooth_noise(rng, 2.4) - 0.5 * _smooth_noise(rng, 4.8)
    gyral = _sample(fine / fine.std(), vox)
    sulcal_depth = 18 + 4 * _sample(_smooth_noise(rng, 8, coarse=3), vox)
    in_band = depth < sulcal_depth
    ribbon = rng.uniform(5.0, 6.5)
    labels[brain & ((depth < ribbon) | (in_band & (np.abs(gyral) < 0.75)))] = GM
    labels[brain & in_band & (np.abs(gyral) < 0.2) & (depth > 1.0)] = CSF
    labels[brain & (depth < 1.8)] = CSF
    # Interhemispheric fissure down to the corpus callosum.
    wobble = 1.5 * _sample(_smooth_noise(rng, 12, coarse=3), vox)
    rel = p - centre
    fissure = (np.abs(rel[..., 0] - wobble) < 1.6) & ((rel[..., 2] > 14) | (depth < 18))
    labels[brain & fissure] = CSF

    # Deep grey nuclei and ventricles, scaled per subject.
    v = rng.uniform(0.7, 1.6)
    for sx in (-1, 1):
        labels[_ellipsoid(p, centre + [sx * 13, -2, -6], [7, 13, 8]) <= 1] = DEEP
        labels[_ellipsoid(p, centre + [sx * 12, -20, -4], [7, 9, 7]) <= 1] = DEEP
    ventricles = np.zeros(SHAPE, bool)
    for sx in (-1, 1):
        body = _ellipsoid(p, centre + [sx * 7 * v**0.5, -6, 10], [3.6 * v, 27, 7.5 * v])
        horn = _ellipsoid(p, centre + [sx * 9 * v**0.5, -32, 0], [3.4 * v, 10, 9 * v])
        ventricles |= (body <= 1) | (horn <= 1)
    ventricles |= _ellipsoid(p, centre + [0, -16, -8], [1.2 * v, 12, 6]) <= 1
    labels[ventricles & brain] = CSF

    lesion = np.zeros(SHAPE, bool)
    if lesion_type == "ms":
        wm = labels == WM
        dist = ndimage.distance_transform_edt(~ventricles, sampling=2.0)
        candidates = np.flatnonzero(wm & (dist > 2) & (dist < 12))
        for _ in range(int(rng.integers(4, 13))):
            c = p.reshape(-1, 3)[rng.choice(candidates)]
            ell = _ellipsoid(p, c, rng.uniform([2.5, 2.5, 3], [5, 5, 8]), _random_rotation(rng))
            lesion |= (ell <= 1) & wm
        labels[lesion] = MS
    elif lesion_type == "tumour":
        d = np.linalg.norm(_grid_mm() - t_centre, axis=-1)
        bumpy = d / (t_radius * (1 + 0.12 * _smooth_noise(rng, 3)))
        tumour = brain & (bumpy <= 1)
        oedema = brain & ~tumour & (bumpy <= rng.uniform(1.5, 1.9)) & np.isin(labels, [WM, DEEP])
        labels[oedema] = OEDEMA
        labels[tumour] = RIM
        labels[tumour & (bumpy <= rng.uniform(0.45, 0.6))] = CORE
        lesion = tumour | oedema

    # Intensities: tissue means with jitter, partial-volume blur, texture, bias, Rician noise.
    bias = np.zeros(SHAPE, np.float32)
    q = (p - centre) / radii.astype(np.float32)
    for i in range(3):
        bias += rng.normal(0, 0.08) * q[..., i]
        bias += rng.normal(0, 0.04) * q[..., i] * q[..., (i + 1) % 3]
    texture = 0.03 * _smooth_noise(rng, 1.2)
    sigma = rng.uniform(0.012, 0.025)
    images = {}
    for contrast in CONTRASTS:
        lut = np.zeros(9, np.float32)
        for lab, mean in _MEANS[contrast].items():
            lut[lab] = mean * rng.uniform(0.95, 1.05)
        img = ndimage.gaussian_filter(lut[labels], 0.6) * (1 + texture) * np.exp(bias)
        n1, n2 = rng.normal(0, sigma, (2, *SHAPE))
        img = np.sqrt((img + n1) ** 2 + n2**2)
        images[contrast] = np.where(brain, 1000 * img, 0).astype(np.float32)
    return PhantomSubject(images, brain, lesion & brain, labels, lesion_type)


def subject_seed(seed: int, cohort: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, {"healthy": 0, "lesion": 1}[cohort], index])


def cohort(n: int, seed: int, cohort_name: str = "healthy"):
    """Yields ``(subject_id, PhantomSubject)``; lesion subjects alternate MS and tumour."""
    for i in range(n):
        kind = None if cohort_name == "healthy" else LESION_TYPES[i % len(LESION_TYPES)]
        yield f"{cohort_name[0]}{i:03d}", make_subject(subject_seed(seed, cohort_name, i), kind)


def write_cohort(out: Path, n: int, seed: int, cohort_name: str, progress=None) -> None:
    """Writes a cohort as a BIDS-like folder. It appears under ``out`` only when complete."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = []
    for sid, subj in cohort(n, seed, cohort_name):
        vols = {c: subj.volume(sid, c) for c in CONTRASTS}
        ref = vols["T1w"]
        for c, vol in vols.items():
            write_nifti_like(vol.image, ref, tmp / f"sub-{sid}_{c}.nii.gz")
        write_nifti_like(subj.brainmask, ref, tmp / f"sub-{sid}_brainmask.nii.gz")
        if subj.lesion_type is not None:
            write_nifti_like(subj.lesion, ref, tmp / f"sub-{sid}_lesion.nii.gz")
        rows.append(
            {
                "participant_id": f"sub-{sid}",
                "cohort": cohort_name,
                "lesion_type": subj.lesion_type or "none",
                "lesion_voxels": int(subj.lesion.sum()),
                "seed": seed,
            }
        )
        if progress is not None:
            progress.update(1)
    with (tmp / "participants.tsv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)

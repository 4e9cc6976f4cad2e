"""From a scan as acquired to the grid a run was trained on, and back.

``preprocess_scan`` takes a T1 scan in scanner space (whole head, any orientation and
voxel size) and writes what jaxuad's runs expect, on the run's grid:

1. **N4 bias-field correction** inside the brain (ANTsPy's ``n4_bias_field_correction``);
2. **brain extraction** with ``deepbet`` when no brain mask is given (its network weights
   ship inside its wheel, so it works offline);
3. **affine registration** of the brain to the run's template (``RUN/template.nii.gz``, the
   mean of its training scans; ANTs, mutual information), and resampling of the scan
   (linear) and its mask (nearest neighbour) onto the template's grid;
4. the forward transform (``sub-<id>_to_template.mat``, ANTs's affine) and the native grid
   (``sub-<id>_native.json``) beside the outputs, so any volume on the run's grid can be
   brought back onto the scan as acquired (:func:`to_native`).

The field's own tools do the work (ANTs is the reference for N4 and registration); they are
an optional extra, ``pip install 'jaxuad[preprocess]'`` (ANTsPy), plus ``deepbet`` and the
CPU build of torch for brain extraction. jaxuad without them works on preprocessed scans,
and asking for them without the extra is a clear error naming it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from jaxuad.core.errors import ConfigError, DataError
from jaxuad.core.io import atomic_path, write_json
from jaxuad.data import read_nifti, write_nifti
from jaxuad.data.template import TEMPLATE_FILE

EXTRA = "pip install 'jaxuad[preprocess]'"
BRAIN_EXTRA = "pip install torch==2.13.0 deepbet (the CPU build of torch)"


def _ants():
    try:
        import ants
    except ImportError:
        raise ConfigError(f"preprocessing needs ANTsPy, which is not installed: {EXTRA}") from None
    return ants


def template_path(run_or_file) -> Path:
    """The template a scan is registered to: a NIfTI file, or ``RUN/template.nii.gz`` of a
    run folder (every run trained on scans sharing one grid writes one)."""
    p = Path(run_or_file)
    if p.is_dir():
        p = p / TEMPLATE_FILE
        if not p.is_file():
            raise ConfigError(
                f"{run_or_file}: the run has no {TEMPLATE_FILE} (runs trained before it was "
                "recorded, or on scans on several grids): pass a template NIfTI instead"
            )
    elif not p.is_file():
        raise ConfigError(f"{run_or_file}: no such template file or run folder (--template)")
    return p


@dataclass(frozen=True)
class NativeSpace:
    """Where a preprocessed scan came from (``sub-<id>_native.json``)."""

    subject: str
    source: str  # the scan as acquired
    shape: tuple[int, int, int]
    affine: list  # [4][4] voxel-to-world of the scan as acquired
    transform: str  # file name of the affine to the template, beside this file
    template: str  # the template registered to

    def write(self, folder: Path) -> None:
        write_json(dataclasses.asdict(self), folder / f"sub-{self.subject}_native.json")

    @classmethod
    def read(cls, folder, subject: str) -> NativeSpace | None:
        path = Path(folder) / f"sub-{subject}_native.json"
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            return cls(**{**d, "shape": tuple(d["shape"])})
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise DataError(f"{path}: not a preprocessing record: {e}") from None


def extract_brain(image_path) -> np.ndarray:
    """A brain mask of a T1 scan as acquired, by deepbet: [X, Y, Z] bool on its grid."""
    try:
        from deepbet.bet import BrainExtraction
    except ImportError:
        raise ConfigError(
            f"brain extraction needs deepbet, which is not installed: {BRAIN_EXTRA}; or "
            "give each scan's brain mask"
        ) from None
    _, mask, _ = BrainExtraction(no_gpu=True).run(str(image_path))
    return np.asarray(mask.dataobj) > 0


def _to_ants(ants, array: np.ndarray, like):
    """``array`` as an ANTs image on the grid of the ANTs image ``like``."""
    return ants.from_numpy(
        np.asarray(array, np.float32), origin=like.origin, spacing=like.spacing,
        direction=like.direction,
    )  # fmt: skip


def preprocess_scan(
    image,
    brainmask,
    template,
    out,
    subject: str,
    *,
    modality: str = "T1w",
    n4: bool = True,
) -> NativeSpace:
    """Brings one scan onto a template's grid (module docstring) and writes into ``out``:
    ``sub-<id>_<modality>.nii.gz`` (skull-stripped, bias-corrected, on the template grid),
    ``sub-<id>_brainmask.nii.gz``, ``sub-<id>_to_template.mat`` and
    ``sub-<id>_native.json``.

    Args:
      image: the scan as acquired (NIfTI).
      brainmask: its brain mask on its own grid, or None for brain extraction (deepbet).
      template: a template NIfTI (:func:`template_path`).
      out: the output folder (must exist).
      subject: the subject id (names the files).
      modality: the contrast suffix of the written scan.
      n4: bias-field correction (on by default).

    Returns:
      The :class:`NativeSpace` record written beside it.
    """
    ants = _ants()
    out, template = Path(out), Path(template)
    data, affine, header = read_nifti(image)  # validates the file before ANTs sees it
    if brainmask is None:
        mask = extract_brain(image)
    else:
        mask, mask_affine, _ = read_nifti(brainmask)
        if mask.shape != data.shape or not np.allclose(mask_affine, affine, atol=1e-3):
            raise DataError(f"{brainmask}: not on the grid of {image}")
        mask = mask > 0.5
    if not mask.any():
        raise DataError(f"{brainmask or image}: the brain mask is empty")
    img = ants.image_read(str(image))
    ants_mask = _to_ants(ants, mask.astype(np.float32), img)
    if n4:
        img = ants.n4_bias_field_correction(img, mask=ants_mask)
    brain = img * ants_mask
    fixed = ants.image_read(str(template))
    reg = ants.registration(
        fixed=fixed, moving=brain, type_of_transform="Affine", aff_metric="mattes"
    )
    (forward,) = reg["fwdtransforms"]
    moved = ants.apply_transforms(fixed, brain, [forward], interpolator="linear").numpy()
    moved_mask = (
        ants.apply_transforms(fixed, ants_mask, [forward], interpolator="nearestNeighbor").numpy()
        > 0.5
    )
    grid = nib.load(str(template))
    scan = np.where(moved_mask, np.maximum(moved, 0.0), 0.0)
    write_nifti(scan, grid.affine, out / f"sub-{subject}_{modality}.nii.gz", grid.header)
    write_nifti(moved_mask, grid.affine, out / f"sub-{subject}_brainmask.nii.gz", grid.header)
    transform = f"sub-{subject}_to_template.mat"
    with atomic_path(out / transform) as tmp:
        shutil.copyfile(forward, tmp)
    record = NativeSpace(
        subject=subject,
        source=str(Path(image).absolute()),
        shape=tuple(int(n) for n in data.shape),
        affine=np.asarray(affine).tolist(),
        transform=transform,
        template=str(template.absolute()),
    )
    record.write(out)
    del header
    return record


def to_native(array: np.ndarray, folder, record: NativeSpace, *, label: bool = False):
    """A volume on the template grid (``array`` [X, Y, Z]) brought back onto the scan as
    acquired, by the inverse of the stored affine: [X', Y', Z'] on the native grid.

    ``label``: nearest-neighbour interpolation (masks, segmentations) instead of linear.
    """
    ants = _ants()
    folder = Path(folder)
    grid = ants.image_read(record.template)
    moving = _to_ants(ants, np.asarray(array, np.float32), grid)
    native = ants.image_read(record.source)
    back = ants.apply_transforms(
        native, moving, [str(folder / record.transform)], whichtoinvert=[True],
        interpolator="nearestNeighbor" if label else "linear",
    ).numpy()  # fmt: skip
    return back > 0.5 if label else back.astype(np.float32)


def find_scans(data, modality: str = "T1w") -> list[tuple[str, Path, Path | None]]:
    """(subject, scan, brain mask or None) of a scan file (``sub-<id>_<modality>.nii.gz`` or
    any name) or a folder of ``sub-<id>_<modality>.nii[.gz]`` scans, each with an optional
    ``sub-<id>_brainmask.nii[.gz]`` beside it."""
    data = Path(data)
    if data.is_file():
        sid = re.sub(r"\.nii(\.gz)?$", "", data.name).removeprefix("sub-")
        sid = sid.removesuffix(f"_{modality}")
        masks = [data.with_name(f"sub-{sid}_brainmask.nii{e}") for e in (".gz", "")]
        return [(sid, data, next((m for m in masks if m.is_file()), None))]
    if not data.is_dir():
        raise DataError(f"{data}: no such scan file or folder (--data)")
    found = []
    pattern = re.compile(rf"sub-(.+)_{re.escape(modality)}\.nii(\.gz)?")
    for path in sorted(data.iterdir()):
        m = pattern.fullmatch(path.name)
        if m:
            sid = m.group(1)
            masks = [data / f"sub-{sid}_brainmask.nii{ext}" for ext in (".gz", "")]
            found.append((sid, path, next((p for p in masks if p.is_file()), None)))
    if not found:
        raise DataError(f"{data}: no sub-<id>_{modality}.nii[.gz] scans")
    return found


SPACES = ("template", "native", "both")
NATIVE_DIR = "native"  # inside an output folder: its volumes on each scan as acquired


def write_native(out, data, subject: str, parts: dict[str, np.ndarray], labels=()) -> bool:
    """Writes ``parts`` ({name: [X, Y, Z] on the template grid}) back onto the scan as
    acquired, as ``out/native/sub-<id>_<name>.nii.gz`` (``labels``: the names resampled by
    nearest neighbour). Returns False, writing nothing, when ``data`` holds no
    preprocessing record for the subject (a scan that was not preprocessed by jaxuad)."""
    record = NativeSpace.read(data, subject)
    if record is None:
        return False
    native = nib.load(record.source)
    folder = Path(out) / NATIVE_DIR
    folder.mkdir(exist_ok=True)
    for name, array in parts.items():
        back = to_native(array, data, record, label=name in labels)
        write_nifti(back, native.affine, folder / f"sub-{subject}_{name}.nii.gz", native.header)
    return True


__all__ = [
    "EXTRA",
    "NATIVE_DIR",
    "SPACES",
    "NativeSpace",
    "extract_brain",
    "find_scans",
    "preprocess_scan",
    "template_path",
    "to_native",
    "write_native",
]

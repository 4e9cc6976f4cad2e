"""NIfTI reading with validation, and atomic writing that keeps the input's grid.

Every problem with an input file raises :class:`DataError` whose message starts with the
file's path, so the command lines can print one line and exit non-zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from jaxuad.core.errors import DataError
from jaxuad.core.io import atomic_path, read_json, write_json, write_text

__all__ = ["DataError", "Volume", "atomic_path", "read_json", "write_json", "write_text"]


@dataclass(frozen=True)
class Volume:
    """One subject's co-registered volumes, validated against each other."""

    subject: str
    image: np.ndarray  # [X, Y, Z] float32
    brainmask: np.ndarray  # [X, Y, Z] bool
    lesion: np.ndarray | None  # [X, Y, Z] bool, or None when the subject has no lesion mask
    affine: np.ndarray  # [4, 4]
    header: nib.Nifti1Header

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel edges in mm, from the affine (the lengths of its first three columns)."""
        return voxel_size(self.affine)


def voxel_size(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel edges in mm of a [4, 4] voxel-to-world affine: its columns' lengths."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def read_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Header]:
    """Reads a 3D NIfTI volume as float32 (scaling applied) with its affine and header.

    Raises:
      DataError: the file is missing, does not decode, is not 3D, or holds non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        _check_claimed_size(path, img)
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except DataError:
        raise
    except Exception as e:  # nibabel raises many types for corrupt files
        raise DataError(f"{path}: cannot decode as NIfTI ({type(e).__name__}: {e})") from e
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        n = int(np.size(data) - np.isfinite(data).sum())
        raise DataError(f"{path}: {n} non-finite voxel values (NaN or inf)")
    return data, np.asarray(img.affine, dtype=np.float64), img.header


MAX_VOXELS = 2**30  # 4 GiB as float32: no brain scan comes near it
MIN_PLANE = 8  # voxels along each of the first two axes: fewer is no brain image


def _check_claimed_size(path: Path, img) -> None:
    """Refuses a header whose shape cannot be a brain scan or whose data the file cannot
    hold, before anything is read (a 1.4 kB .nii.gz claiming 2 GB took 2.4 GB of memory
    before it failed)."""
    shape = tuple(int(n) for n in img.header.get_data_shape())
    if len(shape) >= 2 and min(shape[:2]) < MIN_PLANE:
        raise DataError(f"{path}: its header claims {shape} voxels, too few in-plane for a scan")
    n = math.prod(shape)
    if n > MAX_VOXELS:
        raise DataError(f"{path}: its header claims {shape} = {n:,} voxels, more than a scan holds")
    need = int(img.header.get_data_offset()) + n * img.header.get_data_dtype().itemsize
    have = _uncompressed_size(path)
    if have is not None and need < 2**32 and have < need:
        raise DataError(
            f"{path}: its header claims {shape} voxels ({need:,} bytes), but the file holds "
            f"{have:,}"
        )


def _uncompressed_size(path: Path) -> int | None:
    """The file's data size: its own size, or a .gz file's recorded uncompressed size (the
    gzip trailer; modulo 4 GiB, so only below that); None when it cannot tell."""
    size = path.stat().st_size
    if path.suffix != ".gz":
        return size
    if size < 18 or size >= 2**32:
        return None
    with path.open("rb") as f:
        f.seek(-4, 2)
        isize = int.from_bytes(f.read(4), "little")
    # several gzip members (rare for NIfTI) record only the last one's size
    return isize if isize >= size // 1032 else None


def same_grid(shape, affine, ref_shape, ref_affine) -> bool:
    """Whether a volume of ``shape`` and ``affine`` lies on the reference grid (affines equal
    to 1e-3, the rounding NIfTI headers carry)."""
    return tuple(shape) == tuple(ref_shape) and np.allclose(affine, ref_affine, atol=1e-3)


def read_on_grid(path: str | Path, shape: tuple, affine: np.ndarray, ref_name: str) -> np.ndarray:
    """Reads a 3D volume that must lie on a reference grid (same shape and affine).

    Raises:
      DataError: as :func:`read_nifti`, or the grid differs from ``ref_name``'s.
    """
    data, own_affine, _ = read_nifti(path)
    if data.shape != tuple(shape):
        raise DataError(f"{path}: shape {data.shape} differs from {ref_name} {tuple(shape)}")
    if not same_grid(data.shape, own_affine, shape, affine):
        raise DataError(f"{path}: affine differs from {ref_name}'s; volumes must be co-registered")
    return data


def read_mask(path: Path, ref: Path, ref_data, ref_affine) -> np.ndarray:
    """A brain mask on ``ref``'s grid: voxels > 0.5 (binary or a probability map)."""
    return read_on_grid(path, ref_data.shape, ref_affine, Path(ref).name) > 0.5


def read_lesion_mask(path: Path, ref: Path, ref_data, ref_affine) -> np.ndarray:
    """A ground-truth lesion mask on ``ref``'s grid, binary as {0, 1} or {0, 255}.

    Raises:
      DataError: other values (a probability map, labels such as -1 or 2): a threshold
        picked here would silently decide what the ground truth is.
    """
    data = read_on_grid(path, ref_data.shape, ref_affine, Path(ref).name)
    values = np.unique(data)
    if not (set(values.tolist()) <= {0.0, 1.0} or set(values.tolist()) <= {0.0, 255.0}):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise DataError(
            f"{path}: lesion mask must be binary ({{0, 1}} or {{0, 255}}), has values {shown}"
        )
    return data > 0


def load_volume(subject: str, image: Path, brainmask: Path, lesion: Path | None) -> Volume:
    """Loads and cross-checks one subject's image, brain mask and optional lesion mask.

    Raises:
      DataError: as :func:`read_nifti`; a mask off the image's grid; an empty brain mask;
        no contrast inside the brain (every brain voxel the same, e.g. an all-zero image);
        a lesion mask that is not binary.
    """
    data, affine, header = read_nifti(image)
    mask = read_mask(Path(brainmask), Path(image), data, affine)
    if not mask.any():
        raise DataError(f"{brainmask}: brain mask is empty")
    brain = data[mask]
    if not brain.max() > brain.min():
        raise DataError(
            f"{image}: no contrast inside the brain mask (every brain voxel is {brain[0]:g})"
        )
    les = read_lesion_mask(Path(lesion), Path(image), data, affine) if lesion is not None else None
    return Volume(subject, data, mask, les, affine, header)


def write_nifti_like(array: np.ndarray, ref: Volume, path: str | Path) -> None:
    """Writes ``array`` on ``ref``'s grid (same affine and qform/sform), atomically.

    Boolean arrays are stored as uint8 masks, everything else as float32. The file appears
    under its final name only once it is complete, so a killed run leaves no partial output.
    """
    path = Path(path)
    if array.shape != ref.image.shape:
        raise ValueError(f"{path}: array shape {array.shape} != reference {ref.image.shape}")
    write_nifti(array, ref.affine, path, ref.header)


def write_nifti(array: np.ndarray, affine: np.ndarray, path: str | Path, header=None) -> None:
    """Writes ``array`` [X, Y, Z] with ``affine`` (and ``header``'s qform/sform codes),
    atomically; booleans as uint8 masks, everything else as float32."""
    dtype = np.uint8 if array.dtype == bool else np.float32
    header = nib.Nifti1Header() if header is None else header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(np.asarray(array).astype(dtype), np.asarray(affine), header)
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)

"""Data: NIfTI I/O and validation, normalisation, slicing, batching and the brain phantom."""

from jaxuad.data.dataset import MODALITIES, Subject, common_grid, discover, input_locations
from jaxuad.data.nifti import (
    DataError,
    Volume,
    atomic_path,
    load_volume,
    read_json,
    read_nifti,
    read_on_grid,
    voxel_size,
    write_json,
    write_nifti,
    write_nifti_like,
)
from jaxuad.data.slices import (
    VolumeSlices,
    batch_indices,
    epoch_order,
    pad_rows,
    prefetch,
    slice_volume,
    stack_images,
)

__all__ = [
    "MODALITIES",
    "DataError",
    "Subject",
    "Volume",
    "VolumeSlices",
    "atomic_path",
    "batch_indices",
    "common_grid",
    "discover",
    "epoch_order",
    "input_locations",
    "iter_volumes",
    "load_volume",
    "prefetch",
    "read_json",
    "read_nifti",
    "read_on_grid",
    "slice_volume",
    "pad_rows",
    "stack_images",
    "voxel_size",
    "write_json",
    "write_nifti",
    "write_nifti_like",
]


def iter_volumes(path, modality: str = "T1w"):
    """Yields validated :class:`Volume` objects for every subject under ``path``."""
    for s in discover(path, modality):
        yield load_volume(s.id, s.image, s.brainmask, s.lesion)

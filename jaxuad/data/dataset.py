"""Finding subjects: BIDS-like folders and CSV manifests.

Folder layout (as in ``../shared/data`` and the phantom)::

    DIR/sub-<id>_<modality>.nii.gz   modality in T1w | T2w | FLAIR
    DIR/sub-<id>_brainmask.nii.gz    required
    DIR/sub-<id>_lesion.nii.gz       optional ground truth
    DIR/participants.tsv             optional

A manifest is a CSV with columns ``subject,image,brainmask,lesion`` (lesion may be empty);
relative paths are taken from the manifest's folder.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from jaxuad.config import MODALITIES
from jaxuad.data.nifti import DataError


@dataclass(frozen=True)
class Subject:
    id: str
    image: Path
    brainmask: Path
    lesion: Path | None


def _nifti(folder: Path, stem: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    return None


def _from_folder(folder: Path, modality: str) -> list[Subject]:
    pattern = re.compile(rf"^sub-(.+)_{re.escape(modality)}\.nii(\.gz)?$")
    subjects = []
    for p in sorted(folder.iterdir()):
        m = pattern.match(p.name)
        if not m:
            continue
        sid = m.group(1)
        mask = _nifti(folder, f"sub-{sid}_brainmask")
        if mask is None:
            raise DataError(f"{p}: no brain mask sub-{sid}_brainmask.nii.gz beside it")
        subjects.append(Subject(sid, p, mask, _nifti(folder, f"sub-{sid}_lesion")))
    if not subjects:
        found = sorted(
            {
                m.group(1)
                for p in folder.glob("sub-*_*.nii*")
                if (m := re.search(r"_([A-Za-z0-9]+)\.nii", p.name))
            }
        )
        hint = f" (modalities present: {', '.join(found)})" if found else ""
        raise DataError(f"{folder}: no sub-<id>_{modality}.nii[.gz] files{hint}")
    return subjects


def _from_manifest(path: Path) -> list[Subject]:
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read manifest: {e}") from e
    need = {"subject", "image", "brainmask"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{path}: manifest needs columns subject,image,brainmask[,lesion]")

    def resolve(text: str | None) -> Path | None:
        if not text:
            return None
        p = Path(text)
        return p if p.is_absolute() else path.parent / p

    return [
        Subject(
            r["subject"], resolve(r["image"]), resolve(r["brainmask"]), resolve(r.get("lesion"))
        )
        for r in rows
    ]


def discover(path: str | Path, modality: str = "T1w") -> list[Subject]:
    """Lists the subjects of a BIDS-like folder or a CSV manifest, without loading volumes."""
    path = Path(path)
    if modality not in MODALITIES:
        raise DataError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if path.is_dir():
        return _from_folder(path, modality)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _from_manifest(path)
    if not path.exists():
        raise DataError(f"{path}: no such folder or manifest")
    raise DataError(f"{path}: expected a folder of NIfTI files or a .csv manifest")

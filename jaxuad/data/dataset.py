"""Finding subjects: BIDS-like folders and CSV manifests.

Folder layout (as in ``../shared/data`` and the phantom)::

    DIR/sub-<id>_<modality>.nii.gz   modality in T1w | T2w | FLAIR
    DIR/sub-<id>_brainmask.nii.gz    required
    DIR/sub-<id>_lesion.nii.gz       optional ground truth
    DIR/participants.tsv             optional

A manifest is a CSV with columns ``subject,image,brainmask,lesion`` (lesion may be empty);
relative paths are taken from the manifest's folder. UTF-8, with or without the byte-order
mark spreadsheet programs write.

Subject ids become output file names (``sub-<id>_residual.nii.gz``), so they are names,
never paths: letters, digits, ``.``, ``_`` and ``-``, not empty, not ``.`` or ``..``, and
unique within a cohort.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jaxuad.config import MODALITIES
from jaxuad.core.io import write_text
from jaxuad.data.nifti import DataError


@dataclass(frozen=True)
class Subject:
    """One subject's files: image, brain mask and optional lesion mask paths."""

    id: str
    image: Path
    brainmask: Path
    lesion: Path | None


_ID = re.compile(r"[A-Za-z0-9._-]+")


def check_subject_id(sid: str, where: str) -> str:
    """``sid`` if it is a valid subject id (module docstring), else :class:`DataError`."""
    if not _ID.fullmatch(sid or "") or set(sid) == {"."}:
        raise DataError(
            f"{where}: subject id {sid!r} is not a plain name (letters, digits, '.', '_', '-'; "
            "it names output files)"
        )
    return sid


def _nifti(folder: Path, stem: str) -> Path | None:
    found = [p for ext in (".nii.gz", ".nii") if (p := folder / f"{stem}{ext}").exists()]
    if len(found) > 1:
        raise DataError(f"{found[0]}: {found[1].name} is the same scan spelled twice; keep one")
    return found[0] if found else None


def _from_folder(folder: Path, modality: str) -> list[Subject]:
    pattern = re.compile(rf"^sub-(.+)_{re.escape(modality)}\.nii(\.gz)?$")
    subjects = []
    for p in sorted(folder.iterdir()):
        m = pattern.match(p.name)
        if not m or m.group(2) is None and (folder / f"{p.name}.gz").exists():
            continue  # the .nii twin of a .nii.gz: _nifti below refuses the pair
        sid = check_subject_id(m.group(1), str(p))
        p = _nifti(folder, f"sub-{sid}_{modality}")
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
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's BOM
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read manifest: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: manifest is not UTF-8 text (byte {e.start})") from e
    except csv.Error as e:
        raise DataError(f"{path}: not a CSV manifest: {e}") from e
    need = {"subject", "image", "brainmask"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{path}: manifest needs columns subject,image,brainmask[,lesion]")

    def resolve(text: str | None) -> Path | None:
        if not text or not text.strip():
            return None
        p = Path(text.strip())
        return p if p.is_absolute() else path.parent / p

    subjects, seen = [], {}
    for line, r in enumerate(rows, start=2):  # line 1 is the header
        where = f"{path}, line {line}"
        if None in r or any(r.get(k) is None for k in need):
            raise DataError(f"{where}: expected {len(rows[0])} columns")
        sid = check_subject_id((r["subject"] or "").strip(), where)
        if sid in seen:
            raise DataError(f"{where}: subject {sid!r} already on line {seen[sid]}")
        seen[sid] = line
        image, brainmask = resolve(r["image"]), resolve(r["brainmask"])
        if image is None or brainmask is None:
            raise DataError(f"{where}: subject {sid!r} needs an image and a brainmask path")
        subjects.append(Subject(sid, image, brainmask, resolve(r.get("lesion"))))
    return subjects


def write_manifest(subjects: Iterable[Subject], path: str | Path) -> Path:
    """Writes ``subjects`` as a CSV manifest that :func:`discover` reads back, with absolute
    paths (symlinks resolved) and an empty lesion column where there is none, atomically.
    Returns ``path``."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["subject", "image", "brainmask", "lesion"])
    for s in subjects:
        lesion = "" if s.lesion is None else Path(s.lesion).resolve()
        w.writerow([s.id, Path(s.image).resolve(), Path(s.brainmask).resolve(), lesion])
    write_text(out.getvalue(), path)
    return Path(path)


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


def input_locations(data, modality: str) -> tuple[set[Path], set[Path]]:
    """(folders, files) an output folder must stay apart from: the folder of every scan and
    mask ``data`` names, and ``data`` itself (a folder, or a manifest file)."""
    data = Path(data)
    folders = {
        p.parent for s in discover(data, modality) for p in (s.image, s.brainmask, s.lesion) if p
    }
    return (folders | {data}, set()) if data.is_dir() else (folders, {data})


def common_grid(data, modality: str) -> dict | None:
    """``{"shape", "affine"}`` of the scans of ``data`` when they all share one grid (read
    from their headers only), else None: the grid a run trained on, which its restorations
    check scans against."""
    import nibabel as nib
    import numpy as np

    grid = None
    for s in discover(data, modality):
        img = nib.load(str(s.image))
        shape, affine = tuple(int(n) for n in img.shape[:3]), np.asarray(img.affine)
        if grid is None:
            grid = (shape, affine)
        elif shape != grid[0] or not np.allclose(affine, grid[1], atol=1e-3):
            return None
    return None if grid is None else {"shape": list(grid[0]), "affine": grid[1].tolist()}

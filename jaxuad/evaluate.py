"""Evaluation: residuals -> post-processing -> healthy-fitted threshold -> metrics & report.

Inputs are restoration folders written by :func:`jaxuad.restore.restore_cohort`:

* ``pred``: residuals of the test subjects, whose lesion masks are read from ``data``;
* ``healthy``: residuals of healthy subjects (with their brain masks), on which the
  threshold is fitted (Baur: the 98th percentile of post-processed healthy residuals,
  over voxels of the eroded brain mask).

Voxel-level AUROC/AUPRC are computed from the post-processed residual over brain-mask
voxels of all test subjects pooled; Dice per subject from the thresholded segmentation.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxuad import metrics as M
from jaxuad import postprocess as P
from jaxuad import report
from jaxuad.config import EvaluateConfig
from jaxuad.data import DataError, iter_volumes, read_nifti, read_on_grid, write_nifti_like
from jaxuad.data.preprocess import normalize


def _read_like(path: Path, ref) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: missing (expected beside the other restoration outputs)")
    return read_on_grid(path, ref.image.shape, ref.affine, f"subject {ref.subject}'s input")


def fit_threshold(healthy: Path, cfg: EvaluateConfig) -> dict:
    """Percentile threshold over post-processed residuals of a healthy restoration folder."""
    files = sorted(Path(healthy).glob("sub-*_residual.nii.gz"))
    if not files:
        raise DataError(
            f"{healthy}: no sub-<id>_residual.nii.gz files (run jaxuad-restore "
            "on healthy scans first)"
        )
    values = []
    for f in files:
        residual, affine, _ = read_nifti(f)
        mask_path = f.with_name(f.name.replace("_residual", "_brainmask"))
        mask = read_on_grid(mask_path, residual.shape, affine, f.name) > 0.5
        # filter_residual is median * eroded mask: on eroded voxels, the median alone.
        eroded = P.eroded_mask(mask, cfg.erosion_iterations)
        values.append(P.median_filtered(residual, cfg)[eroded])
    values = np.concatenate(values)
    return {
        "method": "percentile",
        "percentile": cfg.percentile,
        "value": M.percentile_threshold(values, cfg.percentile),
        "source": str(Path(healthy).absolute()),
        "n_subjects": len(files),
        "n_voxels": int(values.size),
    }


def evaluate(
    pred,
    data,
    healthy,
    out,
    cfg: EvaluateConfig | None = None,
    *,
    modality: str | None = None,
    progress: bool = True,
) -> dict:
    """Writes filtered residuals, segmentations, panels, ``metrics.json`` and ``report.md``.

    Returns the metrics dict.
    """
    cfg = cfg or EvaluateConfig()
    cfg = cfg or EvaluateConfig()
    pred, out = Path(pred), Path(out)
    info_path = pred / "restore.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    modality = modality or info.get("modality", "T1w")
    volumes = list(iter_volumes(data, modality))  # all validated before anything is written
    residuals = [_read_like(pred / f"sub-{v.subject}_residual.nii.gz", v) for v in volumes]
    threshold = fit_threshold(Path(healthy), cfg)
    out.mkdir(parents=True, exist_ok=True)

    rows, scores, labels, t_post = [], [], [], 0.0
    for vol, residual in tqdm(
        list(zip(volumes, residuals, strict=True)),
        desc="evaluate",
        unit="subject",
        disable=not progress,
    ):
        t0 = time.perf_counter()
        filtered = P.filter_residual(residual, vol.brainmask, cfg)
        seg = P.segment(filtered, threshold["value"], cfg)
        t_post += time.perf_counter() - t0
        sid = vol.subject
        write_nifti_like(filtered, vol, out / f"sub-{sid}_filtered.nii.gz")
        write_nifti_like(seg, vol, out / f"sub-{sid}_seg.nii.gz")
        truth = vol.lesion if vol.lesion is not None else np.zeros_like(seg)
        scores.append(filtered[vol.brainmask])
        labels.append(truth[vol.brainmask])
        rows.append(
            {
                "subject": sid,
                "dice": M.dice(seg & vol.brainmask, truth & vol.brainmask),
                "lesion_voxels": int(truth.sum()),
                "segmented_voxels": int(seg.sum()),
                "has_lesion_mask": vol.lesion is not None,
            }
        )
        restored_path = pred / f"sub-{sid}_restored.nii.gz"
        restored = _read_like(restored_path, vol) if restored_path.is_file() else None
        shown = normalize(vol.image, vol.brainmask, "minmax")
        report.subject_panel(
            out / f"sub-{sid}_panel.png",
            f"sub-{sid}",
            shown,
            restored,
            filtered,
            seg,
            vol.lesion,
            2 * threshold["value"],
        )

    scored = [r["dice"] for r in rows if r["has_lesion_mask"]]
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    result = {
        "pred": str(pred.absolute()),
        "data": str(Path(data).absolute()),
        "model": info.get("model"),
        "method": info.get("method"),
        "modality": modality,
        "seconds_per_slice": info.get("seconds_per_slice"),
        "postprocess_seconds_per_volume": t_post / len(volumes),
        "settings": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "threshold": threshold,
        "summary": {
            "dice_mean": float(np.mean(scored)) if scored else float("nan"),
            "dice_std": float(np.std(scored)) if scored else float("nan"),
            "auroc": M.auroc(scores, labels),
            "auprc": M.auprc(scores, labels),
            "n_subjects": len(scored),
        },
        "subjects": rows,
    }
    (out / "report.md").write_text(report.markdown(result))
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result

"""Thresholds fitted on healthy residuals, over voxels of the eroded brain mask.

* ``percentile``: Baur's p-th percentile (default 98) of post-processed residuals;
* ``fpr<x>``: Chen's smallest threshold whose false-positive rate is at most x %.

:func:`fit_thresholds` works on arrays, :func:`fit_thresholds_on_folder` on a
``jaxuad-restore`` folder; :func:`load_thresholds` reads a saved ``thresholds.json`` and
checks that it was fitted with the same post-processing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from jaxuad import metrics as M
from jaxuad.config import EvaluateConfig
from jaxuad.data import DataError, read_json, read_nifti, read_on_grid, voxel_size
from jaxuad.postprocess import Postprocessor, keep_mask


def threshold_names(cfg: EvaluateConfig) -> list[str]:
    """``percentile`` and ``fpr<x>`` for each level of ``cfg.fpr_levels``, in order."""
    return ["percentile", *(f"fpr{x:g}" for x in cfg.fpr_levels)]


def restoration_part(
    folder: Path, subject: str, part: str, shape, affine, ref_name: str
) -> np.ndarray | None:
    """``folder/sub-<subject>_<part>.nii.gz`` on ``ref_name``'s grid, or None if absent."""
    path = folder / f"sub-{subject}_{part}.nii.gz"
    return read_on_grid(path, shape, affine, ref_name) if path.is_file() else None


def priors_on(cfg: EvaluateConfig) -> bool:
    """Whether a residual prior (sign or hyperintensity) restricts the voxels scored."""
    return cfg.residual_sign != "both" or cfg.hyperintensity_quantile > 0


def keep_voxels(image, restored, brainmask, cfg: EvaluateConfig, where: str) -> np.ndarray:
    """:func:`keep_mask`, with a clear error when a prior needs a file the folder lacks."""
    if not priors_on(cfg):
        return np.ones(brainmask.shape, bool)
    if image is None or (cfg.residual_sign != "both" and restored is None):
        raise DataError(
            f"{where}: residual_sign / hyperintensity_quantile need "
            "sub-<id>_normalized.nii.gz and sub-<id>_restored.nii.gz (re-run jaxuad-restore)"
        )
    return keep_mask(image, restored, brainmask, cfg)


def check_volumes(residuals, masks, cfg: EvaluateConfig, *, lesions=None, keeps=None,
                  voxel_sizes=None, subjects=None) -> None:  # fmt: skip
    """Checks the arrays research code hands :func:`fit_thresholds` and
    :func:`~jaxuad.evaluate.score` at the call, with messages that name the argument and
    the subject: as many of each as of ``residuals``, each [X, Y, Z] with its mask's shape,
    finite residuals in the brain, voxel sizes where ``evaluate.units="mm"`` needs them.

    Raises:
      DataError: naming the first problem.
    """
    n = len(residuals)
    if n == 0:
        raise DataError("residuals: no volumes given")
    names = [str(i) for i in range(n)] if subjects is None else [str(s) for s in subjects]
    given = {"masks": masks, "lesions": lesions, "keeps": keeps, "voxel_sizes": voxel_sizes,
             "subjects": subjects}  # fmt: skip
    for arg, items in given.items():
        if items is not None and len(items) != n:
            raise DataError(f"{arg}: {len(items)} given for {n} residuals")
    if cfg.units == "mm" and voxel_sizes is None:
        raise DataError(
            "voxel_sizes: needed with evaluate.units='mm' (each volume's voxel edges in mm, "
            "Volume.voxel_size), or use evaluate.units='voxels'"
        )
    for i in range(n):
        where = f"residuals[{i}] (subject {names[i]!r})"
        r, m = np.asarray(residuals[i]), np.asarray(masks[i])
        if r.ndim != 3:
            raise DataError(f"{where}: expected a 3D volume [X, Y, Z], got shape {r.shape}")
        for arg, items in (("masks", masks), ("lesions", lesions), ("keeps", keeps)):
            if items is not None and items[i] is not None and np.shape(items[i]) != r.shape:
                raise DataError(
                    f"{arg}[{i}] (subject {names[i]!r}): shape {np.shape(items[i])} differs "
                    f"from its residual's {r.shape}"
                )
        bad = ~np.isfinite(r[m.astype(bool)])
        if bad.any():
            raise DataError(f"{where}: {int(bad.sum())} non-finite values (NaN, inf) in the brain")


def check_thresholds(thresholds, names) -> None:
    """:class:`DataError` unless ``thresholds`` is :func:`fit_thresholds`' result holding
    a finite value for each of ``names``."""
    fitted = thresholds.get("thresholds") if isinstance(thresholds, dict) else None
    if not isinstance(fitted, dict):
        raise DataError(
            "thresholds: expected fit_thresholds()'s result (a dict with 'thresholds'), got "
            f"{type(thresholds).__name__} {str(thresholds)[:60]}"
        )
    missing = [n for n in names if n not in fitted]
    if missing:
        raise DataError(f"thresholds: no fitted threshold for {', '.join(missing)}")
    for n in names:
        value = fitted[n].get("value") if isinstance(fitted[n], dict) else None
        if not (isinstance(value, int | float) and np.isfinite(value)):
            raise DataError(f"thresholds: {n} holds no finite value ({value!r})")


def fit_thresholds(
    residuals,
    masks,
    cfg: EvaluateConfig,
    *,
    keeps=None,
    voxel_sizes=None,
    post: Postprocessor | None = None,
    source: str = "arrays",
) -> dict:
    """Fits every threshold of ``cfg`` on healthy residual volumes held in memory.

    Each residual is post-processed as in evaluation (median filter, eroded brain mask);
    the thresholds are then taken over the eroded-mask voxels of all volumes together:
    Baur's ``evaluate.percentile``-th percentile and, for each x in ``evaluate.fpr_levels``,
    Chen's smallest threshold whose false-positive rate is at most x %.

    Args:
      residuals: healthy residual volumes, each [X, Y, Z] (shapes may differ).
      masks: their brain masks, each [X, Y, Z] bool.
      cfg: post-processing and threshold settings.
      keeps: optional [X, Y, Z] bool per volume, voxels to score (``residual_sign`` and
        ``hyperintensity_quantile``); None keeps every brain voxel.
      voxel_sizes: each volume's voxel edges in mm (``Volume.voxel_size``); needed with
        ``evaluate.units="mm"`` (the default), unused with ``"voxels"``.
      post: a :class:`Postprocessor` to reuse (its compiled kernels).
      source: what the thresholds were fitted on, stored with them.

    Returns:
      ``{"source", "n_subjects", "n_voxels", "settings", "thresholds": {name: {"value",
      "rule", "healthy_fpr"}}}``, as ``thresholds.json`` stores it.

    Example:
      >>> import numpy as np
      >>> from jaxuad.config import EvaluateConfig
      >>> rng = np.random.default_rng(0)
      >>> mask = np.zeros((12, 12, 12), bool); mask[2:10, 2:10, 2:10] = True
      >>> cfg = EvaluateConfig(units="voxels", median_size=1, erosion_iterations=0,
      ...                      fpr_levels=(5.0,))
      >>> fitted = fit_thresholds([rng.uniform(size=mask.shape)], [mask], cfg)
      >>> t = fitted["thresholds"]  # 512 uniform residuals: percentiles near their level
      >>> round(t["percentile"]["value"], 2), round(t["fpr5"]["value"], 2)
      (0.97, 0.93)
      >>> t["fpr5"]["healthy_fpr"] <= 0.05
      True
    """
    residuals, masks = list(residuals), list(masks)
    check_volumes(residuals, masks, cfg, keeps=keeps, voxel_sizes=voxel_sizes)
    masks = [np.asarray(m, bool) for m in masks]
    keeps = [None] * len(residuals) if keeps is None else list(keeps)
    post = post or Postprocessor(cfg)
    items = [
        (np.asarray(r, np.float32), m, np.ones_like(m) if k is None else np.asarray(k, bool))
        for r, m, k in zip(residuals, masks, keeps, strict=True)
    ]
    sizes = [None] * len(items) if voxel_sizes is None else list(voxel_sizes)
    filtered = post.filter_many(items, sizes)
    # filtered is zero outside the eroded mask; thresholds count eroded-mask voxels.
    values = np.concatenate(
        [f[post.eroded(m, v)] for f, (_, m, _), v in zip(filtered, items, sizes, strict=True)]
    )
    fitted = {
        "percentile": {
            "value": M.percentile_threshold(values, cfg.percentile),
            "rule": f"{cfg.percentile:g}th percentile of healthy residuals (Baur)",
        }
    }
    for x in cfg.fpr_levels:
        fitted[f"fpr{x:g}"] = {
            "value": M.fpr_threshold(values, x),
            "rule": f"smallest threshold with healthy FPR <= {x:g} % (Chen)",
        }
    for t in fitted.values():
        t["healthy_fpr"] = M.false_positive_rate(values, t["value"])
    return {
        "source": source,
        "n_subjects": len(items),
        "n_voxels": int(values.size),
        "settings": settings(cfg),
        "thresholds": fitted,
    }


def fit_thresholds_on_folder(
    healthy, cfg: EvaluateConfig, post: Postprocessor | None = None
) -> dict:
    """:func:`fit_thresholds` on a healthy restoration folder (``jaxuad-restore``'s
    ``sub-<id>_residual``, ``_brainmask`` and, for the priors, ``_normalized`` and
    ``_restored`` NIfTI files)."""
    from jaxuad.restore.summary import RestoreSummary

    healthy = Path(healthy)
    summary = RestoreSummary.read(healthy)
    if summary is not None:  # exactly the subjects that restoration wrote
        files = [healthy / f"sub-{s}_residual.nii.gz" for s in summary.subjects]
        for f in files:
            if not f.is_file():
                raise DataError(f"{f}: missing, though {healthy}/restore.json lists it")
    else:
        files = sorted(healthy.glob("sub-*_residual.nii.gz"))
    if not files:
        raise DataError(
            f"{healthy}: no sub-<id>_residual.nii.gz files (run jaxuad-restore "
            "on healthy scans first)"
        )
    residuals, masks, keeps, sizes = [], [], [], []
    for f in files:
        residual, affine, _ = read_nifti(f)
        sizes.append(voxel_size(affine))
        subject = f.name[len("sub-") : -len("_residual.nii.gz")]

        part = functools.partial(
            restoration_part,
            healthy,
            subject,
            shape=residual.shape,
            affine=affine,
            ref_name=f.name,
        )
        mask = part("brainmask")
        if mask is None:
            raise DataError(f"{f.with_name(f'sub-{subject}_brainmask.nii.gz')}: missing")
        mask = mask > 0.5
        image, restored = (part("normalized"), part("restored")) if priors_on(cfg) else (None, None)
        residuals.append(residual)
        masks.append(mask)
        keeps.append(keep_voxels(image, restored, mask, cfg, f"{healthy}: sub-{subject}"))
    return fit_thresholds(
        residuals,
        masks,
        cfg,
        keeps=keeps,
        voxel_sizes=sizes,
        post=post,
        source=str(healthy.absolute()),
    )


def settings(cfg: EvaluateConfig) -> dict:
    """``cfg`` as a plain dict (stored with thresholds and metrics)."""
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


def stored_settings(st: dict) -> dict:
    """A ``settings`` dict of thresholds.json or metrics.json, of any jaxuad version: files
    from before ``units`` and ``residual_sign`` read as voxel units and ``positive_only``."""
    sign = st.get("residual_sign") or ("positive" if st.get("positive_only") else "both")
    return {**st, "units": st.get("units", "voxels"), "residual_sign": sign}


def _fitting_settings(st: dict) -> dict:
    """The settings a threshold's meaning depends on (what reaches the filtered values it is
    fitted on)."""
    st = stored_settings(st)
    mm = st["units"] == "mm"
    sizes = ("median_mm", "erosion_mm") if mm else ("median_size", "erosion_iterations")
    keys = ("units", "residual_sign", *sizes, "hyperintensity_quantile", "percentile")
    return {k: st.get(k) for k in keys}


def load_thresholds(path, cfg: EvaluateConfig) -> dict:
    """Thresholds saved by an earlier evaluation; they must come from the same
    post-processing, or they would not mean the same thing."""
    path = Path(path)
    saved = read_json(path, "thresholds")
    if not isinstance(saved, dict):
        raise DataError(f"{path}: not a thresholds.json written by jaxuad-evaluate")
    if "thresholds" not in saved:  # a run folder's file: {source: thresholds}
        if len(saved) != 1:
            raise DataError(
                f"{path}: holds thresholds from {len(saved)} healthy sets; pass the report "
                "folder's thresholds.json instead"
            )
        saved = next(iter(saved.values()))
    stored = _fitting_settings(saved.get("settings", {}))
    wanted = _fitting_settings(json.loads(json.dumps(settings(cfg))))
    if wanted != stored:
        raise DataError(
            f"{path}: thresholds were fitted with post-processing {stored}, "
            f"but this evaluation uses {wanted}"
        )
    missing = set(threshold_names(cfg)) - set(saved["thresholds"])
    if missing:
        raise DataError(f"{path}: no threshold for {', '.join(sorted(missing))}")
    return saved

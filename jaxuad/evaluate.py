"""Evaluation: residuals -> post-processing -> healthy-fitted thresholds -> metrics & report.

Inputs are restoration folders written by :func:`jaxuad.restore.restore_cohort`:

* ``pred``: residuals of the test subjects, whose lesion masks are read from ``data``;
* ``healthy``: residuals of healthy subjects (with brain masks and normalised inputs), on
  which the thresholds are fitted, over voxels of the eroded brain mask:

  - ``percentile``: Baur's p-th percentile (default 98) of post-processed residuals;
  - ``fpr<x>``: Chen's smallest threshold whose false-positive rate is at most x %.

  Fitted thresholds are saved with their source as ``thresholds.json`` in the report folder
  (the only folder an evaluation writes to), and can be reused with ``thresholds=``.

Metrics, all inside the brain mask (definitions in :mod:`jaxuad.metrics`):

* per threshold: Dice per subject, then mean ± std over subjects with a lesion mask
  (Baur); precision, recall and realised FPR over the pooled test voxels; the lesion-wise
  detection rate (ground-truth components hit); all after component removal;
* over the cohort, from merged histograms (memory fixed by bins, not voxels): voxel-level
  AUROC (with its tie bound) and AUPRC of the post-processed residual, and the oracle
  best Dice, a threshold chosen on the test data itself and labelled so everywhere;
* time per slice for the restoration (from ``restore.json``) and per volume for the
  post-processing (steady state, compile time reported apart).
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from jaxuad import metrics as M
from jaxuad import report
from jaxuad.config import ConfigError, EvaluateConfig
from jaxuad.data import (
    DataError,
    iter_volumes,
    read_json,
    read_nifti,
    read_on_grid,
    write_json,
    write_nifti_like,
)
from jaxuad.data.preprocess import normalize
from jaxuad.postprocess import Postprocessor, keep_mask


def threshold_names(cfg: EvaluateConfig) -> list[str]:
    return ["percentile", *(f"fpr{x:g}" for x in cfg.fpr_levels)]


def _restoration_part(
    folder: Path, subject: str, part: str, shape, affine, ref_name: str
) -> np.ndarray | None:
    """``folder/sub-<subject>_<part>.nii.gz`` on ``ref_name``'s grid, or None if absent."""
    path = folder / f"sub-{subject}_{part}.nii.gz"
    return read_on_grid(path, shape, affine, ref_name) if path.is_file() else None


def _priors_on(cfg: EvaluateConfig) -> bool:
    return cfg.positive_only or cfg.hyperintensity_quantile > 0


def _keep(image, restored, brainmask, cfg: EvaluateConfig, where: str) -> np.ndarray:
    """:func:`keep_mask`, with a clear error when a prior needs a file the folder lacks."""
    if not _priors_on(cfg):
        return np.ones(brainmask.shape, bool)
    if image is None or (cfg.positive_only and restored is None):
        raise DataError(
            f"{where}: positive_only / hyperintensity_quantile need "
            "sub-<id>_normalized.nii.gz and sub-<id>_restored.nii.gz (re-run jaxuad-restore)"
        )
    return keep_mask(image, restored, brainmask, cfg)


def fit_thresholds(
    residuals,
    masks,
    cfg: EvaluateConfig,
    *,
    keeps=None,
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
      keeps: optional [X, Y, Z] bool per volume, voxels to score (``positive_only`` and
        ``hyperintensity_quantile``); None keeps every brain voxel.
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
      >>> cfg = EvaluateConfig(median_size=1, erosion_iterations=0, fpr_levels=(5.0,))
      >>> fitted = fit_thresholds([rng.uniform(size=mask.shape)], [mask], cfg)
      >>> t = fitted["thresholds"]  # 512 uniform residuals: percentiles near their level
      >>> round(t["percentile"]["value"], 2), round(t["fpr5"]["value"], 2)
      (0.97, 0.93)
      >>> t["fpr5"]["healthy_fpr"] <= 0.05
      True
    """
    residuals, masks = list(residuals), [np.asarray(m, bool) for m in masks]
    if not residuals or len(residuals) != len(masks):
        raise ValueError(f"need one mask per residual, got {len(residuals)} and {len(masks)}")
    keeps = [None] * len(residuals) if keeps is None else list(keeps)
    post = post or Postprocessor(cfg)
    items = [
        (np.asarray(r, np.float32), m, np.ones_like(m) if k is None else np.asarray(k, bool))
        for r, m, k in zip(residuals, masks, keeps, strict=True)
    ]
    filtered = post.filter_many(items)
    # filtered is zero outside the eroded mask; thresholds count eroded-mask voxels.
    values = np.concatenate(
        [f[post.eroded(m)] for f, (_, m, _) in zip(filtered, items, strict=True)]
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
        "settings": _settings(cfg),
        "thresholds": fitted,
    }


def fit_thresholds_on_folder(
    healthy, cfg: EvaluateConfig, post: Postprocessor | None = None
) -> dict:
    """:func:`fit_thresholds` on a healthy restoration folder (``jaxuad-restore``'s
    ``sub-<id>_residual``, ``_brainmask`` and, for the priors, ``_normalized`` and
    ``_restored`` NIfTI files)."""
    healthy = Path(healthy)
    files = sorted(healthy.glob("sub-*_residual.nii.gz"))
    if not files:
        raise DataError(
            f"{healthy}: no sub-<id>_residual.nii.gz files (run jaxuad-restore "
            "on healthy scans first)"
        )
    residuals, masks, keeps = [], [], []
    for f in files:
        residual, affine, _ = read_nifti(f)
        subject = f.name[len("sub-") : -len("_residual.nii.gz")]

        part = functools.partial(
            _restoration_part,
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
        image, restored = (
            (part("normalized"), part("restored")) if _priors_on(cfg) else (None, None)
        )
        residuals.append(residual)
        masks.append(mask)
        keeps.append(_keep(image, restored, mask, cfg, f"{healthy}: sub-{subject}"))
    return fit_thresholds(
        residuals, masks, cfg, keeps=keeps, post=post, source=str(healthy.absolute())
    )


def _settings(cfg: EvaluateConfig) -> dict:
    return {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}


_POSTPROCESS_KEYS = (
    "median_size",
    "erosion_iterations",
    "positive_only",
    "hyperintensity_quantile",
    "percentile",
)


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
    stored = {k: v for k, v in saved.get("settings", {}).items() if k in _POSTPROCESS_KEYS}
    wanted = {k: v for k, v in _settings(cfg).items() if k in _POSTPROCESS_KEYS}
    if json.loads(json.dumps(wanted)) != stored:
        raise DataError(
            f"{path}: thresholds were fitted with post-processing {stored}, "
            f"but this evaluation uses {wanted}"
        )
    missing = set(threshold_names(cfg)) - set(saved["thresholds"])
    if missing:
        raise DataError(f"{path}: no threshold for {', '.join(sorted(missing))}")
    return saved


class _Counts:
    """Pooled voxel and component counts for one threshold, and per-subject Dice."""

    def __init__(self):
        self.tp = self.fp = self.fn = self.tn = self.hit = self.components = 0
        self.dice: list[float] = []

    def add(self, seg, truth, brain, hit_components: tuple[int, int] | None, scored: bool):
        s, t = seg & brain, truth & brain
        self.tp += int(np.sum(s & t))
        self.fp += int(np.sum(s & ~t))
        self.fn += int(np.sum(~s & t))
        self.tn += int(np.sum(brain & ~s & ~t))
        if hit_components is not None:
            self.hit += hit_components[0]
            self.components += hit_components[1]
        if scored:
            self.dice.append(M.dice(s, t))

    def summary(self, threshold: dict) -> dict:
        nan = float("nan")
        d = self.dice
        return {
            "threshold": threshold["value"],
            "healthy_fpr": threshold.get("healthy_fpr", nan),
            "dice_mean": float(np.mean(d)) if d else nan,
            "dice_std": float(np.std(d)) if d else nan,
            "precision": self.tp / (self.tp + self.fp) if self.tp + self.fp else nan,
            "recall": self.tp / (self.tp + self.fn) if self.tp + self.fn else nan,
            "fpr": self.fp / (self.fp + self.tn) if self.fp + self.tn else nan,
            "detection_rate": self.hit / self.components if self.components else nan,
            "lesions": self.components,
            "lesions_detected": self.hit,
        }


def _score_subject(vol, filtered, segs: dict, post, hist, counts: dict, cfg) -> dict:
    """Adds one subject to the cohort histogram and counts; returns its row."""
    brain = vol.brainmask
    truth = vol.lesion if vol.lesion is not None else np.zeros_like(brain)
    hist.add(M.histogram(filtered, truth, brain))
    row = {"subject": vol.subject, "has_lesion_mask": vol.lesion is not None}
    for name, seg in segs.items():
        hits = post.components_hit(truth & brain, seg) if vol.lesion is not None else None
        counts[name].add(seg, truth, brain, hits, vol.lesion is not None)
        row[f"dice_{name}"] = M.dice(seg & brain, truth & brain)
    seg = segs[cfg.seg_threshold]
    row.update(
        dice=row[f"dice_{cfg.seg_threshold}"],
        lesion_voxels=int(truth.sum()),
        segmented_voxels=int(seg.sum()),
    )
    return row


def evaluate(
    pred,
    data,
    out,
    cfg: EvaluateConfig | None = None,
    *,
    healthy=None,
    thresholds=None,
    modality: str | None = None,
    progress: bool = True,
    devices: int | None = None,
) -> dict:
    """Writes filtered residuals, segmentations, figures, ``thresholds.json``,
    ``metrics.json`` and ``report.md`` into ``out``; returns the metrics dict.

    Thresholds come from ``healthy`` (a restoration folder of healthy scans) or from
    ``thresholds`` (a ``thresholds.json`` from an earlier evaluation). All inputs are read
    and validated before anything is written. The JAX post-processing runs on ``devices``
    devices (default: all), one volume each.
    """
    cfg = cfg or EvaluateConfig()
    if (healthy is None) == (thresholds is None):
        raise ValueError("give exactly one of healthy= and thresholds=")
    names = threshold_names(cfg)
    if cfg.seg_threshold not in names:
        raise ConfigError(
            f"evaluate.seg_threshold must be one of {names}, got {cfg.seg_threshold!r}"
        )
    post = Postprocessor(cfg, devices)
    pred, out = Path(pred), Path(out)
    info_path = pred / "restore.json"
    info = read_json(info_path, "restoration summary") if info_path.is_file() else {}
    modality = modality or info.get("modality", "T1w")
    normalization = info.get("normalization", "minmax")
    volumes = list(iter_volumes(data, modality))
    inputs = []
    for v in volumes:
        sid, scan = v.subject, f"sub-{v.subject}'s {modality} scan"

        part = functools.partial(
            _restoration_part, pred, sid, shape=v.image.shape, affine=v.affine, ref_name=scan
        )
        residual = part("residual")
        if residual is None:
            raise DataError(
                f"{pred / f'sub-{sid}_residual.nii.gz'}: missing (expected beside the "
                "other restoration outputs)"
            )
        shown = part("normalized")
        if shown is None:
            shown = normalize(v.image, v.brainmask, normalization)
        restored = part("restored")
        keep = _keep(shown, restored, v.brainmask, cfg, f"{pred}: sub-{sid}")
        inputs.append((v, residual, shown, restored, keep))
    fitted = (
        fit_thresholds_on_folder(healthy, cfg, post)
        if healthy is not None
        else load_thresholds(thresholds, cfg)
    )
    taus = {name: fitted["thresholds"][name] for name in names}

    out.mkdir(parents=True, exist_ok=True)
    write_json(fitted, out / "thresholds.json")

    # Compile once on the first volume, so per-volume times are steady state.
    v0, r0, _, _, k0 = inputs[0]
    t0 = time.perf_counter()
    post.segment(post.filter(r0, v0.brainmask, k0), taus[cfg.seg_threshold]["value"])
    compile_s = time.perf_counter() - t0

    hist = M.CohortHistogram()
    counts = {name: _Counts() for name in names}
    rows, t_filter, t_segment = [], 0.0, 0.0
    bar = tqdm(total=len(inputs), desc="evaluate", unit="subject", disable=not progress)
    group = post.mesh.devices.size  # volumes filtered together, one per device
    for start in range(0, len(inputs), group):
        chunk = inputs[start : start + group]
        t0 = time.perf_counter()
        filtered_chunk = post.filter_many([(c[1], c[0].brainmask, c[4]) for c in chunk])
        t_filter += time.perf_counter() - t0
        segs_chunk = {}
        for name in names:
            t0 = time.perf_counter()
            segs_chunk[name] = post.segment_many(filtered_chunk, taus[name]["value"])
            if name == cfg.seg_threshold:
                t_segment += time.perf_counter() - t0
        for k, (vol, _, shown, restored, _) in enumerate(chunk):
            filtered = filtered_chunk[k]
            rows.append(
                _score_subject(
                    vol, filtered, {n: segs_chunk[n][k] for n in names}, post, hist, counts, cfg
                )
            )
            seg = segs_chunk[cfg.seg_threshold][k]
            sid = vol.subject
            write_nifti_like(filtered, vol, out / f"sub-{sid}_filtered.nii.gz")
            write_nifti_like(seg, vol, out / f"sub-{sid}_seg.nii.gz")
            report.subject_panel(
                out / f"sub-{sid}_panel.png",
                f"sub-{sid}",
                shown,
                restored,
                filtered,
                seg,
                vol.lesion,
                2 * taus[cfg.seg_threshold]["value"],
            )
            bar.update(1)
    bar.close()

    auroc, auroc_bound = hist.auroc()
    oracle_dice, oracle_threshold = hist.best_dice()
    at_threshold = {name: counts[name].summary(taus[name]) for name in names}
    default = at_threshold[cfg.seg_threshold]
    n = len(inputs)
    result = {
        "pred": str(pred.absolute()),
        "data": str(Path(data).absolute()),
        "model": info.get("model"),
        "latent": info.get("latent"),
        "method": info.get("method"),
        "prior": (info.get("restore") or {}).get("prior"),
        "modality": modality,
        "seconds_per_slice": info.get("seconds_per_slice"),
        "seconds_per_iteration": info.get("seconds_per_iteration_per_image"),
        "postprocess": {
            "backend": cfg.backend,
            "components_backend": post.components_backend,
            "components_fallback": post.fell_back,
            "compile_s": compile_s,
            "filter_seconds_per_volume": t_filter / n,
            "segment_seconds_per_volume": t_segment / n,
        },
        "settings": _settings(cfg),
        "thresholds": fitted,
        "seg_threshold": cfg.seg_threshold,
        "summary": {
            "dice_mean": default["dice_mean"],
            "dice_std": default["dice_std"],
            "auroc": auroc,
            "auroc_tie_bound": auroc_bound,
            "auprc": hist.auprc(),
            "oracle_dice": oracle_dice,
            "oracle_threshold": oracle_threshold,
            "n_subjects": len(counts[cfg.seg_threshold].dice),
            "lesion_voxels": hist.n_pos,
            "normal_voxels": hist.n_neg,
        },
        "at_threshold": at_threshold,
        "subjects": rows,
    }
    report.cohort_figures(out, hist, result)
    (out / "report.md").write_text(report.markdown(result))
    write_json(result, out / "metrics.json")
    return result

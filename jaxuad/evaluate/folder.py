"""Evaluation of restoration folders: read, fit thresholds, score, write NIfTI and JSON.

Inputs are folders written by :func:`jaxuad.restore.restore_cohort`: ``pred`` holds the
test subjects' residuals, whose lesion masks are read from ``data``; thresholds come from
``healthy`` (a restoration folder of healthy scans) or from a saved ``thresholds.json``.
Figures and ``report.md`` are a later step (:func:`jaxuad.report.write_report`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from tqdm.auto import tqdm

from jaxuad.config import EvaluateConfig
from jaxuad.core.io import check_apart
from jaxuad.data import DataError, iter_volumes, write_json, write_nifti_like
from jaxuad.data.preprocess import normalize
from jaxuad.evaluate.score import EvalResult, Scorer, SubjectView
from jaxuad.evaluate.thresholds import (
    fit_thresholds_on_folder,
    keep_voxels,
    load_thresholds,
    restoration_part,
)
from jaxuad.postprocess import Postprocessor
from jaxuad.restore.summary import RestoreSummary


def read_restoration_info(pred) -> RestoreSummary | None:
    """``pred/restore.json`` (the restoration's summary), or None when absent."""
    return RestoreSummary.read(pred)


def read_inputs(pred, data, modality: str, normalization: str, cfg: EvaluateConfig | None = None):
    """Yields ``(volume, residual, normalised input, restoration or None, keep)`` per test
    subject, checking that each has a residual on its scan's grid; ``keep`` (the residual
    priors' voxels, :func:`keep_voxels`) is None without ``cfg``."""
    pred = Path(pred)
    for v in iter_volumes(data, modality):
        sid, scan = v.subject, f"sub-{v.subject}'s {modality} scan"
        part = functools.partial(
            restoration_part, pred, sid, shape=v.image.shape, affine=v.affine, ref_name=scan
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
        keep = cfg and keep_voxels(shown, restored, v.brainmask, cfg, f"{pred}: sub-{sid}")
        yield v, residual, shown, restored, keep


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
    space: str = "template",
) -> EvalResult:
    """Scores a restoration folder; writes ``thresholds.json``, ``metrics.json`` and each
    subject's ``sub-<id>_filtered`` and ``sub-<id>_seg`` NIfTI into ``out``.

    Thresholds come from ``healthy`` (a restoration folder of healthy scans) or from
    ``thresholds`` (a ``thresholds.json`` from an earlier evaluation). All inputs are read
    and validated before anything is written. The JAX post-processing runs on ``devices``
    devices (default: all), one volume each. With ``space`` ``native`` or ``both`` the
    filtered residuals and segmentations also go back onto each scan as acquired
    (``out/native/``; ``data`` from ``jaxuad-preprocess``).

    Returns:
      The :class:`EvalResult`, with the cohort histogram and each subject's
      :class:`~jaxuad.evaluate.score.SubjectView` (in memory) for the figures of
      :func:`jaxuad.report.write_report`.
    """
    cfg = cfg or EvaluateConfig()
    if (healthy is None) == (thresholds is None):
        raise ValueError("give exactly one of healthy= and thresholds=")
    pred, out = Path(pred), Path(out)
    inputs = [pred, *([healthy] if healthy is not None else [])]
    check_apart(out, [*inputs, *([data] if Path(data).is_dir() else [])])
    info = read_restoration_info(pred)
    modality = modality or (info.modality if info else "T1w")
    normalization = info.normalization if info else "minmax"
    inputs = list(read_inputs(pred, data, modality, normalization, cfg))
    if space != "template":
        from jaxuad.restore.cohort import check_space

        check_space(space, data, [v for v, *_ in inputs])
    post = Postprocessor(cfg, devices)
    fitted = (
        fit_thresholds_on_folder(healthy, cfg, post)
        if healthy is not None
        else load_thresholds(thresholds, cfg)
    )
    scorer = Scorer(fitted, cfg, post)

    out.mkdir(parents=True, exist_ok=True)
    write_json(fitted, out / "thresholds.json")

    # Compile once on the first volume, so per-volume times are steady state.
    v0, r0, _, _, k0 = inputs[0]
    t0 = time.perf_counter()
    size0 = v0.voxel_size
    post.segment(post.filter(r0, v0.brainmask, k0, size0), scorer.values[cfg.seg_threshold], size0)
    compile_s = time.perf_counter() - t0

    t_filter, views = 0.0, {}
    bar = tqdm(total=len(inputs), desc="evaluate", unit="subject", disable=not progress)
    group = post.mesh.devices.size  # volumes filtered together, one per device
    for start in range(0, len(inputs), group):
        chunk = inputs[start : start + group]
        t0 = time.perf_counter()
        sizes = [c[0].voxel_size for c in chunk]
        filtered = post.filter_many([(c[1], c[0].brainmask, c[4]) for c in chunk], sizes)
        t_filter += time.perf_counter() - t0
        segs = scorer.segment(filtered, sizes)
        for k, (vol, _, shown, restored, _) in enumerate(chunk):
            scorer.add(
                vol.subject, filtered[k], {n: s[k] for n, s in segs.items()},
                vol.brainmask, vol.lesion, sizes[k],
            )  # fmt: skip
            seg = segs[cfg.seg_threshold][k]
            views[vol.subject] = SubjectView.cut(shown, restored, filtered[k], seg, vol.lesion)
            write_nifti_like(filtered[k], vol, out / f"sub-{vol.subject}_filtered.nii.gz")
            write_nifti_like(seg, vol, out / f"sub-{vol.subject}_seg.nii.gz")
            if space != "template":
                from jaxuad.preprocess import write_native

                write_native(out, data, vol.subject, {"filtered": filtered[k], "seg": seg},
                             labels=("seg",))  # fmt: skip
            bar.update(1)
    bar.close()

    n = len(inputs)
    result = scorer.result(
        pred=str(pred.absolute()),
        data=str(Path(data).absolute()),
        model=info and info.model,
        latent=info and info.latent,
        method=info and info.method,
        prior=info and info.prior,
        modality=modality,
        seconds_per_slice=info and info.seconds_per_slice,
        seconds_per_iteration=info and info.seconds_per_iteration_per_image,
        postprocess={
            "backend": cfg.backend,
            "components_backend": post.components_backend,
            "components_fallback": post.fell_back,
            "compile_s": compile_s,
            "filter_seconds_per_volume": t_filter / n,
            "segment_seconds_per_volume": scorer.segment_seconds / n,
        },
        views=views,
    )
    result.write(out / "metrics.json")
    return result

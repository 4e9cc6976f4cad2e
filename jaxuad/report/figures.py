"""Figures: subject panels, cohort curves, the phantom, samples, λ calibration, galleries."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from jaxuad.core.io import atomic_path
from jaxuad.evaluate import EvalResult, SubjectView
from jaxuad.evaluate.score import pick_slice
from jaxuad.report.tables import fmt as _f


def _save(fig, path, dpi: int) -> None:
    """Writes ``fig`` as a PNG at ``path`` atomically (complete or not at all)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def _subplots(*args, **kw):
    """``(figure, axes)`` like ``pyplot.subplots``, on a figure pyplot does not know: drawing
    a report never touches the caller's matplotlib backend or open figures."""
    fig = Figure(figsize=kw.pop("figsize", None))
    return fig, fig.subplots(*args, **kw)


def _axial(vol: np.ndarray, k: int) -> np.ndarray:
    return np.rot90(vol[:, :, k])  # anterior up, as radiologists view axial slices


def subject_panel(path: Path, title: str, view: SubjectView, vmax_residual: float) -> None:
    """Input | restoration | filtered residual | segmentation (red) vs ground truth (green),
    on the view's slice; without a restoration or ground truth, their parts are left out."""
    cols = [
        ("input", view.image, "gray", None),
        ("restoration", view.restored, "gray", None),
        ("filtered residual", view.filtered, "inferno", vmax_residual),
    ]
    cols = [c for c in cols if c[1] is not None]
    fig, axes = _subplots(1, len(cols) + 1, figsize=(3 * len(cols) + 3, 3.6))
    lo, hi = view.window
    for ax, (name, plane, cmap, vmax) in zip(axes, cols, strict=False):
        kw = {"vmin": 0, "vmax": vmax} if vmax else {"vmin": lo, "vmax": hi}
        ax.imshow(np.rot90(plane), cmap=cmap, **kw)
        ax.set_title(name)
    ax, seg = axes[-1], np.rot90(view.seg)
    ax.imshow(np.rot90(view.image), cmap="gray", vmin=lo, vmax=hi)
    ax.imshow(np.ma.masked_where(~seg, seg), cmap="autumn", alpha=0.6)
    if view.lesion is not None and view.lesion.any():
        ax.contour(np.rot90(view.lesion), levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_title("segmentation / truth" if view.lesion is not None else "segmentation")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{title}  (axial slice {view.k})")
    fig.tight_layout()
    _save(fig, path, 80)


def _thin(c: dict, n: int = 4000) -> dict:
    step = max(1, len(c["threshold"]) // n)
    return {k: v[::step] for k, v in c.items()}


def cohort_figures(out: Path, m: EvalResult) -> None:
    """histogram.png (Baur Fig. 6), roc_pr.png, dice_threshold.png, from the result's merged
    histogram (``m.histogram``), with the healthy-fitted thresholds marked."""
    from jaxuad.metrics import bin_lower_edges

    hist = m.histogram
    taus = {n: a.threshold for n, a in m.at_threshold.items()}
    colours = dict(zip(taus, matplotlib.colormaps["tab10"](np.arange(len(taus))), strict=True))
    edges, counts = bin_lower_edges(), hist.counts
    total = counts.sum(0)
    nz = np.flatnonzero(total)
    if len(nz) == 0:
        return
    cum = np.cumsum(total[nz]) / total.sum()
    hi = edges[nz][min(np.searchsorted(cum, 0.999), len(nz) - 1)]
    hi = max(hi, max(taus.values()) * 1.2, 1e-6)
    lo = min(0.0, edges[nz][0])
    coarse = np.linspace(lo, hi, 101)
    which = np.clip(np.searchsorted(coarse, edges[nz], side="right") - 1, 0, 99)

    fig, ax = _subplots(figsize=(6, 4))
    for row, name, colour in ((0, "normal", "tab:blue"), (1, "lesion", "tab:red")):
        h = np.bincount(which, counts[row, nz], minlength=100)
        if h.sum():
            ax.stairs(
                h / h.sum(), coarse, label=f"{name} voxels", color=colour, fill=True, alpha=0.4
            )
    for n, t in taus.items():
        ax.axvline(t, color=colours[n], ls="--", lw=1, label=f"{n} = {t:.3g}")
    ax.set(
        yscale="log",
        xlabel="post-processed residual (last bin: everything above)",
        ylabel="fraction of voxels",
        title="Residuals inside the brain mask",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "histogram.png", 90)

    c = _thin(hist.curves())
    fig, (a1, a2) = _subplots(1, 2, figsize=(9, 4))
    a1.plot(np.r_[0, c["fpr"], 1], np.r_[0, c["tpr"], 1], color="k")
    a1.plot([0, 1], [0, 1], color="0.7", ls=":")
    a1.set(
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        title=f"ROC (AUC {_f(m.auroc)})",
    )
    a2.plot(c["tpr"], c["precision"], color="k")
    a2.set(
        xlabel="recall",
        ylabel="precision",
        title=f"PR (AP {_f(m.auprc)})",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    for n, a in m.at_threshold.items():
        a1.plot(a.fpr, a.recall, "o", color=colours[n], label=n)
        a2.plot(a.recall, a.precision, "o", color=colours[n], label=n)
    a1.legend(fontsize=7, title="after post-processing", title_fontsize=7)
    fig.tight_layout()
    _save(fig, out / "roc_pr.png", 90)

    fig, ax = _subplots(figsize=(6, 4))
    keep = c["threshold"] <= hi
    ax.plot(c["threshold"][keep], c["dice"][keep], color="k", label="pooled voxels")
    ax.plot(m.oracle_threshold, m.oracle_dice, "k*", ms=10, label="oracle (test-chosen)")
    for n, a in m.at_threshold.items():
        ax.axvline(a.threshold, color=colours[n], ls="--", lw=1)
        ax.plot(
            a.threshold,
            a.dice_mean,
            "o",
            color=colours[n],
            label=f"{n}: mean Dice {_f(a.dice_mean, '.3f')}",
        )
    ax.set(xlabel="threshold", ylabel="Dice", title="Dice against threshold", ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out / "dice_threshold.png", 90)


def phantom_figure(path: Path, seed: int = 0) -> None:
    """A healthy, an MS-like and a tumour-like phantom: T1w, T2w, FLAIR axial slices and a
    T1w sagittal slice with the lesion outlined (the README's picture)."""
    from jaxuad.data import phantom

    subjects = [
        ("healthy", phantom.make_subject(phantom.subject_seed(seed, "healthy", 0))),
        ("MS-like", phantom.make_subject(phantom.subject_seed(seed, "lesion", 0), "ms")),
        ("tumour-like", phantom.make_subject(phantom.subject_seed(seed, "lesion", 1), "tumour")),
    ]
    fig, axes = _subplots(3, 4, figsize=(10, 8.4))
    for row, (name, s) in zip(axes, subjects, strict=True):
        k = pick_slice(s.lesion, s.images["T1w"]) if s.lesion.any() else 50
        for ax, c in zip(row, phantom.CONTRASTS, strict=False):
            ax.imshow(_axial(s.images[c], k), cmap="gray")
            ax.set_title(f"{name} {c}", fontsize=9)
        x = int(np.argmax(s.lesion.sum(axis=(1, 2)))) if s.lesion.any() else 30
        row[3].imshow(np.rot90(s.images["T1w"][x]), cmap="gray")
        if s.lesion.any():
            row[3].contour(np.rot90(s.lesion[x]), levels=[0.5], colors="r", linewidths=0.7)
        row[3].set_title(f"{name} T1w sagittal", fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    _save(fig, path, 72)


def sample_grid(images: np.ndarray, path: Path, title: str = "") -> None:
    """Draws [n, S, S] images (axial slices, model input orientation) as a square-ish grid
    on one grey scale (the 1st to 99th percentile of all of them), written atomically."""

    n = len(images)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    lo, hi = np.percentile(images, [1, 99])
    fig, axes = _subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            ax.imshow(np.rot90(images[i]), cmap="gray", vmin=lo, vmax=hi)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path, 96)


def calibration_figure(run, cal) -> Path:
    """Draws a :class:`~jaxuad.restore.Calibration`'s SSIM curve into the run folder it was
    stored in, as ``ssim_lambda_<method>_<prior>.png``; returns the path."""
    path = Path(run) / f"ssim_lambda_{cal.method}_{cal.prior}.png"
    ssim_lambda_figure(path, cal.grid, cal.ssim, cal.lam, cal.ssim_target,
                       f"{cal.method}, {cal.prior} prior")  # fmt: skip
    return path


def ssim_lambda_figure(path: Path, grid, ssim, lam: float, target: float, title: str) -> None:
    """Mean SSIM of restored healthy slices against lambda, with the target and the choice."""

    fig, ax = _subplots(figsize=(5, 3.6))
    ax.plot(grid, ssim, "o-", color="C0")
    ax.axhline(target, color="0.5", ls="--", lw=1, label=f"target {target}")
    ax.axvline(lam, color="C3", lw=1, label=f"chosen lambda = {lam:g}")
    if np.all(np.asarray(grid) > 0):
        ax.set_xscale("log")
    ax.set_xlabel("lambda")
    ax.set_ylabel("mean SSIM (restored, healthy original)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path, 96)


def residual_gallery(path: Path, title: str, image, lesion, rows) -> None:
    """One test slice: the input, then each method's post-processed residual.

    ``rows``: (label, filtered residual volume, its healthy-fitted threshold, Dice). Each
    residual is drawn divided by its own threshold (colour scale 0-2), so every method is
    on the same footing: bright means above what healthy brains produce. Lesions are
    outlined in green.
    """
    # Only slices that were restored (the others have no residual) can show anything.
    covered = sum(np.abs(r[1]).sum(axis=(0, 1)) for r in rows) > 0 if rows else True
    k = pick_slice(None if lesion is None else lesion * covered, image)
    n = len(rows) + 1
    ncol = min(n, 5)
    nrow = -(-n // ncol)
    fig, axes = _subplots(nrow, ncol, figsize=(2.6 * ncol, 2.9 * nrow), squeeze=False)
    lo, hi = np.percentile(image[image != image.min()], [0.5, 99.5]) if np.ptp(image) else (0, 1)
    panels = [("input", image, None, None), *rows]
    for ax, (label, vol, threshold, dice) in zip(axes.flat, panels, strict=False):
        if threshold is None:
            ax.imshow(_axial(vol, k), cmap="gray", vmin=lo, vmax=hi)
        else:
            im = ax.imshow(_axial(vol / threshold, k), cmap="inferno", vmin=0, vmax=2)
        if lesion is not None and lesion[:, :, k].any():
            ax.contour(_axial(lesion, k), levels=[0.5], colors="lime", linewidths=0.7)
        ax.set_title(label if dice is None else f"{label}\nDice {dice:.3f}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if rows:
        fig.colorbar(im, ax=axes, shrink=0.6, label="residual / healthy threshold")
    fig.suptitle(f"{title} (axial slice {k}; lesions outlined in green)", fontsize=10)
    _save(fig, path, 80)


def dice_chart(path: Path, title: str, results: list[EvalResult], levels=None) -> None:
    """Baur: Dice mean ± std per model at the percentile threshold. Chen (``levels``):
    mean Dice against the healthy FPR each threshold allows, one line per method."""
    fig, ax = _subplots(figsize=(7, 0.45 * len(results) + 1.6) if not levels else (7, 4.2))
    names = [(m.name or "?") + (f" ({m.prior})" if m.prior else "") for m in results]
    if not levels:
        s = [m.at_threshold["percentile"] for m in results]
        y = np.arange(len(results))[::-1]
        ax.barh(y, [a.dice_mean for a in s], xerr=[a.dice_std for a in s], color="C0")
        ax.set_yticks(y, names)
        ax.set_xlabel("Dice (mean ± std over test subjects), 98th-percentile threshold")
        ax.set_xlim(0, 1)
    else:
        for i, (m, name) in enumerate(zip(results, names, strict=True)):
            d = [m.at_threshold[f"fpr{x:g}"].dice_mean for x in levels]
            style = "-" if m.prior != "l1" else "--"
            ax.plot(levels, d, style, marker="o", color=f"C{i % 10}", label=name)
        ax.set_xscale("log")
        ax.set_xticks(levels, [f"{x:g}%" for x in levels])
        ax.set_xlabel("false-positive rate allowed on healthy brain voxels")
        ax.set_ylabel("Dice (mean over test subjects)")
        ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path, 80)

"""Figures and Markdown for evaluation reports."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _axial(vol: np.ndarray, k: int) -> np.ndarray:
    return np.rot90(vol[:, :, k])  # anterior up, as radiologists view axial slices


def pick_slice(lesion: np.ndarray | None, score: np.ndarray) -> int:
    """The axial slice with most lesion voxels, else with the largest total score."""
    if lesion is not None and lesion.any():
        return int(np.argmax(lesion.sum(axis=(0, 1))))
    return int(np.argmax(score.sum(axis=(0, 1))))


def subject_panel(
    path: Path, title: str, image, restored, filtered, seg, lesion, vmax_residual: float
) -> None:
    """Input | restoration | filtered residual | segmentation (red) vs ground truth (green)."""
    k = pick_slice(lesion, filtered)
    cols = [
        ("input", image, "gray", None),
        ("restoration", restored, "gray", None),
        ("filtered residual", filtered, "inferno", vmax_residual),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.6))
    lo, hi = np.percentile(image[image > 0], [0.5, 99.5]) if (image > 0).any() else (0, 1)
    for ax, (name, vol, cmap, vmax) in zip(axes, cols, strict=False):
        if vol is None:
            ax.set_visible(False)
            continue
        kw = {"vmin": 0, "vmax": vmax} if vmax else {"vmin": lo, "vmax": hi}
        ax.imshow(_axial(vol, k), cmap=cmap, **kw)
        ax.set_title(name)
    ax = axes[3]
    ax.imshow(_axial(image, k), cmap="gray", vmin=lo, vmax=hi)
    ax.imshow(np.ma.masked_where(~_axial(seg, k), _axial(seg, k)), cmap="autumn", alpha=0.6)
    if lesion is not None and lesion[:, :, k].any():
        ax.contour(_axial(lesion, k), levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_title("segmentation / truth")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{title}  (axial slice {k})")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def markdown(metrics: dict) -> str:
    s = metrics["summary"]
    lines = [
        f"# jaxuad evaluation: {metrics['pred']}",
        "",
        f"Threshold: {metrics['threshold']['value']:.5g} "
        f"({metrics['threshold']['method']} {metrics['threshold']['percentile']} of "
        f"{metrics['threshold']['n_voxels']} healthy brain voxels from "
        f"`{metrics['threshold']['source']}`).",
        f"Post-processing: median {metrics['settings']['median_size']}^3, brain mask eroded "
        f"{metrics['settings']['erosion_iterations']}x, components < "
        f"{metrics['settings']['min_component_size']} voxels removed "
        f"({metrics['settings']['connectivity']}-connectivity).",
        "",
        "| model | Dice (mean ± std) | AUROC | AUPRC | subjects | time per slice [s] |",
        "|---|---|---|---|---|---|",
        f"| {metrics.get('model', '?')} | {s['dice_mean']:.4f} ± {s['dice_std']:.4f} | "
        f"{s['auroc']:.4f} | {s['auprc']:.4f} | {s['n_subjects']} | "
        f"{metrics.get('seconds_per_slice', float('nan')):.5f} |",
        "",
        "| subject | Dice | lesion voxels | segmented voxels |",
        "|---|---|---|---|",
    ]
    for row in metrics["subjects"]:
        lines.append(
            f"| {row['subject']} | {row['dice']:.4f} | {row['lesion_voxels']} | "
            f"{row['segmented_voxels']} |"
        )
    return "\n".join(lines) + "\n"


def phantom_figure(path: Path, seed: int = 0) -> None:
    """A healthy, an MS-like and a tumour-like phantom: T1w, T2w, FLAIR axial slices and a
    T1w sagittal slice with the lesion outlined (the README's picture)."""
    from jaxuad.data import phantom

    subjects = [
        ("healthy", phantom.make_subject(phantom.subject_seed(seed, "healthy", 0))),
        ("MS-like", phantom.make_subject(phantom.subject_seed(seed, "lesion", 0), "ms")),
        ("tumour-like", phantom.make_subject(phantom.subject_seed(seed, "lesion", 1), "tumour")),
    ]
    fig, axes = plt.subplots(3, 4, figsize=(10, 8.4))
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
    fig.savefig(path, dpi=72)
    plt.close(fig)

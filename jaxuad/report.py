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

"""Markdown tables of evaluation results, in the papers' layouts."""

from __future__ import annotations

import math

from jaxuad.config import EvaluateConfig
from jaxuad.evaluate import EvalResult
from jaxuad.evaluate.thresholds import stored_settings


def fmt(v, spec: str = ".4f") -> str:
    """``v`` formatted, or ``n/a`` for None and NaN."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def run_name(m: EvalResult) -> str:
    return m.name or m.model or "?"


def ceiling_dice(m: EvalResult) -> str:
    """The post-processing's ceiling Dice (μ ± σ), or n/a."""
    c = m.ceiling
    return "n/a" if c is None else f"{fmt(c.dice_mean, '.3f')} ± {fmt(c.dice_std, '.3f')}"


def baur_table(results: list[EvalResult]) -> list[str]:
    """Baur et al. 2018, Table 1 layout: model, z, Dice mean ± std, reconstruction time; and
    the ceiling the post-processing allows (the lesion masks post-processed)."""
    lines = [
        "| model | z | Dice (μ ± σ) | threshold | ceiling Dice | reconstruction [s/slice] |",
        "|---|---|---|---|---|---|",
    ]
    for m in results:
        lines.append(
            f"| {run_name(m)} | {m.latent or 'n/a'} | "
            f"{fmt(m.dice_mean)} ± {fmt(m.dice_std)} | {m.seg_threshold} | "
            f"{ceiling_dice(m)} | {fmt(m.seconds_per_slice, '.5f')} |"
        )
    return lines


def chen_table(results: list[EvalResult]) -> list[str]:
    """Chen et al. 2019, Table 1 layout: method, prior, Dice at each healthy FPR, AUC, s/iter."""
    # With no results (every row failed) the header still shows the default levels.
    levels = results[0].settings["fpr_levels"] if results else EvaluateConfig().fpr_levels
    head = " | ".join(f"Dice @{x:g}% FPR" for x in levels)
    lines = [
        f"| method | prior | {head} | AUC | AUPRC | ceiling Dice | s/iter |",
        "|---|---|" + "---|" * len(levels) + "---|---|---|---|",
    ]
    for m in results:
        at = m.at_threshold
        dice = " | ".join(
            fmt(at[f"fpr{x:g}"].dice_mean if f"fpr{x:g}" in at else None) for x in levels
        )
        method = m.method or "?"
        if m.model:
            method = f"{m.model} {method}"
        lines.append(
            f"| {method} | {m.prior or '-'} | {dice} | {fmt(m.auroc)} | {fmt(m.auprc)} | "
            f"{ceiling_dice(m)} | {fmt(m.seconds_per_iteration, '.4f')} |"
        )
    return lines


def sizes(st: dict) -> str:
    """The post-processing's sizes as the settings (:func:`stored_settings`) give them."""
    if st["units"] == "mm":
        return (
            f"median {st['median_mm']:g} mm, brain mask eroded {st['erosion_mm']:g} mm, "
            f"components < {st['min_component_mm3']:g} mm³ removed (converted per scan from "
            "its voxel size)"
        )
    return (
        f"median {st['median_size']}^3 voxels, brain mask eroded {st['erosion_iterations']}x, "
        f"components < {st['min_component_size']} voxels removed"
    )


def markdown(m: EvalResult) -> str:
    """``report.md`` of one evaluation."""
    st, pp, th = stored_settings(m.settings), m.postprocess, m.thresholds
    sign = st["residual_sign"]
    priors = [
        n
        for n, on in (
            (
                f"{sign} residuals only (the scan {'brighter' if sign == 'positive' else 'darker'} "
                "than its restoration)",
                sign != "both",
            ),
            (
                f"hyperintensity prior (input >= its {st['hyperintensity_quantile']:g} quantile)",
                st["hyperintensity_quantile"] > 0,
            ),
        )
        if on
    ] or ["none"]
    lines = [
        f"# jaxuad evaluation: {m.pred}",
        "",
        f"Post-processing: {sizes(st)}, {st['connectivity']}-connectivity; residual priors: "
        f"{', '.join(priors)}. "
        f"Thresholds fitted on {th['n_voxels']} healthy brain voxels of {th['n_subjects']} "
        f"subjects from `{th['source']}`. Segmentations written at `{m.seg_threshold}`.",
        "",
        "## Baur et al. 2018 layout",
        "",
        *baur_table([m]),
        "",
        "## Chen et al. 2019 layout",
        "",
        *chen_table([m]),
        "",
        "## Every threshold (fitted on healthy data)",
        "",
        "| threshold | rule | value | healthy FPR | Dice (μ ± σ) | precision | recall "
        "| test FPR | lesions detected |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, a in m.at_threshold.items():
        lines.append(
            f"| {name} | {th['thresholds'][name]['rule']} | {a.threshold:.5g} | "
            f"{fmt(a.healthy_fpr, '.4%')} | {fmt(a.dice_mean)} ± {fmt(a.dice_std)} | "
            f"{fmt(a.precision)} | {fmt(a.recall)} | {fmt(a.fpr, '.4%')} | "
            f"{a.lesions_detected}/{a.lesions} ({fmt(a.detection_rate, '.1%')}) |"
        )
    lines += [
        "",
        f"Voxel-level, pooled over {m.n_subjects} subjects ({m.lesion_voxels} lesion and "
        f"{m.normal_voxels} normal brain voxels): AUROC {fmt(m.auroc)} "
        f"(exact to ±{m.auroc_tie_bound:.1e}), AUPRC {fmt(m.auprc)}.",
        f"**Oracle** best Dice (pooled voxels, threshold {m.oracle_threshold:.5g} chosen on "
        f"this test data, before component removal; not a fair estimate): "
        f"{fmt(m.oracle_dice)}.",
        "",
    ]
    if m.ceiling is not None:
        c = m.ceiling
        lines += [
            f"**Ceiling** of the post-processing (each lesion mask post-processed as a residual "
            f"would be, thresholded at 0.5): Dice {ceiling_dice(m)}, {c.lesions_kept} of "
            f"{c.lesions} lesions kept. No model can do better through this post-processing.",
            "",
        ]
    if pp:
        lines += [
            f"Time: restoration {fmt(m.seconds_per_slice, '.5f')} s/slice; "
            f"post-processing {pp['filter_seconds_per_volume']:.3f} s/volume (filter, "
            f"{st['backend']}) + {pp['segment_seconds_per_volume']:.3f} s/volume "
            f"(threshold and components, {pp['components_backend']}); "
            f"compile {pp['compile_s']:.1f} s.",
            "",
        ]
    lines += [
        "![residual histogram](histogram.png) ![ROC and PR](roc_pr.png) "
        "![Dice against threshold](dice_threshold.png)",
        "",
        "## Subjects",
        "",
        "| subject | "
        + " | ".join(f"Dice {n}" for n in m.at_threshold)
        + " | ceiling Dice | lesion voxels | segmented voxels |",
        "|---|" + "---|" * (len(m.at_threshold) + 3),
    ]
    for row in m.subjects:
        dices = " | ".join(fmt(row.dice[n]) for n in m.at_threshold)
        lines.append(
            f"| {row.subject} | {dices} | {fmt(row.ceiling_dice)} | {row.lesion_voxels} | "
            f"{row.segmented_voxels} |"
        )
    return "\n".join(lines) + "\n"


def compare_markdown(results: list[EvalResult]) -> str:
    """Several evaluations in the papers' two table layouts (``jaxuad-compare``)."""
    return (
        "\n".join(
            [
                "## Baur et al. 2018 layout",
                "",
                *baur_table(results),
                "",
                "## Chen et al. 2019 layout",
                "",
                *chen_table(results),
            ]
        )
        + "\n"
    )

"""Markdown tables of evaluation results, in the papers' layouts."""

from __future__ import annotations

import math

from jaxuad.config import EvaluateConfig
from jaxuad.evaluate import EvalResult


def fmt(v, spec: str = ".4f") -> str:
    """``v`` formatted, or ``n/a`` for None and NaN."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def run_name(m: EvalResult) -> str:
    return m.name or m.model or "?"


def baur_table(results: list[EvalResult]) -> list[str]:
    """Baur et al. 2018, Table 1 layout: model, z, Dice mean ± std, reconstruction time."""
    lines = [
        "| model | z | Dice (μ ± σ) | threshold | reconstruction [s/slice] |",
        "|---|---|---|---|---|",
    ]
    for m in results:
        lines.append(
            f"| {run_name(m)} | {m.latent or 'n/a'} | "
            f"{fmt(m.dice_mean)} ± {fmt(m.dice_std)} | {m.seg_threshold} | "
            f"{fmt(m.seconds_per_slice, '.5f')} |"
        )
    return lines


def chen_table(results: list[EvalResult]) -> list[str]:
    """Chen et al. 2019, Table 1 layout: method, prior, Dice at each healthy FPR, AUC, s/iter."""
    # With no results (every row failed) the header still shows the default levels.
    levels = results[0].settings["fpr_levels"] if results else EvaluateConfig().fpr_levels
    head = " | ".join(f"Dice @{x:g}% FPR" for x in levels)
    lines = [
        f"| method | prior | {head} | AUC | s/iter |",
        "|---|---|" + "---|" * len(levels) + "---|---|",
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
            f"| {method} | {m.prior or '-'} | {dice} | {fmt(m.auroc)} | "
            f"{fmt(m.seconds_per_iteration, '.4f')} |"
        )
    return lines


def markdown(m: EvalResult) -> str:
    """``report.md`` of one evaluation."""
    st, pp, th = m.settings, m.postprocess, m.thresholds
    priors = [
        n
        for n, on in (
            ("positive residuals only", st["positive_only"]),
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
        f"Post-processing: median {st['median_size']}^3, brain mask eroded "
        f"{st['erosion_iterations']}x, components < {st['min_component_size']} voxels removed "
        f"({st['connectivity']}-connectivity); residual priors: {', '.join(priors)}. "
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
        + " | lesion voxels | segmented voxels |",
        "|---|" + "---|" * (len(m.at_threshold) + 2),
    ]
    for row in m.subjects:
        dices = " | ".join(fmt(row.dice[n]) for n in m.at_threshold)
        lines.append(f"| {row.subject} | {dices} | {row.lesion_voxels} | {row.segmented_voxels} |")
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

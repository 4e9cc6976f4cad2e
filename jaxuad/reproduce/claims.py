"""Which of a paper's claims hold on a reproduction, each with its numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxuad.reproduce.protocols import BASELINE_ROWS, CHEN_ROWS, Row, row_key

if TYPE_CHECKING:
    from jaxuad.evaluate import EvalResult


def _dice(m: EvalResult, threshold: str = "percentile") -> float:
    return m.at_threshold[threshold].dice_mean


def claims(paper: str, rows: list[tuple[Row, EvalResult]]) -> list[str]:
    """Which of the paper's claims hold on this run, each with its numbers.

    A claim "A better than B" holds at a threshold when every listed pair has a strictly
    higher mean Dice for A; the pairs and their Dice are printed beside the verdict.
    """
    by = {row_key(r): m for r, m in rows}
    lines = ["## The paper's claims on this run", ""]

    def claim(name: str, pairs: list[tuple[str, str]], thresholds: tuple[str, ...]) -> None:
        have = [(a, b) for a, b in pairs if a in by and b in by]
        if not have:
            lines.append(f"- {name}: not measured (rows missing)")
            return
        parts = []
        for t in thresholds:
            cmp = [(a, b, _dice(by[a], t), _dice(by[b], t)) for a, b in have]
            ok = all(x > y for *_, x, y in cmp)
            detail = "; ".join(f"{a} {x:.3f} vs {b} {y:.3f}" for a, b, x, y in cmp)
            parts.append(f"at {t}: **{'holds' if ok else 'does not hold'}** ({detail})")
        lines.append(f"- {name}: " + "; ".join(parts))

    if paper == "baur":
        rec = "-reconstruction"
        spatial = [("sae", "dae"), ("svae", "dvae")]
        adversarial = [("sae_gan", "sae"), ("anovaegan", "svae")]
        claim(
            "spatial better than dense", [(a + rec, b + rec) for a, b in spatial], ("percentile",)
        )
        claim(
            "adversarial training helps",
            [(a + rec, b + rec) for a, b in adversarial],
            ("percentile",),
        )
        return lines + against_baselines(by, "percentile")
    low = ("fpr0.1", "fpr0.5", "fpr1")
    priors = ("tv", "l1")
    claim(
        "LG(neural) better than MAP",
        [(f"vae_chen-lg_neural-{p}", f"vae_chen-map-{p}") for p in priors],
        low,
    )
    claim(
        "MAP better than reconstruction",
        [(f"vae_chen-map-{p}", "vae_chen-reconstruction") for p in priors],
        low,
    )
    claim(
        "TV better than L1",
        [(row_key(r), row_key(r)[:-2] + "l1") for r in CHEN_ROWS if r.prior == "tv"],
        ("fpr0.1", "fpr1"),
    )
    return lines + against_baselines(by, "fpr1")


def against_baselines(by: dict[str, EvalResult], threshold: str) -> list[str]:
    """The best model row (by AUROC) against each voxel-wise baseline: AUROC, AUPRC and
    Dice at ``threshold``, with the differences."""
    baselines = {row_key(r) for r in BASELINE_ROWS}
    models = {k: m for k, m in by.items() if k not in baselines}
    if not models:
        return ["- best model against the baselines: not measured (no model row)"]
    best = max(models, key=lambda k: models[k].auroc)
    b = models[best]
    lines = []
    for key in sorted(baselines & set(by)):
        m = by[key]
        figures = [
            ("AUROC", b.auroc, m.auroc),
            ("AUPRC", b.auprc, m.auprc),
            (f"Dice at {threshold}", _dice(b, threshold), _dice(m, threshold)),
        ]
        beats = all(x > y for _, x, y in figures)
        detail = "; ".join(f"{n} {x:.3f} vs {y:.3f} ({x - y:+.3f})" for n, x, y in figures)
        lines.append(
            f"- best model ({best}) beats the {key} baseline: "
            f"**{'yes' if beats else 'no'}** ({detail})"
        )
    return lines or ["- best model against the baselines: not measured (no baseline row)"]

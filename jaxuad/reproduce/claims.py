"""Which of a paper's claims hold on a reproduction, each with its numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxuad.reproduce.protocols import Protocol, Row, row_key

if TYPE_CHECKING:
    from jaxuad.evaluate import EvalResult


def _dice(m: EvalResult, threshold: str = "percentile") -> float:
    return m.at_threshold[threshold].dice_mean


def claims(protocol: Protocol, rows: list[tuple[Row, EvalResult]]) -> list[str]:
    """Which of the protocol's claims hold on this run, each with its numbers, then the best
    model against each baseline.

    A claim "A better than B" holds at a threshold when every listed pair has a strictly
    higher mean Dice for A; the pairs and their Dice are printed beside the verdict.
    """
    by = {row_key(r): m for r, m in rows}
    lines = ["## The paper's claims on this run", ""]
    for c in protocol.claims:
        have = [(a, b) for a, b in c.pairs if a in by and b in by]
        if not have:
            lines.append(f"- {c.name}: not measured (rows missing)")
            continue
        parts = []
        for t in c.thresholds:
            cmp = [(a, b, _dice(by[a], t), _dice(by[b], t)) for a, b in have]
            ok = all(x > y for *_, x, y in cmp)
            detail = "; ".join(f"{a} {x:.3f} vs {b} {y:.3f}" for a, b, x, y in cmp)
            parts.append(f"at {t}: **{'holds' if ok else 'does not hold'}** ({detail})")
        lines.append(f"- {c.name}: " + "; ".join(parts))
    return lines + against_baselines(by, protocol.baselines, protocol.threshold)


def against_baselines(
    by: dict[str, EvalResult], baselines: tuple[str, ...], threshold: str
) -> list[str]:
    """The best model row (by AUROC) against each voxel-wise baseline (row keys): AUROC,
    AUPRC and Dice at ``threshold``, with the differences."""
    baselines = set(baselines)
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

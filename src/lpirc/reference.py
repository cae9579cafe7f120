"""Published figures the book compares against (reference/*.csv), never mixed with measured ones."""
from __future__ import annotations

import pandas as pd

from lpirc.paths import project_root


def mobilenet_v1_published() -> pd.DataFrame:
    return pd.read_csv(project_root() / "reference" / "mobilenet_v1_published.csv")


def entry_figures() -> pd.DataFrame:
    return pd.read_csv(project_root() / "reference" / "entry_figures.csv")


def entry() -> dict:
    """The entry's own two figures (reference/entry_figures.csv): {"unfactorized": {"top1", "latency_ms"},
    "factorized": {...}} — quantized MobileNet v1 @160 before and after factorizing nine 1x1 layers."""
    rows = entry_figures()
    rows = rows[rows.label.str.startswith("the entry:")]
    if len(rows) != 2:
        raise ValueError("reference/entry_figures.csv must hold exactly two 'the entry:' rows (before, after)")
    before, after = (rows.iloc[i] for i in (0, 1))
    return {"unfactorized": {"top1": float(before.top1), "latency_ms": float(before.latency_ms)},
            "factorized": {"top1": float(after.top1), "latency_ms": float(after.latency_ms)}}


def published_row(width_multiplier: float, resolution: int) -> pd.Series:
    df = mobilenet_v1_published()
    sel = df[(df.width_multiplier == width_multiplier) & (df.resolution == resolution)]
    if sel.empty:
        raise KeyError(f"no published MobileNet v1 {width_multiplier}_{resolution}")
    return sel.iloc[0]


def challenge_score(top1: float, latency_ms: float, budget_ms: float = 30.0) -> float:
    """LPIRC 2018 track 1: acc / max(30 x T, runtime) with runtime = T x per-image latency.

    Per image this is acc / max(30, latency_ms); scaled by 30 so a model at or under 30 ms scores
    its accuracy in percent (the entry's 67.3% at 43 ms -> 47.0)."""
    return top1 * budget_ms / max(budget_ms, latency_ms)

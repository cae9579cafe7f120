"""Showing results in the executed notebooks: captioned tables and prose generated from numbers.

Outputs are MyST markdown (the book sets ``nb_render_markdown_format: myst``), so a table shown
here is a numbered, captioned ``{table}`` in the book, and sentences carry numbers read from the
results files, never typed by hand.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from scipy import stats


def _cell(value, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def markdown_table(frame, digits: int = 2, formats: dict | None = None) -> str:
    formats = formats or {}
    cols = list(frame.columns)
    lines = ["| " + " | ".join(str(c).replace("|", "\\|") for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            fmt = formats.get(c)
            cells.append(fmt(row[c]) if fmt else _cell(row[c], digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(frame, caption: str, name: str, digits: int = 2, formats: dict | None = None):
    """Display a DataFrame as a numbered, captioned MyST table."""
    if len(frame) == 0:
        raise ValueError(f"table {name!r} is empty: the results it is built from are missing")
    # A colon fence: CommonMark forbids a backtick (a {cite} role) in a backtick fence's opening line,
    # and such a table would render as raw text without any warning.
    md = f":::{{table}} {caption}\n:name: {name}\n\n{markdown_table(frame, digits, formats)}\n:::"
    display(Markdown(md))


def relabel(frame, labels: dict):
    """The columns of ``labels`` renamed for display, in that order; a column whose new label ends in
    "(%)" holds a fraction (top-1 is stored as 0..1) and is shown multiplied by 100."""
    shown = frame[list(labels)].copy()
    for col, label in labels.items():
        if label.endswith("(%)"):
            shown[col] = shown[col] * 100
    return shown.rename(columns=labels)


def ci_columns(agg, labels: dict, shown=None):
    """``shown`` (a new frame if None) with one "mean ± half-width" text column per ``labels`` entry
    ({column of :func:`lpirc.stats.aggregate`: label}); fractions are shown in percent."""
    shown = pd.DataFrame(index=agg.index) if shown is None else shown
    for col, label in labels.items():
        shown[label] = [fmt_ci(m, h) for m, h in zip(agg[col], agg[f"{col}_ci95"])]
    return shown


def differences(tests, columns: dict, what: str = "difference (points)"):
    """A display frame of :func:`lpirc.stats.paired_differences` results: ``columns`` ({column: label}) kept,
    the difference in points with its unadjusted 95% t-interval."""
    shown = tests[list(columns)].rename(columns=columns)
    shown[f"{what} [95% t-interval]"] = [fmt_interval(100 * d, 100 * lo, 100 * hi) for d, lo, hi in
                                         tests[["difference", "ci_low", "ci_high"]].values]
    return shown


def interval_column(frame, prefix: str = "latency_ratio", low: str = "ratio_ci_low", high: str = "ratio_ci_high",
                    digits: int = 2, scale: float = 1.0) -> list[str]:
    """'estimate [low, high]' strings for every row of ``frame``."""
    return [fmt_interval(scale * a, scale * b, scale * c, digits) for a, b, c in frame[[prefix, low, high]].values]


def fmt_interval(estimate: float, low: float, high: float, digits: int = 2) -> str:
    """'0.84 [0.82, 0.86]': an estimate with its 95% interval."""
    if any(v != v for v in (estimate, low, high)):
        return "–" if estimate != estimate else f"{estimate:.{digits}f}"
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def say(text: str):
    display(Markdown(text))


def plural(n, word: str, many: str | None = None) -> str:
    """'1 epoch', '3 epochs': ``n`` with ``word`` in the singular or the plural (``many``, else word + 's')."""
    count = f"{n:g}" if isinstance(n, float) else f"{n}"
    return f"{count} {word if n == 1 else many or word + 's'}"


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a Student-t confidence interval (nan half-width for n < 2)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()) if len(a) else float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(half)


def fmt_ci(mean: float, half: float, scale: float = 100, digits: int = 1) -> str:
    if math.isnan(half):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {half * scale:.{digits}f}"


def fmt_p(p: float) -> str:
    """'p = 0.042', 'p < 0.001' (never 'p = 0.000'), 'p n/a' when the test could not be computed."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"

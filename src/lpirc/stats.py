"""Statistics over seeds: means with t intervals, and paired differences that describe a grid.

A grid trains every configuration once per seed, and the same seed gives the same start and data
order in every configuration, so two configurations are compared *paired by seed*: the difference
is taken seed by seed, which removes the seed-to-seed variation both share. These functions
describe; the tests that decide a claim (with their own, stated multiplicity) are in lpirc.claims,
so a table never shows a p-value from another family than the verdict's.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from lpirc.report import mean_ci


def aggregate(frame, by: list[str], columns: list[str], extra_means: tuple = ()):
    """One row per group of ``by``: the number of seeds, and for each of ``columns`` its mean and the
    half-width of its 95% t-interval (``<col>_ci95``); ``extra_means`` are averaged only."""

    rows = []
    for key, g in frame.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)), seeds=len(g))
        for col in columns:
            row[col], row[f"{col}_ci95"] = mean_ci(g[col])
        row.update({c: float(g[c].mean()) for c in extra_means})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(frame, value: str, group: str, reference, pair_on: str = "seed"):
    """Every group of ``group`` against the ``reference`` group (fixed in advance, not picked from the
    data), paired on ``pair_on``: mean difference (other − reference) and its 95% t-interval, unadjusted
    (a description of the grid; claims test with their own multiplicity in lpirc.claims)."""
    wide = frame.pivot_table(index=pair_on, columns=group, values=value)
    rows = []
    for g in wide.columns:
        if g == reference:
            continue
        pair = wide[[reference, g]].dropna()
        d = (pair[g] - pair[reference]).to_numpy(float)
        n = len(d)
        half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n) if n >= 2 and d.std(ddof=1) > 0 else float("nan")
        rows.append({"reference": reference, "other": g, "n_pairs": n, "difference": float(d.mean()) if n else float("nan"),
                     "ci_low": float(d.mean() - half) if n else float("nan"),
                     "ci_high": float(d.mean() + half) if n else float("nan")})
    return pd.DataFrame(rows)


def time_split(runs, phases=("start", "build", "train", "evaluate", "int8: convert and evaluate")):
    """Where a grid task's wall time goes (``runs``: rows with a ``timing_s`` dict, see lpirc.grid._call):
    the mean seconds per task of each phase, its share, and the fixed cost (everything but training)
    as a share of the task. 'start' is a worker's process start and TensorFlow's import, paid by the
    first task on each worker, so its mean is spread over all tasks."""
    t = pd.DataFrame([{p: (r or {}).get(p, 0.0) for p in phases} for r in runs.timing_s])
    total = t.sum(axis=1)
    rows = [{"phase": p, "mean s per task": float(t[p].mean()), "share of task (%)": float(100 * t[p].sum() / total.sum())}
            for p in phases]
    fixed = 100 * (total.sum() - t["train"].sum()) / total.sum()
    rows.append({"phase": "fixed cost (all but train)", "mean s per task": float((total - t["train"]).mean()),
                 "share of task (%)": float(fixed)})
    return pd.DataFrame(rows)


def with_wilson(frame, column: str, n: int, confidence: float = 0.95):
    """``frame`` with ``<column>_low`` and ``<column>_high``: the Wilson interval of each row's accuracy
    (a fraction of ``n`` images, one model evaluated once), what the noise of a single accuracy is."""
    lo, hi = proportion_confint(np.round(frame[column].to_numpy(float) * n), n, alpha=1 - confidence, method="wilson")
    return frame.assign(**{f"{column}_low": lo, f"{column}_high": hi})


# --------------------------------------------------------------------------------------------------
# latency ratios with the timing session as the unit (lpirc.bench.timing_table saves them per session)
def session_ratio(per_session_ratios, confidence: float = 0.95) -> tuple[float, float, float]:
    """Ratio and interval with the session as the unit: the geometric mean of the sessions' ratios of
    medians and a Student-t interval of their logarithms (a single session: no interval, NaN)."""
    logs = np.log(np.asarray(per_session_ratios, float))
    est = float(np.exp(logs.mean()))
    if len(logs) < 2:
        return est, math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    return est, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def session_spread(per_session_ratios) -> float:
    """How much one file's ratio moves from one timing session to the next: the SD of the logarithms of its
    per-session ratios (a list, or the JSON text of a saved table's ``session_ratios`` cell); nan with fewer
    than two sessions, 0 for the table's reference file."""
    r = json.loads(per_session_ratios) if isinstance(per_session_ratios, str) else list(per_session_ratios)
    return float(np.std(np.log(np.asarray(r, float)), ddof=1)) if len(r) > 1 else math.nan

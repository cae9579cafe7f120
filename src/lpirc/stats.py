"""Statistics over seeds: means with t intervals, and paired comparisons with a multiplicity correction.

A grid trains every configuration once per seed, and the same seed gives the same initialisation and
data order in every configuration, so two configurations are compared *paired by seed*: the
difference is taken seed by seed, which removes the seed-to-seed variation both share. Several
comparisons against one reference are corrected together with Holm's method (statsmodels), so "one
of eight p-values fell under 0.05" is not read as a finding.
"""
from __future__ import annotations

import numpy as np


def aggregate(frame, by: list[str], columns: list[str], extra_means: tuple = ()):
    """One row per group of ``by``: the number of seeds, and for each of ``columns`` its mean and the
    half-width of its 95% t-interval (``<col>_ci95``); ``extra_means`` are averaged only."""
    import pandas as pd

    from lpirc.report import mean_ci

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
    data), paired on ``pair_on``: mean difference (other − reference), its 95% t-interval, the paired
    t-test's p-value and the Holm-adjusted p-value over all the comparisons of this call."""
    import pandas as pd
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    wide = frame.pivot_table(index=pair_on, columns=group, values=value)
    rows = []
    for g in wide.columns:
        if g == reference:
            continue
        pair = wide[[reference, g]].dropna()
        d = (pair[g] - pair[reference]).to_numpy(float)
        n = len(d)
        if n >= 2 and d.std(ddof=1) > 0:
            half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
            p = float(stats.ttest_1samp(d, 0.0).pvalue)
        else:
            half, p = float("nan"), float("nan")
        rows.append({"reference": reference, "other": g, "n_pairs": n, "difference": float(d.mean()) if n else float("nan"),
                     "ci_low": float(d.mean() - half) if n else float("nan"),
                     "ci_high": float(d.mean() + half) if n else float("nan"), "p_value": p})
    out = pd.DataFrame(rows)
    ok = out.p_value.notna() if len(out) else []
    out["p_holm"] = float("nan")
    if len(out) and ok.any():
        out.loc[ok, "p_holm"] = multipletests(out.loc[ok, "p_value"], method="holm")[1]
    return out

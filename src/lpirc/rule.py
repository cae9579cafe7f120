"""What the rule rewarded: the challenge score of every configuration, and the search the entry planned.

The challenge scored a classifier by ``acc / max(30 T, runtime)`` with ``runtime = T x latency``; per
image and scaled by 30 that is

    score = top-1 (%) x 30 / max(30, latency in ms)

flat below 30 ms (the **knee**: a faster model scores no more) and falling as 1 / ms above it. This
module answers two questions on ImageNet figures:

1. **What did the rule reward?** The score of every published MobileNet v1 configuration (width x
   resolution, float and int8), of the entry's two models and of the winner (reference/*.csv), each with
   an interval. The interval carries the latency's uncertainty *across benchmarks*: the entry measured
   its unfactorized network at 43 ms where Google published 37.4 ms for the same network, so a latency
   from any one benchmark is drawn log-uniformly within that ratio either way (both numbers are read
   from the csv files, see :func:`benchmark_spread`).
2. **Would a search have found something better?** A score-optimal search over width x input resolution
   x factorization, int8. Latency: this host's interleaved timing projected to the Pixel 2 by the
   benchmark chapter's fit (:mod:`lpirc.projection`), only inside the fit's domain, with its 95%
   prediction interval. Top-1: published where Google published it, otherwise *interpolated* by a
   small model fitted on the published grid (:func:`fit_accuracy`, with its leave-one-out error).
   Factorization: the entry's own cost (relative top-1 loss at nine layers) scaled by the number of
   layers, and a latency ratio (the entry's own, scaled the same way, or one measured on this host by
   the factorization chapter). The exhaustive search (:func:`exhaustive`) is compared with a greedy,
   NetAdapt-style one (:func:`greedy`).

Uncertainty is propagated by Monte-Carlo (:func:`simulate`): every draw samples a latency and a top-1
for every row, and the score's 95% interval is the 2.5-97.5 percentile range of its draws.

This module itself is numpy / pandas / scipy / matplotlib and calls no TensorFlow (lpirc.projection,
whose fit and domain it reuses, imports the converter). The notebook times the configurations the
benchmark chapter did not (with the project's converter and timer, against an *anchor* model of the
benchmark) and passes the tables in.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from lpirc import claims, projection, reference
from lpirc.plots import plain_log_axis
from lpirc.report import fmt_interval, plural

KNEE_MS = 30.0                               # the rule: 30 x T, T = 1 ms per image
UNFACTORIZED = "MobileNet v1, unfactorized"  # the family the benchmark's projection was fitted on
CLAIM_ID = "search_beats_entry"
ACCURACY_FORMULA = "top-1 = a + b ln(width) + c ln(resolution) + d ln(width)²"


# --------------------------------------------------------------------------------------------------
# the rule
def challenge_score(top1, latency_ms, knee_ms: float = KNEE_MS):
    """The LPIRC 2018 score per image, scaled by the knee: top-1 x knee / max(knee, latency).

    A model at or under ``knee_ms`` scores its top-1 (in whatever unit ``top1`` is given, usually %);
    above it the score falls as 1 / latency. Works on numbers and on numpy arrays alike; a NaN
    latency or top-1 (a configuration that could not be estimated) gives NaN."""
    top1, latency_ms = np.asarray(top1, float), np.asarray(latency_ms, float)
    score = top1 * knee_ms / np.maximum(knee_ms, latency_ms)
    return float(score) if score.ndim == 0 else score


def iso_score_top1(score: float, latency_ms, knee_ms: float = KNEE_MS):
    """The top-1 a model at ``latency_ms`` needs to score ``score``: the iso-score line (flat below the
    knee, rising linearly above it)."""
    return score * np.maximum(knee_ms, np.asarray(latency_ms, float)) / knee_ms


def bound(x: float, digits: int = 1, sign: bool = False) -> str:
    """A number for an interval, never a rounded zero with a sign ('-0.0'): a value that rounds to zero at
    ``digits`` gets as many more digits (up to three) as show it, so -0.04 reads '-0.04'. ``sign``: '+' too."""
    d, plus = digits, "+" if sign else ""
    while x == x and x != 0 and round(abs(x), d) == 0 and d < digits + 3:
        d += 1
    return f"{0:.{digits}f}" if x == x and x != 0 and round(abs(x), d) == 0 else f"{x:{plus}.{d}f}"


def knee_side(low: float, high: float, knee_ms: float = KNEE_MS) -> str:
    """Where a latency interval lies against the knee, in words."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"no interval to set against the {knee_ms:g} ms knee"
    return (f"wholly under the {knee_ms:g} ms knee" if high <= knee_ms else f"wholly above the {knee_ms:g} ms knee"
            if low > knee_ms else f"its interval straddles the {knee_ms:g} ms knee")


# --------------------------------------------------------------------------------------------------
# the reference figures, read from reference/*.csv
def width_label(width: float) -> str:
    """A width multiplier as Google writes it: 1.0, 0.75, 0.5, 0.25 (0.875 stays 0.875)."""
    return f"{float(width):.1f}" if float(width).is_integer() else f"{float(width):g}"


def config_label(width: float, resolution: int) -> str:
    """'1.0 @128': a MobileNet v1 configuration, width x input resolution."""
    return f"{width_label(width)} @{int(resolution)}"


def _architecture(model: str) -> tuple[float, int]:
    m = re.search(r"mobilenet_v1_([0-9.]+)_([0-9]+)", model)
    if not m:
        raise ValueError(f"cannot read a MobileNet v1 width and resolution from {model!r}")
    return float(m.group(1)), int(m.group(2))


def entry_figures() -> dict:
    """The entry's figures from reference/entry_figures.csv: its architecture (width, resolution, read
    from the model column), the number of factorized layers (read from the label), top-1 and latency
    before and after factorizing, and the score of each."""
    rows = reference.entry_figures()
    rows = rows[rows.label.str.startswith("the entry:")]
    e = reference.entry()
    width, resolution = _architecture(rows.model.iloc[0])
    layers = re.search(r"(\d+) factorized", rows.label.iloc[1])
    if not layers:
        raise ValueError(f"cannot read the number of factorized layers from {rows.label.iloc[1]!r}")
    before, after = e["unfactorized"], e["factorized"]
    return {"width_multiplier": width, "resolution": resolution, "layers": int(layers.group(1)),
            "unfactorized": {**before, "score": challenge_score(before["top1"], before["latency_ms"])},
            "factorized": {**after, "score": challenge_score(after["top1"], after["latency_ms"])},
            "latency_ratio": after["latency_ms"] / before["latency_ms"],
            "relative_loss": 1 - after["top1"] / before["top1"]}


def benchmark_spread() -> dict:
    """How much one network's Pixel 2 latency differs between benchmarks: the entry's own measurement of
    its unfactorized int8 network over Google's published latency of the same network (both read from
    reference/*.csv). A latency from any one benchmark is taken as uncertain by this factor either way."""
    e = entry_figures()
    published = reference.pixel2_ms(e["width_multiplier"], e["resolution"], "int8")
    measured = e["unfactorized"]["latency_ms"]
    return {"ratio": max(measured, published) / min(measured, published), "entry_ms": measured,
            "published_ms": published, "network": f"MobileNet v1 {config_label(e['width_multiplier'], e['resolution'])} int8"}


# --------------------------------------------------------------------------------------------------
# Monte-Carlo propagation
def _column(frame, name: str, default: float) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), default)
    return frame[name].fillna(default).to_numpy(float)


def _draws(frame, spread: float, draws: int, rng, knee_ms: float = KNEE_MS):
    """(latency, score) draws, one row per row of ``frame``: see :func:`simulate` for the columns read."""
    n = len(frame)
    top1, lat = frame.top1.to_numpy(float), frame.latency_ms.to_numpy(float)
    half = np.log(spread)
    log_lat = (np.log(lat)[:, None] + rng.uniform(-half, half, (n, draws))
               + _column(frame, "latency_log_se", 0.0)[:, None]
               * rng.standard_t(_column(frame, "latency_df", 1e6)[:, None], (n, draws))
               + _column(frame, "ratio_log_se", 0.0)[:, None] * rng.standard_normal((n, draws))
               + _column(frame, "host_log_se", 0.0)[:, None] * rng.standard_normal((n, draws)))
    acc = (top1[:, None] + _column(frame, "top1_se", 0.0)[:, None]
           * rng.standard_t(_column(frame, "top1_df", 1e6)[:, None], (n, draws)))
    latency = np.exp(log_lat)
    return latency, challenge_score(acc, latency, knee_ms)


def simulate(frame, spread: float, draws: int, seed: int, threshold: float | None = None, knee_ms: float = KNEE_MS,
             chunk: int = 64):
    """Score draws for every row of ``frame`` and their summary: ``frame`` with ``score`` (the point value),
    latency_low/high and score_low/high (2.5 and 97.5 percentiles of the draws) and, with a ``threshold``,
    ``p_beats``: the share of draws scoring above it.

    Columns read (a missing one counts as exact): ``top1`` and ``latency_ms`` (point values);
    ``top1_se``, ``top1_df`` (an interpolated top-1: Student-t with that scale and degrees of freedom);
    ``latency_log_se``, ``latency_df`` (a projected latency: Student-t on the log scale);
    ``ratio_log_se`` (a measured factorization ratio) and ``host_log_se`` (the host timing the projection
    started from), both normal on the log scale. On top of those, every
    latency is multiplied by a log-uniform factor within [1/spread, spread]: the disagreement between
    benchmarks (:func:`benchmark_spread`). Rows are drawn independently. A row with a NaN latency or
    top-1 gets NaN summaries."""
    rng = np.random.default_rng(seed)
    out = frame.copy().reset_index(drop=True)
    summary = np.full((len(out), 5), np.nan)
    for start in range(0, len(out), chunk):
        part = out.iloc[start:start + chunk]
        latency, score = _draws(part, spread, draws, rng, knee_ms)
        ok = np.flatnonzero(np.isfinite(part.top1.to_numpy(float)) & np.isfinite(part.latency_ms.to_numpy(float)))
        if len(ok):
            rows = start + ok
            summary[rows, 0:2] = np.percentile(latency[ok], [2.5, 97.5], axis=1).T
            summary[rows, 2:4] = np.percentile(score[ok], [2.5, 97.5], axis=1).T
            if threshold is not None:
                summary[rows, 4] = (score[ok] > threshold).mean(axis=1)
    out["score"] = challenge_score(out.top1, out.latency_ms, knee_ms)
    out["latency_low"], out["latency_high"], out["score_low"], out["score_high"] = summary[:, :4].T
    if threshold is not None:
        out["p_beats"] = summary[:, 4]
    return out


def score_difference(a, b, spread: float, draws: int, seed: int, knee_ms: float = KNEE_MS) -> dict:
    """Score of row ``a`` minus score of row ``b`` (pandas Series with the columns :func:`simulate` reads),
    the two drawn independently: the point difference, its 95% interval (2.5-97.5 percentiles of the
    drawn differences) and the share of draws in which ``a`` scores more."""
    rng = np.random.default_rng(seed)
    _, sa = _draws(pd.DataFrame([a]), spread, draws, rng, knee_ms)
    _, sb = _draws(pd.DataFrame([b]), spread, draws, rng, knee_ms)
    diff = sa[0] - sb[0]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return {"difference": challenge_score(a.top1, a.latency_ms, knee_ms) - challenge_score(b.top1, b.latency_ms, knee_ms),
            "ci95": (float(lo), float(hi)), "p_greater": float((diff > 0).mean())}


# --------------------------------------------------------------------------------------------------
# part 1: every published configuration, the entry and the winner
def published_scores(spread: float, draws: int, seed: int, knee_ms: float = KNEE_MS):
    """The score of every row of reference/mobilenet_v1_published.csv (int8 and float) and of
    reference/entry_figures.csv (the entry's two models, the winner), each with its 95% interval and the
    probability of beating the entry's submission (its factorized model's score). Top-1 is taken as
    published (exact); only the latency is uncertain, by the benchmark spread. Sorted by score."""
    pub = reference.mobilenet_v1_published()
    rows = [{"model": f"MobileNet v1 {config_label(r.width_multiplier, r.resolution)} {p} (Google)", "source": "published",
             "precision": p, "width_multiplier": r.width_multiplier, "resolution": int(r.resolution),
             "top1": getattr(r, acc), "latency_ms": getattr(r, ms)}
            for r in pub.itertuples() for p, acc, ms in (("int8", "quant_top1", "pixel2_quant_ms"),
                                                        ("float32", "float_top1", "pixel2_float_ms"))]
    for r in reference.entry_figures().itertuples():
        w, res = _architecture(r.model) if "mobilenet_v1_" in r.model else (np.nan, np.nan)
        rows.append({"model": r.label, "source": "the entry" if r.label.startswith("the entry:") else "reference",
                     "precision": "int8", "width_multiplier": w, "resolution": res, "top1": r.top1,
                     "latency_ms": r.latency_ms})
    threshold = entry_figures()["factorized"]["score"]
    frame = simulate(pd.DataFrame(rows), spread, draws, seed, threshold, knee_ms)
    return frame.sort_values(["score", "latency_ms"], ascending=[False, True], ignore_index=True)


def scores_table(scores):
    """A display frame of :func:`published_scores`."""
    return pd.DataFrame({"model": scores.model, "source": scores.source, "top-1 (%)": scores.top1,
                         "Pixel 2 (ms) [95% interval]": [fmt_interval(*v, 1) for v in
                                                         scores[["latency_ms", "latency_low", "latency_high"]].values],
                         "score [95% interval]": [fmt_interval(*v, 1) for v in scores[["score", "score_low", "score_high"]].values],
                         "P(beats the entry)": [f"{p:.2f}" for p in scores.p_beats]})


# --------------------------------------------------------------------------------------------------
# the accuracy model: top-1 of never-published configurations, interpolated
def _accuracy_design(width, resolution) -> np.ndarray:
    lw, lr = np.log(np.asarray(width, float)), np.log(np.asarray(resolution, float))
    return np.column_stack([np.ones_like(lw), lw, lr, lw ** 2])


def fit_accuracy(width, resolution, top1, precision: str = "int8") -> dict:
    """Ordinary least squares of ``top1`` on ln(width), ln(resolution) and ln(width)² (ACCURACY_FORMULA).

    Accuracy saturates with width (the square term) and grows with the log of the resolution. The result
    is plain data: the coefficients, their covariance and the residual variance (for a 95% prediction
    interval) and the **domain**: the width and resolution ranges of the fitted points, outside which
    :func:`predict_accuracy` refuses to answer."""
    X, y = _accuracy_design(width, resolution), np.asarray(top1, float)
    n, p = X.shape
    if n <= p:
        raise ValueError(f"need more than {p} configurations to fit the accuracy model, got {n}")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    scale = float(resid @ resid / (n - p))
    return {"formula": ACCURACY_FORMULA, "precision": precision, "coef": coef.tolist(),
            "cov": (scale * np.linalg.inv(X.T @ X)).tolist(), "scale": scale, "df_resid": float(n - p), "points": n,
            "domain": {"width": [float(np.min(width)), float(np.max(width))],
                       "resolution": [float(np.min(resolution)), float(np.max(resolution))]}}


def predict_accuracy(model: dict, width, resolution):
    """Interpolated top-1 with its standard error and 95% prediction interval (Student-t, the fit's residual
    degrees of freedom), and whether each configuration lies inside the fitted widths and resolutions.
    Outside the domain every number is NaN: the model is not asked to extrapolate."""
    width, resolution = np.atleast_1d(np.asarray(width, float)), np.atleast_1d(np.asarray(resolution, float))
    d = model["domain"]
    inside = ((width >= d["width"][0]) & (width <= d["width"][1])
              & (resolution >= d["resolution"][0]) & (resolution <= d["resolution"][1]))
    X = _accuracy_design(width, resolution)
    mean = X @ np.asarray(model["coef"])
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, np.asarray(model["cov"]), X) + model["scale"])
    t = stats.t.ppf(0.975, model["df_resid"])
    nan = np.where(inside, 1.0, np.nan)
    return pd.DataFrame({"top1": mean * nan, "top1_se": se * nan, "top1_low": (mean - t * se) * nan,
                         "top1_high": (mean + t * se) * nan, "top1_df": model["df_resid"], "in_domain": inside})


def accuracy_leave_one_out(width, resolution, top1) -> np.ndarray:
    """Error (predicted - published, in points) of each configuration when the model is fitted on all the
    others: how far an interpolated top-1 may be trusted."""
    width, resolution, top1 = (np.asarray(v, float) for v in (width, resolution, top1))
    errs = []
    for i in range(len(top1)):
        keep = np.arange(len(top1)) != i
        m = fit_accuracy(width[keep], resolution[keep], top1[keep])
        m["domain"] = {"width": [-np.inf, np.inf], "resolution": [-np.inf, np.inf]}   # the held-out corner too
        errs.append(predict_accuracy(m, width[i], resolution[i]).top1[0] - top1[i])
    return np.asarray(errs)


def published_accuracy_model(precision: str = "int8"):
    """:func:`fit_accuracy` on Google's published grid (reference/mobilenet_v1_published.csv) and its
    leave-one-out table (one row per published configuration)."""
    pub = reference.mobilenet_v1_published()
    col = "quant_top1" if precision == "int8" else "float_top1"
    model = fit_accuracy(pub.width_multiplier, pub.resolution, pub[col], precision)
    errs = accuracy_leave_one_out(pub.width_multiplier, pub.resolution, pub[col])
    model["loo_rmse"] = float(np.sqrt(np.mean(errs ** 2)))
    model["loo_max_abs"] = float(np.max(np.abs(errs)))
    model["loo_median_abs"] = float(np.median(np.abs(errs)))
    loo = pd.DataFrame({"configuration": [config_label(w, r) for w, r in zip(pub.width_multiplier, pub.resolution)],
                        "published top-1 (%)": pub[col], "left-out prediction (%)": pub[col] + errs,
                        "error (points)": errs})
    return model, loo


# --------------------------------------------------------------------------------------------------
# host latencies: the benchmark chapter's grid, plus the configurations it did not time
def _int8(bench_grid):
    return bench_grid[bench_grid.precision == "int8"]


def timing_jobs(widths, resolutions, bench_grid, out_dir, seed: int):
    """The int8 configurations of widths x resolutions the benchmark chapter did not time, as jobs for
    lpirc.conversion.convert_architectures, and the benchmark's int8 model to time them against (the
    *anchor*, the one with the median MACs): its benchmark latency times the ratio measured in this
    session puts the new timings on the benchmark's scale. No jobs: (``[]``, None)."""
    g = _int8(bench_grid)
    timed = set(zip(g.width_multiplier.round(6), g.resolution))
    classes = int(g.classes.iloc[0]) if "classes" in g else 1001
    jobs = [{"width_multiplier": float(w), "resolution": int(r), "classes": classes, "precision": "int8", "seed": seed,
             "path": str(Path(out_dir) / f"mobilenet_v1_{w:g}_{r}_int8.tflite")}
            for w in widths for r in resolutions if (round(float(w), 6), int(r)) not in timed]
    if not jobs:
        return [], None
    anchor = g.iloc[(g.macs - g.macs.median()).abs().argsort().iloc[0]]
    return jobs, anchor


def with_anchor(converted, anchor, bench_dir):
    """The frame bench.add_timing times: the anchor's file (from the benchmark's folder) first, then the
    converted models (lpirc.conversion.convert_architectures' records)."""
    conv = pd.DataFrame(converted).rename(columns={"path": "file"})
    first = {"width_multiplier": anchor.width_multiplier, "resolution": int(anchor.resolution), "macs": anchor.macs,
             "file": str(Path(bench_dir) / anchor.file), "anchor": True}
    return pd.concat([pd.DataFrame([first]), conv.assign(anchor=False)], ignore_index=True)


def host_latencies(bench_grid, timed=None, anchor=None, widths=None, resolutions=None):
    """Single-thread host latency of every int8 configuration (of ``widths`` x ``resolutions`` when given):
    the benchmark chapter's grid as it timed it, and ``timed`` (bench.add_timing of :func:`with_anchor`)
    rescaled to the benchmark's session: the anchor's benchmark latency x the ratio to the anchor measured
    interleaved here (with its interval)."""
    g = _int8(bench_grid)
    rows = pd.DataFrame({"width_multiplier": g.width_multiplier, "resolution": g.resolution.astype(int), "macs": g.macs,
                         "host_ms": g.host_ms, "host_low": g.get("latency_ci_low", g.host_ms),
                         "host_high": g.get("latency_ci_high", g.host_ms), "timed": "benchmark step"})
    if timed is not None and len(timed):
        new = timed[~timed.anchor.astype(bool)]
        a = float(anchor.host_ms)
        tag = f"here: ratio to {config_label(anchor.width_multiplier, anchor.resolution)} x its benchmark latency"
        rows = pd.concat([rows, pd.DataFrame({
            "width_multiplier": new.width_multiplier, "resolution": new.resolution.astype(int), "macs": new.macs,
            "host_ms": a * new.latency_ratio, "host_low": a * new.ratio_ci_low, "host_high": a * new.ratio_ci_high,
            "timed": tag})], ignore_index=True)
    if widths is not None:
        rows = rows[rows.width_multiplier.round(6).isin([round(float(w), 6) for w in widths])]
    if resolutions is not None:
        rows = rows[rows.resolution.isin([int(r) for r in resolutions])]
    return rows.sort_values(["width_multiplier", "resolution"], ignore_index=True)


def project_latencies(host, fit: dict, precision: str = "int8"):
    """``host`` with the Pixel 2 latency projected by the benchmark chapter's fit (lpirc.projection.project)
    and its 95% prediction interval, where the configuration is inside the fit's domain; outside it the
    latency is NaN and ``in_projection_domain`` is False: such a configuration is shown, never projected.
    ``latency_log_se`` and ``latency_df`` are the interval's scale on the log axis, for :func:`simulate`;
    ``host_log_se`` carries the host timing's own 95% interval through the fit's slope on log(host ms)."""
    t = stats.t.ppf(0.975, fit["df_resid"])
    low, high = host.get("host_low", host.host_ms), host.get("host_high", host.host_ms)     # missing: exact
    host_se = (np.log(high) - np.log(low)) / (2 * stats.norm.ppf(0.975)) * fit["coef"][1]
    rows = []
    for h, m, hse in zip(host.host_ms, host.macs, np.where(np.isfinite(host_se), host_se, 0.0)):
        if projection.in_domain(fit, h, m, precision, UNFACTORIZED):
            p = projection.project(fit, h, m, precision, UNFACTORIZED)
            rows.append({"pixel2_ms": p["pixel2_ms"], "pi_low": p["ci95"][0], "pi_high": p["ci95"][1],
                         "latency_log_se": (np.log(p["ci95"][1]) - np.log(p["ci95"][0])) / (2 * t),
                         "latency_df": fit["df_resid"], "host_log_se": abs(float(hse)), "in_projection_domain": True})
        else:
            rows.append({"pixel2_ms": np.nan, "pi_low": np.nan, "pi_high": np.nan, "latency_log_se": np.nan,
                         "latency_df": np.nan, "host_log_se": np.nan, "in_projection_domain": False})
    return pd.concat([host.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


# --------------------------------------------------------------------------------------------------
# factorization options
def factorization_options(layers, measured=None, entry: dict | None = None):
    """The factorization dimension of the search, one row per option (``unfactorized`` always first).

    - ``K layers, the entry's rank`` for each K in ``layers``: relative top-1 loss = the entry's loss x K /
      (its layer count) and latency ratio = 1 - (1 - the entry's ratio) x K / (its layer count), both from
      reference/entry_figures.csv. K above the entry's layer count would extrapolate and is refused.
    - with ``measured`` (the factorization chapter's challenge-architecture table: config ``last{K}_r{f}``,
      latency_ratio and its interval), one option per measured configuration with K up to the entry's count:
      the latency ratio measured on this host, and the entry's cost scaled by K. The entry did not publish
      its rank, so every rank is charged the entry's cost: optimistic for ranks below the entry's.
    """
    e = entry_figures() if entry is None else entry
    k_e = e["layers"]
    if any(k < 0 or k > k_e for k in layers):
        raise ValueError(f"factorized layers must be between 0 and the entry's {k_e} (its cost is scaled by layers, "
                         f"not extrapolated), got {list(layers)}")
    rows = [{"option": "unfactorized", "layers": 0, "rank_fraction": np.nan, "latency_ratio": 1.0, "ratio_log_se": 0.0,
             "relative_loss": 0.0, "factorization": "none"}]
    rows += [{"option": f"{k} layers, the entry's rank", "layers": int(k), "rank_fraction": np.nan,
              "latency_ratio": 1 - (1 - e["latency_ratio"]) * k / k_e, "ratio_log_se": 0.0,
              "relative_loss": e["relative_loss"] * k / k_e, "factorization": "the entry's figures, scaled by layers"}
             for k in sorted(set(layers)) if k > 0]
    if measured is not None:
        for r in measured.itertuples():
            m = re.fullmatch(r"last(\d+)_r([0-9.]+)", str(r.config))
            if m and 0 < int(m.group(1)) <= k_e:
                k = int(m.group(1))
                se = (np.log(r.ratio_ci_high) - np.log(r.ratio_ci_low)) / (2 * 1.96)
                rows.append({"option": f"{k} layers, rank fraction {float(m.group(2)):g}", "layers": k,
                             "rank_fraction": float(m.group(2)), "latency_ratio": r.latency_ratio,
                             "ratio_log_se": float(se) if np.isfinite(se) else 0.0,
                             "relative_loss": e["relative_loss"] * k / k_e,
                             "factorization": "ratio measured here; the entry's cost scaled by layers"})
    return pd.DataFrame(rows).drop_duplicates("option", ignore_index=True)


# --------------------------------------------------------------------------------------------------
# the search
def search_space(widths, resolutions, projected, options, accuracy_model: dict, knee_ms: float = KNEE_MS):
    """Every width x resolution x factorization option, with its top-1, Pixel 2 latency and score.

    ``projected``: :func:`project_latencies` (one row per width x resolution timed). Top-1: Google's
    published figure where one exists (``top1_source`` "published"), else :func:`predict_accuracy`
    ("interpolated"), or nothing outside the accuracy model's domain. Latency: the projection, or
    nothing outside its domain (``latency_source`` says which). A factorized option multiplies the
    latency by its ratio and the top-1 by (1 - its relative loss)."""
    pub = reference.mobilenet_v1_published().set_index(["width_multiplier", "resolution"])
    grid = pd.DataFrame([(float(w), int(r)) for w in widths for r in resolutions], columns=["width_multiplier", "resolution"])
    grid = grid.merge(projected, on=["width_multiplier", "resolution"], how="left")
    acc = predict_accuracy(accuracy_model, grid.width_multiplier, grid.resolution)
    published = [pub.quant_top1.get((w, r), np.nan) for w, r in zip(grid.width_multiplier, grid.resolution)]
    grid["published_top1"] = published
    grid["published_ms"] = [pub.pixel2_quant_ms.get((w, r), np.nan) for w, r in zip(grid.width_multiplier, grid.resolution)]
    is_pub = np.isfinite(published)
    grid["base_top1"] = np.where(is_pub, published, acc.top1)
    grid["base_top1_se"] = np.where(is_pub, 0.0, acc.top1_se)
    grid["top1_df"] = acc.top1_df
    grid["top1_source"] = np.where(is_pub, "published",
                                   np.where(acc.in_domain, "interpolated", "outside the accuracy model's domain"))
    timed = grid.host_ms.notna() if "host_ms" in grid else np.zeros(len(grid), bool)
    inside = grid.get("in_projection_domain", pd.Series(False, index=grid.index)).fillna(False).astype(bool)
    grid["latency_source"] = np.where(inside, "projected", np.where(timed, "outside the projection's domain", "not timed"))
    space = grid.merge(options, how="cross")
    keep = 1 - space.relative_loss
    space["top1"] = space.base_top1 * keep
    space["top1_se"] = space.base_top1_se * keep
    space["latency_ms"] = space.pixel2_ms * space.latency_ratio
    space["score"] = challenge_score(space.top1, space.latency_ms, knee_ms)
    space["config"] = [config_label(w, r) + ("" if o == "unfactorized" else f", {o}")
                       for w, r, o in zip(space.width_multiplier, space.resolution, space.option)]
    return space


def valid(space):
    """The rows of a search space with both a latency and a top-1 (inside both models' domains)."""
    return space[np.isfinite(space.latency_ms) & np.isfinite(space.top1)]


def exhaustive(space):
    """The configuration with the highest (point) score among all valid ones; ties go to the faster one."""
    v = valid(space)
    if v.empty:
        raise ValueError("no configuration of the search space has both a projected latency and a top-1")
    return v.sort_values(["score", "latency_ms"], ascending=[False, True]).iloc[0]


def frontier(space):
    """The accuracy-latency frontier: every valid configuration no other one beats on both top-1 and latency."""
    v = valid(space).sort_values(["latency_ms", "top1"], ascending=[True, False])
    best = np.maximum.accumulate(v.top1.to_numpy())
    keep = np.r_[True, v.top1.to_numpy()[1:] > best[:-1]]
    return v[keep]


def greedy(space, knee_ms: float = KNEE_MS, start: tuple | None = None):
    """A NetAdapt-style search: from ``start`` (default: the widest, highest-resolution, unfactorized
    configuration), repeatedly shrink the one dimension — width, resolution or factorization, one level
    each — that loses the least top-1 per millisecond saved, until the latency is at or under the knee
    (the budget: below it the rule pays nothing for speed) or no step saves time.

    Levels: the widths and resolutions of the space in decreasing order; the factorization options in
    decreasing latency ratio (options slower than unfactorized are never reached). A step to a
    configuration without a latency or top-1 (outside a model's domain) is not offered, and the default
    start is the widest, highest-resolution unfactorized configuration that has both. Returns (the
    path, one row per configuration visited with the dimension shrunk and its cost per ms; the last row)."""
    v = valid(space)
    widths = sorted(space.width_multiplier.unique(), reverse=True)
    resolutions = sorted(space.resolution.unique(), reverse=True)
    chain = space.drop_duplicates("option").sort_values("latency_ratio", ascending=False)
    chain = chain[chain.latency_ratio <= 1].option.tolist()
    if "unfactorized" in chain:
        chain = chain[chain.index("unfactorized"):]
    rows = {(r["width_multiplier"], r["resolution"], r["option"]): r for r in v.to_dict("records")}
    plain = v[v.option == chain[0]].sort_values(["width_multiplier", "resolution"], ascending=False)
    if start is None and plain.empty:
        raise ValueError("no unfactorized configuration has both a projected latency and a top-1 to start from")
    state = tuple(start) if start else (plain.width_multiplier.iloc[0], plain.resolution.iloc[0], chain[0])
    if state not in rows:
        raise ValueError(f"the greedy search starts at {state}, which has no projected latency or top-1")
    levels = [widths, resolutions, chain]
    path = [{**rows[state], "step": 0, "shrunk": "start", "top1 lost per ms saved": np.nan}]
    while rows[state]["latency_ms"] > knee_ms:
        cur, steps = rows[state], []
        for i, (dim, lv) in enumerate(zip(("width", "resolution", "factorization"), levels)):
            j = lv.index(state[i]) + 1 if state[i] in lv else len(lv)
            nxt = tuple(lv[j] if k == i else state[k] for k in range(3)) if j < len(lv) else None
            cand = rows.get(nxt)
            if cand is not None and cand["latency_ms"] < cur["latency_ms"]:
                steps.append(((cur["top1"] - cand["top1"]) / (cur["latency_ms"] - cand["latency_ms"]), i, dim, nxt))
        if not steps:
            break
        cost, _, dim, state = min(steps)
        path.append({**rows[state], "step": len(path), "shrunk": dim, "top1 lost per ms saved": cost})
    path = pd.DataFrame(path)
    return path, path.iloc[-1]


# --------------------------------------------------------------------------------------------------
# the verdict
def statement() -> str:
    """The claim and its criterion, fixed before the run (the same form as lpirc.claims.statement)."""
    e = entry_figures()["factorized"]
    return ("**The entry's claim.** Its next focus was AutoML (NetAdapt, AMC): a search over the network's "
            "dimensions would have found a better submission.\n\n**Criterion, fixed before the run.** The best int8 "
            "MobileNet v1 an exhaustive search over width x input resolution alone (no factorization) finds under the "
            f"rule scores above the entry's submission ({e['top1']:g}% at {e['latency_ms']:g} ms: "
            f"{e['score']:.1f}). Reproduced if the 95% interval of the score difference lies wholly above 0, not "
            "reproduced if wholly below, inconclusive otherwise. The interval is Monte-Carlo over both latencies' "
            "spread across benchmarks, the projection's prediction interval and, for a never-published "
            "configuration, the accuracy model's.")


def search_claim(best, spread: float, draws: int, seed: int, knee_ms: float = KNEE_MS) -> claims.Claim:
    """The verdict: ``best`` (the best row of the width x resolution search) against the entry's factorized
    submission (its top-1 exact, its latency spread like any one benchmark's). The detail says whether the
    verdict survives twice the spread (the benchmarks disagreeing by its square either way)."""
    e = entry_figures()["factorized"]
    entry = pd.Series({"top1": e["top1"], "latency_ms": e["latency_ms"]})
    d = score_difference(best, entry, spread, draws, seed, knee_ms)
    wide = score_difference(best, entry, spread ** 2, draws, seed, knee_ms)
    lo, hi = d["ci95"]
    verdict_wide = claims.interval_verdict(*wide["ci95"], 0.0, claim_below=False)
    return claims.Claim(
        id=CLAIM_ID, claim="a search over width and resolution would have beaten the entry's submission",
        criterion=f"score difference (the search's best − the entry's {e['score']:.1f}) wholly above 0 (95% interval)",
        test="Monte-Carlo interval of the score difference", estimate=d["difference"], interval=(lo, hi),
        unit="score points (the search's best − the entry)", verdict=claims.interval_verdict(lo, hi, 0.0, claim_below=False),
        detail=(f"the search's best: MobileNet v1 {config_label(best.width_multiplier, best.resolution)} int8 "
                f"(top-1 {best.top1_source}, latency {best.latency_source}); P(it scores above the entry) = "
                f"{d['p_greater']:.3f}; with the benchmarks' disagreement doubled (x{spread ** 2:.2f} either way) the "
                f"interval is [{bound(wide['ci95'][0])}, {bound(wide['ci95'][1])}]: {verdict_wide}"))


# --------------------------------------------------------------------------------------------------
# what the chapter shows: display frames and sentences built from the results
def describe_published(scores, spread: dict, threshold: float, knee_ms: float = KNEE_MS) -> str:
    """What the published rows say under the rule."""
    pub = scores[scores.source == "published"]
    beat = pub[pub.p_beats > 0.5]
    top = pub.iloc[0]
    near = pub[(pub.latency_ms > knee_ms) & (pub.latency_low < knee_ms)]
    return (f"The benchmarks disagree: the entry measured {spread['network']} at {spread['entry_ms']:g} ms where Google "
            f"published {spread['published_ms']:g} ms, a factor {spread['ratio']:.3f}; every latency is drawn within "
            f"that factor either way. Under the rule the best published configuration is **{top.model}**, score "
            f"{fmt_interval(top.score, top.score_low, top.score_high, 1)} at {top.latency_ms:g} ms. "
            f"**{len(beat)} of {len(pub)}** published configurations beat the entry's submission ({threshold:.1f}) with "
            f"probability above one half; the closest calls are those whose latency interval straddles the "
            f"{knee_ms:g} ms knee ({', '.join(near.model) or 'none'}).")


def latency_table(host):
    """The host latencies of the search (measured or rescaled) and their projection, labelled."""
    proj = [fmt_interval(m, lo, hi, 1) + " (projected)" if ok else "outside the projection's domain"
            for m, lo, hi, ok in host[["pixel2_ms", "pi_low", "pi_high", "in_projection_domain"]].values]
    return pd.DataFrame({"configuration": [config_label(w, r) for w, r in zip(host.width_multiplier, host.resolution)],
                         "MMACs": host.macs / 1e6,
                         "host (ms) [95% interval]": [fmt_interval(*v, 2) for v in host[["host_ms", "host_low", "host_high"]].values],
                         "timed": host.timed, "Pixel 2 (ms) [95% PI]": proj})


def describe_accuracy(model: dict, loo) -> str:
    """The accuracy model in words: its coefficients, its leave-one-out error (``loo``: the table of
    :func:`published_accuracy_model`) and its domain."""
    c = model["coef"]
    worst = loo.iloc[loo["error (points)"].abs().argmax()].configuration
    return (f"Fitted on the {model['points']} published {model['precision']} configurations: top-1 = {c[0]:.2f} "
            f"{c[1]:+.2f} ln(width) {c[2]:+.2f} ln(resolution) {c[3]:+.2f} ln(width)². Leaving each configuration out "
            f"in turn, the model misses its published top-1 by **{model['loo_rmse']:.2f} points** (root mean square; "
            f"median {model['loo_median_abs']:.2f}, largest {model['loo_max_abs']:.2f}, for {worst}); a configuration "
            "on the grid's edge, left out, is reached from the others only by extrapolating, so this overstates the "
            "error inside the grid. Inside the grid an *interpolated* top-1 carries its 95% prediction interval "
            f"(±{1.96 * np.sqrt(model['scale']):.2f} points from the residual scatter alone); outside the fitted "
            f"widths {'-'.join(width_label(w) for w in model['domain']['width'])} and resolutions "
            f"{'-'.join(str(int(r)) for r in model['domain']['resolution'])} it gives none.")


def options_table(options):
    return pd.DataFrame({"option": options.option, "latency ratio": options.latency_ratio,
                         "relative top-1 loss (%)": 100 * options.relative_loss, "from": options.factorization})


def search_table(space, rows=None):
    """A display frame of search rows (all of ``space`` or the given ``rows``), every number labelled with
    where it comes from."""
    s = space if rows is None else rows
    lat = [fmt_interval(*v, 1) + f" ({src})" if np.isfinite(v[0]) else src
           for v, src in zip(s[["latency_ms", "latency_low", "latency_high"]].values, s.latency_source)]
    top = [f"{t:.2f}" + (f" ± {1.96 * se:.2f}" if se > 0 else "") + f" ({src})" if np.isfinite(t) else src
           for t, se, src in zip(s.top1, s.top1_se.fillna(0), s.top1_source)]
    return pd.DataFrame({"configuration": s.config, "MMACs": s.macs / 1e6,
                         "Pixel 2 (ms) [95% interval]": lat, "top-1 (%)": top,
                         "score [95% interval]": [fmt_interval(*v, 1) for v in s[["score", "score_low", "score_high"]].values],
                         "P(beats the entry)": [f"{p:.2f}" if np.isfinite(p) else "–" for p in s.p_beats]})


def best_rows(space, n: int):
    """The ``n`` best-scoring valid configurations, best first."""
    return valid(space).sort_values(["score", "latency_ms"], ascending=[False, True]).head(n)


def describe_outside(space) -> str:
    """Which configurations of the search could not be scored, and why: shown, not estimated."""
    plain = space.drop_duplicates(["width_multiplier", "resolution"])
    out = plain[(plain.latency_source != "projected") | ~plain.top1_source.isin(["published", "interpolated"])]
    if out.empty:
        return ("Every width x resolution of the search lies inside the projection's domain and the accuracy "
                "model's: each has a projected latency and a published or interpolated top-1.")
    return ("Not scored, because a model would have to extrapolate: " + "; ".join(
        f"{config_label(r.width_multiplier, r.resolution)} (latency: {r.latency_source}; top-1: {r.top1_source})"
        for r in out.itertuples()) + ".")


def describe(best, best_wr, greedy_final, path, threshold: float) -> str:
    """The two searches in a few sentences, from their results."""
    gap = best.score - greedy_final.score
    same = best.config == greedy_final.config
    return (f"The exhaustive search over width x resolution x factorization picks **{best.config}**: top-1 "
            f"{best.top1:.2f}% ({best.top1_source}) at {fmt_interval(best.latency_ms, best.latency_low, best.latency_high, 1)} "
            f"ms ({best.latency_source}; {knee_side(best.latency_low, best.latency_high)}), score "
            f"{fmt_interval(best.score, best.score_low, best.score_high, 1)}; over width x resolution alone it picks "
            f"**{best_wr.config}**, {fmt_interval(best_wr.score, best_wr.score_low, best_wr.score_high, 1)} (the entry's "
            f"submission: {threshold:.1f}). The greedy search took {plural(len(path) - 1, 'step')} "
            f"({', '.join(path.shrunk[1:]) or 'none'}) from {path.config.iloc[0]} and stopped at "
            f"**{greedy_final.config}**, {fmt_interval(greedy_final.score, greedy_final.score_low, greedy_final.score_high, 1)}: "
            + ("the same configuration as the exhaustive search." if same else
               f"{abs(gap):.1f} points {'below' if gap > 0 else 'above'} the exhaustive search's choice. Each greedy step "
               "looks one level ahead; the step that crosses the knee is taken for its price per millisecond, "
               "however far below the knee it lands, and the rule pays nothing for the milliseconds below it."))


def describe_crossing(path, space, knee_ms: float = KNEE_MS) -> str:
    """Where the greedy ``path`` crossed the knee, against the exhaustive search's best of ``space``, and what
    the configuration one resolution level higher (the same width and factorization) would have scored."""
    crossing = path[path.latency_ms <= knee_ms].head(1)
    best = exhaustive(space)
    if crossing.empty:
        return f"The greedy search never reached the {knee_ms:g} ms knee; the exhaustive search's best scores {best.score:.1f}."
    c = crossing.iloc[0]
    if c.step == 0:
        return (f"The greedy search started at or under the knee ({c.config}, {c.latency_ms:.1f} ms): it took no step. "
                f"The exhaustive search's best, {best.config}, scores {best.score:.1f} at {best.latency_ms:.1f} ms.")
    v = valid(space)
    up = v[(v.width_multiplier == c.width_multiplier) & (v.option == c.option) & (v.resolution > c.resolution)]
    if up.empty:
        higher = " The search has no higher resolution at that width and factorization to compare with."
    else:
        u = up.sort_values("resolution").iloc[0]
        higher = (f" One resolution level higher, {u.config}, would have scored "
                  f"{fmt_interval(u.score, u.score_low, u.score_high, 1)} at "
                  f"{fmt_interval(u.latency_ms, u.latency_low, u.latency_high, 1)} ms ({knee_side(u.latency_low, u.latency_high)}).")
    return (f"Step {int(c.step)} (shrinking the {c.shrunk}) crossed the knee at its estimate, landing at "
            f"{fmt_interval(c.latency_ms, c.latency_low, c.latency_high, 1)} ms ({knee_side(c.latency_low, c.latency_high)}; "
            f"{knee_ms - c.latency_ms:.1f} ms under the knee at the estimate, speed the rule does not pay for) with score "
            f"{fmt_interval(c.score, c.score_low, c.score_high, 1)}; the exhaustive search's best, {best.config}, scores "
            f"{best.score:.1f} at {best.latency_ms:.1f} ms." + higher + " A greedy step goes wherever one level of one "
            "dimension takes it.")


def summary_markdown(scores, best, best_wr, greedy_final, claim, accuracy_model: dict, threshold: float) -> str:
    """The chapter's summary as a bullet list, from its results."""
    top = scores[scores.source == "published"].iloc[0]
    return (f"- Best published configuration under the rule: **{top.model}**, "
            f"{fmt_interval(top.score, top.score_low, top.score_high, 1)}; the entry's submission scores {threshold:.1f}.\n"
            f"- A search over width x resolution alone picks **{best_wr.config}** ({best_wr.top1_source} top-1, "
            f"{best_wr.latency_source} latency): **{bound(claim.estimate, sign=True)} points** "
            f"[{bound(claim.interval[0], sign=True)}, {bound(claim.interval[1], sign=True)}] against the entry, "
            f"**{claim.verdict}**.\n"
            f"- With factorization as a third dimension the exhaustive search picks {best.config} "
            f"({fmt_interval(best.score, best.score_low, best.score_high, 1)}); the greedy search stops at "
            f"{greedy_final.config} ({fmt_interval(greedy_final.score, greedy_final.score_low, greedy_final.score_high, 1)}).\n"
            f"- An interpolated top-1 misses the published one by {accuracy_model['loo_rmse']:.2f} points (leave-one-out, "
            "root mean square). The search's best width x resolution "
            + ("was already published: no search was needed to find it." if best_wr.top1_source == "published" else
               "was never published: its top-1 is interpolated."))


def metrics(spread: dict, threshold: float, accuracy_model: dict, fit: dict, anchor, jobs: list, best, best_wr,
            greedy_final, claim) -> dict:
    """The step's metrics.json: what the summary and a reader's script need, every number from this run."""
    def row(r):
        return {k: r[k] for k in ("config", "width_multiplier", "resolution", "option", "top1", "top1_source", "latency_ms",
                                  "latency_low", "latency_high", "latency_source", "score", "score_low", "score_high",
                                  "p_beats")}
    return {"knee_ms": KNEE_MS, "spread": spread, "entry_score": threshold, "accuracy_model": accuracy_model,
            "projection": fit, "anchor": None if anchor is None else {"width_multiplier": float(anchor.width_multiplier),
                                                                     "resolution": int(anchor.resolution),
                                                                     "host_ms": float(anchor.host_ms)},
            "timed_here": len(jobs), "best": row(best), "best_width_resolution": row(best_wr), "greedy": row(greedy_final),
            "claim": claim.as_dict(), "tables": {"published": "tables/published_scores.csv", "search": "tables/search.csv",
                                                 "greedy": "tables/greedy_path.csv", "frontier": "tables/frontier.csv"}}


def _iso_lines(ax, levels, xs, knee_ms: float, top: float):
    for level, style in levels:
        y = iso_score_top1(level, xs, knee_ms)
        keep = y <= top
        ax.plot(xs[keep], y[keep], style, c="k", lw=0.8)
        ax.annotate(f"iso-score {level:.1f}", (xs[0], level), fontsize=7, ha="left", va="bottom")


def figure_scores(scores, threshold: float, knee_ms: float = KNEE_MS):
    """Left: top-1 against Pixel 2 latency with the knee and iso-score lines; right: score against latency,
    both with 95% intervals. Google's published rows, the entry's, the winner."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
    styles = {("published", "int8"): ("o", "tab:blue", "published int8"),
              ("published", "float32"): ("s", "tab:gray", "published float32"),
              ("the entry", "int8"): ("D", "crimson", "the entry"), ("reference", "int8"): ("*", "darkgreen", "winner")}
    for (src, prec), g in scores.groupby(["source", "precision"]):
        marker, colour, label = styles.get((src, prec), ("^", "k", src))
        xerr = [g.latency_ms - g.latency_low, g.latency_high - g.latency_ms]
        ax1.errorbar(g.latency_ms, g.top1, xerr=xerr, fmt=marker, c=colour, ms=5, lw=0.8, label=label)
        ax2.errorbar(g.latency_ms, g.score, xerr=xerr, yerr=[g.score - g.score_low, g.score_high - g.score], fmt=marker,
                     c=colour, ms=5, lw=0.8, label=label)
    top = scores.top1.max() + 2
    xs = np.geomspace(scores.latency_low.min() * 0.9, scores.latency_high.max() * 1.1, 400)
    _iso_lines(ax1, [(threshold, ":"), (float(scores.score.max()), "-.")], xs, knee_ms, top)
    ax1.set_ylim(scores.top1.min() - 2, top)
    best3 = scores[(scores.source == "published") & (scores.precision == "int8")].head(3)
    for i, r in enumerate(best3.itertuples()):
        ax1.annotate(config_label(r.width_multiplier, r.resolution), (r.latency_ms, r.top1), fontsize=7,
                     xytext=(0.3, 0.8 - 0.08 * i), textcoords="axes fraction", ha="right",
                     arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "gray"})
    for ax, ylabel in ((ax1, "ImageNet top-1 (%)"), (ax2, "challenge score")):
        ax.axvline(knee_ms, ls="--", c="k", lw=1, label=f"knee ({knee_ms:g} ms)")
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
        ax.set_xlabel("Pixel 2 big-core latency (ms, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    ax2.axhline(threshold, ls=":", c="crimson", lw=1, label=f"the entry's submission ({threshold:.1f})")
    ax2.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def figure_search(space, best, path, threshold: float, knee_ms: float = KNEE_MS):
    """Top-1 against projected Pixel 2 latency for every valid configuration of the search, the frontier,
    the exhaustive choice, the greedy path, the entry's submission, the knee and the iso-score lines
    through the choice and the entry."""
    v = valid(space)
    e = entry_figures()["factorized"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    plain, fact = v[v.option == "unfactorized"], v[v.option != "unfactorized"]
    ax.scatter(fact.latency_ms, fact.top1, s=10, c="lightgray", label="factorized options")
    for src, filled in (("published", True), ("interpolated", False)):
        g = plain[plain.top1_source == src]
        ax.scatter(g.latency_ms, g.top1, s=30, facecolors="tab:blue" if filled else "none", edgecolors="tab:blue",
                   label=f"unfactorized, top-1 {src}")
    f = frontier(space)
    ax.step(f.latency_ms, f.top1, where="post", c="tab:orange", lw=1, label="frontier")
    ax.plot(path.latency_ms, path.top1, "-", c="purple", lw=1.2, marker=".", label="greedy path")
    ax.scatter([best.latency_ms], [best.top1], s=160, facecolors="none", edgecolors="crimson", linewidths=2,
               label=f"exhaustive choice: {best.config}")
    ax.scatter([e["latency_ms"]], [e["top1"]], marker="D", c="crimson", s=30, label="the entry (its own Pixel 2 figure)")
    top = max(v.top1.max(), e["top1"]) + 2
    xs = np.geomspace(min(v.latency_ms.min(), knee_ms) * 0.9, max(v.latency_ms.max(), e["latency_ms"]) * 1.1, 400)
    _iso_lines(ax, [(best.score, "-."), (threshold, ":")], xs, knee_ms, top)
    ax.axvline(knee_ms, ls="--", c="k", lw=1)
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_xlabel("Pixel 2 big-core latency (ms, projected from this host, log scale)")
    ax.set_ylabel("ImageNet top-1 (%, published or interpolated)")
    ax.set_ylim(max(v.top1.min() - 2, 0), top)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig

"""Single-thread latency of TFLite models with LiteRT, and A/B ratios measured interleaved.

The machines this runs on are shared and noisy: absolute times drift while ratios of models timed in
alternation within one process stay stable (book page "How the measurements are made",
book/method.md). So every comparison here interleaves the models run by run and reports medians and
the ratio of medians.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lpirc.evaluate import interpreter


def _random_input(detail, rng):
    shape, dtype = detail["shape"], np.dtype(detail["dtype"])
    if dtype == np.float32:
        return rng.uniform(-1, 1, size=shape).astype(np.float32)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


class _Timed:
    def __init__(self, path: Path, num_threads: int, seed: int = 0):
        self.path = Path(path)
        self.it = interpreter(path, num_threads)
        rng = np.random.default_rng(seed)
        for d in self.it.get_input_details():
            self.it.set_tensor(d["index"], _random_input(d, rng))
        self.times: list[float] = []

    def once(self) -> float:
        t0 = time.perf_counter_ns()
        self.it.invoke()
        return (time.perf_counter_ns() - t0) / 1e6


def summarize(times_ms) -> dict:
    a = np.asarray(times_ms, dtype=np.float64)
    return {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
            "p90_ms": float(np.percentile(a, 90)), "min_ms": float(a.min()), "runs": int(len(a))}


def interleaved(paths, runs: int = 50, warmup: int = 5, num_threads: int = 1,
                time_budget_s: float | None = None, keep_times: bool = False) -> list[dict]:
    """Time several models in alternation (A B C A B C ...) in one process.

    Each result has median/p10/p90 and ``ratio_to_first``: the ratio of medians to the first model,
    plus ``ratio_ci95`` from a bootstrap over paired rounds. ``time_budget_s`` stops early (after at
    least 10 rounds) so a grid of slow models stays within a step's budget.
    """
    if runs < 1:
        raise ValueError("runs must be >= 1")
    models = [_Timed(p, num_threads, seed=i) for i, p in enumerate(paths)]
    for _ in range(warmup):
        for m in models:
            m.once()
    start = time.perf_counter()
    for r in range(runs):
        for m in models:
            m.times.append(m.once())
        if time_budget_s and r >= 9 and time.perf_counter() - start > time_budget_s:
            break
    base = np.asarray(models[0].times)
    out = []
    for m in models:
        rec = {"model": str(m.path), **summarize(m.times), "num_threads": num_threads}
        t = np.asarray(m.times)
        rec["ratio_to_first"] = float(np.median(t) / np.median(base))
        rec["ratio_ci95"] = list(ratio_interval(t, base))
        if keep_times:
            rec["times_ms"] = [float(v) for v in t]
        out.append(rec)
    return out


def timing_table(files: dict, runs: int, warmup: int = 5) -> "pd.DataFrame":
    """``files`` ({name: .tflite path}) timed interleaved; one row per name: the median (ms) with its 95%
    interval, p10/p90, the ratio of medians to the first file and its 95% interval (paired BCa bootstrap)."""
    import pandas as pd

    names = list(files)
    timed = interleaved([files[n] for n in names], runs=runs, warmup=warmup, keep_times=True)
    return pd.DataFrame([{"config": n, "latency_ms": t["median_ms"], "latency_ci_low": lo, "latency_ci_high": hi,
                          "p10_ms": t["p10_ms"], "p90_ms": t["p90_ms"], "runs": t["runs"],
                          "latency_ratio": t["ratio_to_first"], "ratio_ci_low": t["ratio_ci95"][0],
                          "ratio_ci_high": t["ratio_ci95"][1]}
                         for n, t in zip(names, timed) for lo, hi in [median_interval(t["times_ms"])]])


def median_interval(times, confidence: float = 0.95, resamples: int = 9999) -> tuple[float, float]:
    """Interval of the median of ``times`` (scipy's bootstrap, percentile method: medians tie often)."""
    from scipy import stats

    t = np.asarray(times, float)
    if len(t) < 3 or np.all(t == t[0]):
        return (float(np.median(t)), float(np.median(t)))
    res = stats.bootstrap((t,), np.median, confidence_level=confidence, n_resamples=resamples,
                          method="percentile", random_state=0)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def add_timing(frame, runs: int, warmup: int = 5, column: str = "file"):
    """``frame`` with the latency of each row's file (``column``; rows without one get nan) merged in:
    every file timed interleaved by :func:`timing_table`, the first file the reference of the ratios."""
    files = frame[column].dropna()
    timing = timing_table(dict(zip(files, files)), runs=runs, warmup=warmup).rename(columns={"config": column})
    cols = [column, "latency_ms", "latency_ci_low", "latency_ci_high", "latency_ratio", "ratio_ci_low", "ratio_ci_high"]
    return frame.merge(timing[cols], on=column, how="left")


def ratio_interval(times, base, confidence: float = 0.95, resamples: int = 9999) -> tuple[float, float]:
    """Interval of median(times) / median(base) over paired rounds: scipy's BCa bootstrap, paired
    (a round's two timings are resampled together, as they were taken side by side)."""
    from scipy import stats

    t, b = np.asarray(times, float), np.asarray(base, float)
    if len(t) < 3 or t is b or np.array_equal(t, b):
        r = float(np.median(t) / np.median(b))
        return (r, r)
    res = stats.bootstrap((t, b), lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis),
                          paired=True, vectorized=True, confidence_level=confidence, n_resamples=resamples,
                          method="BCa", random_state=0)
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):   # BCa can fail on ties; fall back to percentiles
        res = stats.bootstrap((t, b), lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis),
                              paired=True, vectorized=True, confidence_level=confidence, n_resamples=resamples,
                              method="percentile", random_state=0)
        lo, hi = res.confidence_interval
    return (float(lo), float(hi))

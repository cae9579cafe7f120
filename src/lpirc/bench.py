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
                time_budget_s: float | None = None) -> list[dict]:
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
        out.append(rec)
    return out


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

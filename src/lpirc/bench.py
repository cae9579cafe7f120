"""Single-thread latency of TFLite models with LiteRT, and A/B ratios measured interleaved.

The machines this runs on are shared and noisy: absolute times drift by up to 15% while ratios of
models timed in alternation within one process hold within about 1% (DESIGN.md). So every
comparison here interleaves the models run by run and reports medians and the ratio of medians.
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
    rng = np.random.default_rng(0)
    out = []
    for m in models:
        rec = {"model": str(m.path), **summarize(m.times), "num_threads": num_threads}
        t = np.asarray(m.times)
        rec["ratio_to_first"] = float(np.median(t) / np.median(base))
        boots = []
        for _ in range(200):
            idx = rng.integers(0, len(t), len(t))
            boots.append(np.median(t[idx]) / np.median(base[idx]))
        rec["ratio_ci95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
        out.append(rec)
    return out

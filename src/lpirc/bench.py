"""Single-thread latency of TFLite models with LiteRT, and A/B ratios measured interleaved.

The machines this runs on are shared and noisy: absolute times drift while ratios of models timed in
alternation within one process stay stable (book page "How the measurements are made",
book/method.md). So every comparison here interleaves the models run by run, in a new random order
each round (a model's place in the round otherwise biases it: two byte-identical files timed 10%
apart), and reports medians and the ratio of medians.

One process is one *session*. Ratios vary more between sessions (memory layout, the other load on
the machine) than an interval computed inside one session admits, so :func:`timing_table` splits its
rounds over several sessions, each a fresh process, and takes the session as the unit of its ratio
intervals.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lpirc.stats import session_ratio
from lpirc.tflite import interpreter, timed_rounds
from lpirc.tfutil import native_stderr_to_log
from lpirc.tfutil import tensorflow as _tf

SESSIONS = 5     # timing sessions (fresh processes) a timing table's rounds are split over


def summarize(times_ms) -> dict:
    a = np.asarray(times_ms, dtype=np.float64)
    return {"median_ms": float(np.median(a)), "p10_ms": float(np.percentile(a, 10)),
            "p90_ms": float(np.percentile(a, 90)), "min_ms": float(a.min()), "runs": int(len(a))}


def interleaved(paths, runs: int = 50, warmup: int = 5, num_threads: int = 1,
                time_budget_s: float | None = None, keep_times: bool = False, order_seed: int = 0) -> list[dict]:
    """Time several models in alternation in one process, every round in a new random order
    (B A C, C B A, ...; ``order_seed`` draws the orders).

    Each result has median/p10/p90 and ``ratio_to_first``: the ratio of medians to the first model,
    plus ``ratio_ci95`` from a bootstrap over paired rounds (within this session only).
    ``time_budget_s`` stops early (after at least 10 rounds) so a grid of slow models stays within a
    step's budget.
    """
    times = timed_rounds(paths, runs, warmup, num_threads, time_budget_s, order_seed)
    base = np.asarray(times[0])
    out = []
    for path, t in zip(paths, times):
        t = np.asarray(t)
        rec = {"model": str(Path(path)), **summarize(t), "num_threads": num_threads}
        rec["ratio_to_first"] = float(np.median(t) / np.median(base))
        rec["ratio_ci95"] = list(ratio_interval(t, base))
        if keep_times:
            rec["times_ms"] = [float(v) for v in t]
        out.append(rec)
    return out


def sessions(paths: list, runs: int, warmup: int = 5, count: int = SESSIONS) -> list[list[list[float]]]:
    """``runs`` interleaved rounds split over ``count`` sessions, each a fresh single-threaded process
    with its own random orders: [session][model] -> times (ms). One session runs in this process.
    A session process runs :func:`lpirc.tflite.timed_rounds`: it imports LiteRT, numpy and PIL, not pandas,
    scipy or TensorFlow."""
    paths = [str(p) for p in paths]
    if count <= 1:
        return [timed_rounds(paths, runs, warmup, order_seed=0)]
    per = max(3, -(-runs // count))
    out = []
    for k in range(count):
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            out.append(pool.submit(timed_rounds, paths, per, warmup, order_seed=k).result())
    return out


def with_session_ratios(frame):
    """``frame`` (a saved timing table with its ``session_ratios`` column) with each row's ratio to the first
    file and its 95% interval recomputed from the sessions (:func:`lpirc.stats.session_ratio`): latency_ratio,
    ratio_ci_low, ratio_ci_high, for a table that kept only the per-session ratios."""
    est = [session_ratio(json.loads(v) if isinstance(v, str) else v) for v in frame.session_ratios]
    return frame.assign(latency_ratio=[e[0] for e in est], ratio_ci_low=[e[1] for e in est],
                        ratio_ci_high=[e[2] for e in est])


def input_size(path) -> str:
    """A .tflite file's input size, 'HxW' (what :func:`grouped_timing_table` groups files by)."""
    h, w = interpreter(path).get_input_details()[0]["shape"][1:3]
    return f"{int(h)}x{int(w)}"


def grouped_timing_table(files: dict, runs: int, warmup: int = 5, count: int = SESSIONS) -> "pd.DataFrame":
    """:func:`timing_table` once per input size: files of one size are timed interleaved with each other,
    never with files of another size. A 32x32 model timed between 160x160 ones finds its weights and
    activations evicted from the caches every run and measures up to twice as slow as when it runs among
    its peers, as it does in its chapter and on a phone that runs one model. Rows keep the order of
    ``files`` within a group; ``group`` names it, and ratios are to the group's first file."""
    groups: dict[str, dict] = {}
    for name, path in files.items():
        groups.setdefault(input_size(path), {})[name] = path
    return pd.concat([timing_table(g, runs=runs, warmup=warmup, count=count).assign(group=size)
                      for size, g in groups.items()], ignore_index=True)


def pair_ratio(table, a: str, b: str, confidence: float = 0.95, group: str | None = None) -> tuple[float, float, float]:
    """The latency ratio ``a`` / ``b`` of two files timed together, read off a saved timing table (indexed by
    file or with a ``file`` column, and its ``session_ratios``; with a ``group`` column, the first group that
    holds both files, or ``group``): in each session both were timed against the group's first file, so a
    session's a/b is the quotient of their ratios to it; the ratio and its interval across sessions as
    :func:`lpirc.stats.session_ratio` gives them. The one way a pair of files is read off the book's table."""
    t = table.reset_index() if "file" not in getattr(table, "columns", []) else table
    t = t if "group" in t.columns else t.assign(group="")
    shared = [g for g, rows in t.groupby("group", sort=False) if {a, b} <= set(rows.file) and group in (None, g)]
    if not shared:
        raise ValueError(f"{a} and {b} were never timed together in one group of the table"
                         + (f" (asked for group {group!r})" if group is not None else "")
                         + ": their sessions share no reference file")
    rows = t[t.group == shared[0]].set_index("file")
    ra, rb = (np.asarray(json.loads(v) if isinstance(v, str) else v, float)
              for v in (rows.session_ratios[a], rows.session_ratios[b]))
    return session_ratio(ra / rb, confidence)


# The chapters' timing tables, (step, table): each holds files one chapter timed together in one call of
# :func:`timing_table` (the first file the reference of its ratios), saved as
# results/<profile>/<step>/tables/<table>.csv with each session's ratios. The benchmark collects these
# instead of timing the same files again: a second measurement of a pair gives a second ratio, and a small
# model's ratio moves with the files timed beside it by more than a session interval admits.
CHAPTER_TIMINGS = (("quantization", "variants"), ("quantization", "challenge_architecture"),
                   ("factorization", "sweep"), ("factorization", "challenge_architecture"),
                   ("stacked", "timing"), ("stacked", "challenge_architecture"))
TIMING_COLUMNS = ["file", "group", "latency_ms", "latency_ci_low", "latency_ci_high", "sessions", "session_ratios"]


def results_relative(results: Path, step: str, file: str) -> str:
    """A file named in ``step``'s table (relative to the step's folder, ``../other_step/...``, or absolute)
    as a path relative to results/<profile>/, the way the benchmark's table names files."""
    p = Path(file)
    if p.is_absolute():
        results = Path(results)
        return str(p.relative_to(results.resolve()) if p.is_relative_to(results.resolve()) else p.relative_to(results))
    return os.path.normpath(f"{step}/{file}")


def chapter_timings(results: Path, tables=CHAPTER_TIMINGS) -> "pd.DataFrame":
    """The timing tables the chapters saved (:data:`CHAPTER_TIMINGS`), one row per timed file, files named
    relative to ``results`` and ``group`` naming the table ("step: table"); tables a run did not write, or
    wrote without session ratios, are left out, and so are rows a chapter copied from an earlier chapter's
    table (the same file with the same sessions: one timing, one row)."""
    frames = []
    for step, name in tables:
        csv = Path(results) / step / "tables" / f"{name}.csv"
        t = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
        if not {"file", "session_ratios"} <= set(t.columns):
            continue
        t = t.dropna(subset=["file", "session_ratios"])
        frames.append(t.assign(file=[results_relative(results, step, f) for f in t.file], group=f"{step}: {name}")
                      .reindex(columns=TIMING_COLUMNS))
    if not frames:
        return pd.DataFrame(columns=TIMING_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    return table[~table.assign(s=table.session_ratios.astype(str)).duplicated(["file", "s"])].reset_index(drop=True)


def book_timing_table(results: Path, files, runs: int, warmup: int = 5, count: int = SESSIONS) -> "pd.DataFrame":
    """The book's one timing table for ``files`` (.tflite paths under ``results``): every file a chapter timed
    with its sessions' ratios as that chapter measured them (:func:`chapter_timings`, group "step: table"),
    and the rest timed here, files of one input size together (:func:`grouped_timing_table`, group
    "benchmark: HxW"). A pair of files timed in a chapter thus keeps that chapter's ratio."""
    results = Path(results)
    chapters = chapter_timings(results)
    rest = {str(Path(p).relative_to(results)): Path(p) for p in files}
    rest = {name: p for name, p in rest.items() if name not in set(chapters.file)}
    here = (grouped_timing_table(rest, runs=runs, warmup=warmup, count=count).rename(columns={"config": "file"})
            .assign(group=lambda t: "benchmark: " + t.group).reindex(columns=TIMING_COLUMNS)) if rest else None
    return pd.concat([chapters, here], ignore_index=True)


def timing_table(files: dict, runs: int, warmup: int = 5, count: int = SESSIONS) -> "pd.DataFrame":
    """``files`` ({name: .tflite path}) timed interleaved in ``count`` sessions (:func:`sessions`); one row
    per name: the median over all rounds (ms) with its 95% interval, p10/p90, and the ratio to the first
    file with its 95% interval across sessions (:func:`lpirc.stats.session_ratio`; with one session, a paired BCa
    bootstrap over that session's rounds, which leaves out the session-to-session variation)."""
    names = list(files)
    timed = sessions([files[n] for n in names], runs=runs, warmup=warmup, count=count)
    rows = []
    for i, n in enumerate(names):
        pooled = np.concatenate([s[i] for s in timed])
        ratios = [np.median(s[i]) / np.median(s[0]) for s in timed]
        if len(timed) > 1:
            ratio, lo_r, hi_r = session_ratio(ratios) if i else (1.0, 1.0, 1.0)
        else:
            ratio = float(ratios[0])
            lo_r, hi_r = ratio_interval(timed[0][i], timed[0][0]) if i else (1.0, 1.0)
        lo, hi = median_interval(pooled)
        rows.append({"config": n, "latency_ms": float(np.median(pooled)), "latency_ci_low": lo, "latency_ci_high": hi,
                     "p10_ms": float(np.percentile(pooled, 10)), "p90_ms": float(np.percentile(pooled, 90)),
                     "runs": int(len(pooled)), "sessions": len(timed), "latency_ratio": ratio,
                     "ratio_ci_low": lo_r, "ratio_ci_high": hi_r,
                     "session_ratios": [float(r) for r in ratios]})
    return pd.DataFrame(rows)


def median_interval(times, confidence: float = 0.95, resamples: int = 9999) -> tuple[float, float]:
    """Interval of the median of ``times`` (scipy's bootstrap, percentile method: medians tie often)."""
    t = np.asarray(times, float)
    if len(t) < 3 or np.all(t == t[0]):
        return (float(np.median(t)), float(np.median(t)))
    res = stats.bootstrap((t,), np.median, confidence_level=confidence, n_resamples=resamples,
                          method="percentile", random_state=0)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def add_timing(frame, runs: int, warmup: int = 5, column: str = "file", count: int = SESSIONS):
    """``frame`` with the latency of each row's file (``column``; rows without one get nan) merged in:
    every file timed interleaved by :func:`timing_table`, the first file the reference of the ratios."""
    files = frame[column].dropna()
    timing = timing_table(dict(zip(files, files)), runs=runs, warmup=warmup, count=count).rename(columns={"config": column})
    cols = [column, "latency_ms", "latency_ci_low", "latency_ci_high", "latency_ratio", "ratio_ci_low", "ratio_ci_high",
            "sessions", "session_ratios"]
    return frame.merge(timing[cols], on=column, how="left")


def ratio_interval(times, base, confidence: float = 0.95, resamples: int = 9999) -> tuple[float, float]:
    """Interval of median(times) / median(base) over paired rounds: scipy's BCa bootstrap, paired
    (a round's two timings are resampled together, as they were taken side by side)."""
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


def overhead_model(path: Path) -> Path:
    """A one-operator float model (ADD of two scalars): its latency is the per-invoke overhead that
    per-layer timing subtracts (lpirc.profiler) and peak-rate measurement discounts (lpirc.projection)."""
    tf = _tf()

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def f(x):
        return x + 1.0

    with native_stderr_to_log():
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        Path(path).write_bytes(conv.convert())
    return Path(path)

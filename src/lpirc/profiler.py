"""Per-layer latency of a TFLite model from Python, without recompiling anything.

No Python interpreter API times single TFLite operators, and no wheel ships benchmark_model. This
module cuts the model's flatbuffer instead:

* **single-operator sub-models**: every operator becomes a model of its own (its constant inputs
  kept, its activation inputs made model inputs), timed interleaved with the whole model; each
  keeps the XNNPACK delegation it had in the full graph. The per-invoke overhead, measured on a
  trivial model, is subtracted from each operator.
* **prefix differencing**: models made of operators 0..k; operator k costs t(0..k) - t(0..k-1).
  Exact in total by construction, noisy for small operators, and quadratic in cost.

In a converted Keras model each TFLite operator is one fused unit (convolution + folded batch
norm + ReLU6, depthwise, pointwise, pooling, the classifier), so both methods give per-unit
times. MACs per operator come from the tensor shapes.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lpirc import bench
from lpirc.conversion import convert, random_representative
from lpirc.flatbuffer import operators_of, read, submodel, to_bytes
from lpirc.models import keras
from lpirc.tflite import check_tflite_file


def profile(path: Path, runs: int = 100, warmup: int = 10, prefixes: bool = True, work_dir: Path | None = None,
            progress: bool = False, probes=()) -> dict:
    """Per-operator latency of a .tflite by single-op sub-models and (optionally) prefix differencing.

    Returns {"ops": [...], "whole_ms", "overhead_ms", "sum_single_ms", "sum_prefix_ms", "probes"}; each op
    row has single_ms (overhead subtracted), prefix_ms, macs, share, gmacs_per_s. ``probes``: further
    .tflite paths timed in the same interleaved session (their timing records come back as "probes").
    """
    path = check_tflite_file(path)
    model = read(path)
    n = len(model.subgraphs[0].operators)
    tmp_ctx = tempfile.TemporaryDirectory() if work_dir is None else None
    work = Path(work_dir or tmp_ctx.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        singles = []
        for i in range(n):
            p = work / f"op{i:03d}.tflite"
            p.write_bytes(to_bytes(submodel(model, [i])))
            singles.append(p)
        over = bench.overhead_model(work / "overhead.tflite")
        timed = bench.interleaved([path, over, *singles, *probes], runs=runs, warmup=warmup, keep_times=True)
        probe_times = timed[2 + n:]
        timed = timed[:2 + n]
        whole, overhead = timed[0]["median_ms"], timed[1]["median_ms"]
        overhead_ci = bench.median_interval(timed[1]["times_ms"])
        ops = operators_of(model)
        for op, t in zip(ops, timed[2:]):
            op["single_raw_ms"] = t["median_ms"]
            op["single_ms"] = max(t["median_ms"] - overhead, 0.0)
        if prefixes:
            pre_paths = []
            for k in range(n):
                p = work / f"prefix{k:03d}.tflite"
                p.write_bytes(to_bytes(submodel(model, list(range(k + 1)))))
                pre_paths.append(p)
            pre = bench.interleaved(pre_paths, runs=max(10, runs // 2), warmup=warmup)
            prev = overhead
            for op, t in zip(ops, pre):
                op["prefix_ms"] = t["median_ms"] - prev
                prev = t["median_ms"]
        sum_single = sum(op["single_ms"] for op in ops) + overhead
        for op in ops:
            op["share"] = op["single_ms"] / max(sum_single - overhead, 1e-12)
            op["gmacs_per_s"] = op["macs"] / (op["single_ms"] * 1e6) if op["single_ms"] > 0 and op["macs"] else float("nan")
        # the single-operator sum subtracts the overhead once per operator: its interval is the overhead's
        def total(ov):
            return sum(max(op["single_raw_ms"] - ov, 0.0) for op in ops) + ov
        sum_single_ci = (total(overhead_ci[1]), total(overhead_ci[0]))
        return {"model": str(path), "ops": ops, "whole_ms": whole, "overhead_ms": overhead,
                "overhead_ci95": list(overhead_ci), "sum_single_ms": sum_single, "sum_single_ci95": list(sum_single_ci),
                "sum_prefix_ms": (sum(op["prefix_ms"] for op in ops) + overhead) if prefixes else None,
                "runs": runs, "overhead_min_ms": timed[1]["min_ms"],
                "probes": [{k: v for k, v in t.items() if k != "times_ms"} for t in probe_times]}
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()


RESOLVED_MULTIPLE = 10     # an operator's time must exceed 10x the width of the overhead's 95% interval
# Single 1x1 convolutions (H, W, C -> C) timed in the per-layer session itself: MobileNet's pointwise
# GEMMs with more rows, each small enough to stay in a 1 MB L2 cache.
PROBE_SHAPES = ((16, 16, 512), (20, 20, 512), (10, 10, 1024), (32, 32, 256))


def probe_models(precision: str, work_dir: Path, shapes=PROBE_SHAPES) -> list[tuple[Path, int]]:
    """One single-1x1-convolution .tflite per shape, converted like every model of the book; (path, MACs)."""
    out = []
    for h, w, c in shapes:
        inp = keras.Input((h, w, c))
        model = keras.Model(inp, keras.layers.Conv2D(c, 1, use_bias=False)(inp))
        rep = random_representative((h, w, c), 4, 0) if precision == "int8" else None
        path = convert(model, precision, Path(work_dir) / f"probe_{precision}_{h}x{w}x{c}.tflite", rep).path
        out.append((Path(path), h * w * c * c))
    return out


def attribute(path: Path, peak_gmacs_per_s: float, runs: int = 100, work_dir: Path | None = None,
              precision: str | None = None):
    """Per-layer latency of ``path`` by both methods of :func:`profile`, reconciled with the whole model.

    Returns (ops, summary). ``ops``: one row per operator with its Keras unit, both estimates, the floor
    (MACs / measured peak rate), efficiency = floor / single-operator time for the operators resolved
    against the overhead's uncertainty (:data:`RESOLVED_MULTIPLE`), and each operator's share of the time. ``summary``: the whole model's time, the per-invoke overhead with its 95% interval, each
    method's sum over the whole (the single-operator sum's interval is the overhead's, counted once per
    operator but one), and which method the shares use: single-operator unless its sum is off the whole
    by more than 3% and prefix differencing (exact in total by construction) is closer.

    The peak behind the floor is the higher of ``peak_gmacs_per_s`` (measured in another session) and
    the best rate of :data:`PROBE_SHAPES` single 1x1 convolutions of ``precision`` timed in this session
    (MACs over the fastest run minus the overhead's fastest): clock and cache drift between sessions
    cannot then make an operator look faster than the peak."""
    probe_dir = Path(work_dir or tempfile.mkdtemp()) / "probes"
    probe_dir.mkdir(parents=True, exist_ok=True)
    probes = probe_models(precision or ("int8" if "int8" in Path(path).name else "float32"), probe_dir)
    prof = profile(path, runs=runs, work_dir=work_dir, probes=[p for p, _ in probes])
    rates = [macs / max(t["min_ms"] - prof["overhead_min_ms"], 1e-9) / 1e6 for (_, macs), t in zip(probes, prof["probes"])]
    best = int(np.argmax(rates))
    peak = max(peak_gmacs_per_s, rates[best])
    peak_source = (f"a single {'x'.join(map(str, PROBE_SHAPES[best]))} 1x1 convolution timed in this session"
                   if rates[best] >= peak_gmacs_per_s else "the host's peak measured before this session")
    ops = pd.DataFrame(prof["ops"])
    ops.insert(1, "unit", keras_units(prof["ops"]))
    ops["floor_ms"] = ops.macs / (peak * 1e6)
    # an operator is *resolved* when its time, the overhead subtracted, is large against the overhead's
    # own uncertainty; below that, floor / measured would mostly measure the noise of the subtraction
    spread = prof["overhead_ci95"][1] - prof["overhead_ci95"][0]
    ops["resolved"] = ops.single_ms > RESOLVED_MULTIPLE * max(spread, 1e-6)
    ops["efficiency"] = (ops.floor_ms / ops.single_ms).where(ops.resolved)
    whole = prof["whole_ms"]
    r_single, r_prefix = prof["sum_single_ms"] / whole, prof["sum_prefix_ms"] / whole
    method = "prefix" if abs(r_single - 1) > 0.03 and abs(r_prefix - 1) < abs(r_single - 1) else "single"
    ops["share"] = ops[f"{method}_ms"] / ops[f"{method}_ms"].sum()
    why = ("its sum is within 3% of the whole" if abs(r_single - 1) <= 0.03 else
           "prefix differencing is no closer to the whole" if method == "single" else
           "the single-operator sum is off the whole by more than 3% (it subtracts the overhead, itself uncertain, "
           "once per operator), and prefix differencing adds up to the whole by construction")
    summary = {"model": str(path), "operators": len(ops), "whole_ms": whole, "overhead_ms": prof["overhead_ms"],
               "overhead_ci95": prof["overhead_ci95"], "ratio_single": r_single,
               "ratio_single_ci95": [v / whole for v in prof["sum_single_ci95"]], "ratio_prefix": r_prefix,
               "share_method": method, "why": why, "max_efficiency": float(ops.efficiency.max()),
               "resolved": int(ops.resolved.sum()), "runs": runs, "peak_gmacs_per_s": peak, "peak_source": peak_source,
               "probe_rates_gmacs_per_s": dict(zip(["x".join(map(str, s)) for s in PROBE_SHAPES], rates))}
    return ops, summary


def keras_units(ops: list[dict]) -> list[str]:
    """Map TFLite operators back to Keras layer names via their output tensor names."""
    units = []
    for op in ops:
        m = re.findall(r"(conv_pw_\d+(?:_[ab])?|conv_dw_\d+|conv1|logits|global_average_pooling2d|predictions)",
                       op["output"])
        units.append(m[-1] if m else op["op"].lower())
    return units

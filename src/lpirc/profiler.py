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

import copy
import functools
import tempfile
from pathlib import Path

import numpy as np

from lpirc.evaluate import check_tflite_file


def _schema():
    from lpirc.tfutil import quiet_tensorflow
    quiet_tensorflow()
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils
    return schema_fb, flatbuffer_utils


def read(path: Path):
    _, fu = _schema()
    return fu.read_model(str(check_tflite_file(path)))


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    schema_fb, _ = _schema()
    return {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}


def op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return _builtin_names().get(builtin, f"OP_{builtin}")


def _is_constant(model, tensor) -> bool:
    buf = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def _tensor_name(t) -> str:
    n = t.name
    return n.decode() if isinstance(n, bytes) else str(n)


def submodel(model, op_indices: list[int], outputs: list[int] | None = None):
    """A new ModelT holding only the given operators of subgraph 0.

    Activations consumed but not produced inside become inputs; ``outputs`` (tensor indices of the
    original) default to the last operator's outputs. Constants keep their data; everything else
    uses the empty sentinel buffer 0. Metadata and signatures, which point at original numbers,
    are dropped.
    """
    schema_fb, _ = _schema()
    g = model.subgraphs[0]
    ops = [g.operators[i] for i in op_indices]
    produced = {t for op in ops for t in op.outputs}
    used: list[int] = []
    for op in ops:
        for t in list(op.inputs) + list(op.outputs) + list(op.intermediates or []):
            if t >= 0 and t not in used:
                used.append(t)
    remap = {old: new for new, old in enumerate(used)}
    new = schema_fb.ModelT()
    new.version = model.version
    new.description = model.description
    new.operatorCodes = model.operatorCodes
    empty = schema_fb.BufferT()
    empty.data = None
    new.buffers = [empty]
    sg = schema_fb.SubGraphT()
    sg.name = g.name
    sg.tensors = []
    inputs = []
    for old in used:
        t = copy.copy(g.tensors[old])
        if _is_constant(model, g.tensors[old]):
            b = schema_fb.BufferT()
            b.data = np.asarray(model.buffers[g.tensors[old].buffer].data, dtype=np.uint8)
            new.buffers.append(b)
            t.buffer = len(new.buffers) - 1
        else:
            t.buffer = 0
            if old not in produced:
                inputs.append(remap[old])
        sg.tensors.append(t)
    sg.inputs = inputs
    outs = outputs if outputs is not None else list(ops[-1].outputs)
    sg.outputs = [remap[t] for t in outs]
    sg.operators = []
    for op in ops:
        o = copy.copy(op)
        o.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
        o.outputs = [remap[t] for t in op.outputs]
        o.intermediates = [remap[t] for t in (op.intermediates or [])]
        sg.operators.append(o)
    new.subgraphs = [sg]
    new.metadata = None
    new.metadataBuffer = None
    new.signatureDefs = None
    return new


def to_bytes(model) -> bytes:
    _, fu = _schema()
    return bytes(fu.convert_object_to_bytearray(model))


def op_macs(model, op) -> int:
    """Multiply-accumulates of one operator from its tensor shapes (0 for non-arithmetic ops)."""
    g = model.subgraphs[0]
    name = op_name(model, op)
    out = g.tensors[op.outputs[0]].shape
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op.inputs) > 1:
        w = g.tensors[op.inputs[1]].shape   # conv: [Cout, kh, kw, Cin]; depthwise: [1, kh, kw, Cout]
        if name == "CONV_2D":
            return int(np.prod(out[1:3]) * out[3] * w[1] * w[2] * w[3])
        return int(np.prod(out[1:3]) * out[3] * w[1] * w[2])
    if name == "FULLY_CONNECTED" and len(op.inputs) > 1:
        w = g.tensors[op.inputs[1]].shape   # [out, in]
        rows = int(np.prod(out[:-1])) if len(out) > 1 else 1
        return int(rows * w[0] * w[1])
    return 0


def size_of(path: Path) -> tuple[int, int]:
    """(parameters, MACs) of a .tflite file: the elements of its constant tensors, and :func:`op_macs`
    summed over subgraph 0."""
    model = read(path)
    g = model.subgraphs[0]
    params = sum(int(np.prod(t.shape)) for t in g.tensors
                 if t.buffer and model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data))
    return params, sum(op_macs(model, op) for op in g.operators)


def operators(path: Path) -> list[dict]:
    return operators_of(read(path))


def operators_of(model) -> list[dict]:
    """Index, op type, output tensor name and shape, and MACs of every operator of subgraph 0."""
    g = model.subgraphs[0]
    out = []
    for i, op in enumerate(g.operators):
        t = g.tensors[op.outputs[0]]
        out.append({"index": i, "op": op_name(model, op), "output": _tensor_name(t),
                    "output_shape": [int(v) for v in t.shape], "macs": op_macs(model, op)})
    return out


def overhead_model(path: Path) -> Path:
    """A one-operator float model (ADD of two scalars): its latency is the per-invoke overhead."""
    import tensorflow as tf
    from lpirc.tfutil import native_stderr_to_log

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def f(x):
        return x + 1.0

    with native_stderr_to_log():
        conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
        Path(path).write_bytes(conv.convert())
    return Path(path)


def profile(path: Path, runs: int = 100, warmup: int = 10, prefixes: bool = True, work_dir: Path | None = None,
            progress: bool = False, probes=()) -> dict:
    """Per-operator latency of a .tflite by single-op sub-models and (optionally) prefix differencing.

    Returns {"ops": [...], "whole_ms", "overhead_ms", "sum_single_ms", "sum_prefix_ms", "probes"}; each op
    row has single_ms (overhead subtracted), prefix_ms, macs, share, gmacs_per_s. ``probes``: further
    .tflite paths timed in the same interleaved session (their timing records come back as "probes").
    """
    from lpirc import bench

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
        over = overhead_model(work / "overhead.tflite")
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
    from lpirc import quantize
    from lpirc.models import keras

    out = []
    for h, w, c in shapes:
        inp = keras.Input((h, w, c))
        model = keras.Model(inp, keras.layers.Conv2D(c, 1, use_bias=False)(inp))
        rep = quantize.random_representative((h, w, c), 4, 0) if precision == "int8" else None
        path = quantize.convert(model, precision, Path(work_dir) / f"probe_{precision}_{h}x{w}x{c}.tflite", rep).path
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
    import pandas as pd

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
    import re
    units = []
    for op in ops:
        m = re.findall(r"(conv_pw_\d+(?:_[ab])?|conv_dw_\d+|conv1|logits|global_average_pooling2d|predictions)",
                       op["output"])
        units.append(m[-1] if m else op["op"].lower())
    return units

"""The operators of a .tflite file, read from its flatbuffer: types, output shapes, MACs, the
parameter count, and sub-models made of chosen operators (lpirc.profiler times them).

The flatbuffer schema ships with TensorFlow (``tensorflow.lite``): importing this module imports
TensorFlow, quietly.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np

from lpirc.tflite import check_tflite_file
from lpirc.tfutil import quiet_tensorflow

quiet_tensorflow()  # imports TensorFlow with its native start-up log lines muted
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402
from tensorflow.lite.tools import flatbuffer_utils  # noqa: E402


def read(path: Path):
    """The flatbuffer of a .tflite file as an object tree (a ``ModelT``)."""
    return flatbuffer_utils.read_model(str(check_tflite_file(path)))


@functools.lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
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
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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

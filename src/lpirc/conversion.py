"""Converting Keras models to TFLite files: float32, dynamic-range and full-integer int8, with the
calibration images int8 needs; and MobileNet v1 architectures with random weights converted as grid
tasks (latency needs no trained weights).

The quantized model of record is full-integer int8 (TFLITE_BUILTINS_INT8, int8 input and output,
calibrated on a representative sample of the train split): on CPUs with XNNPACK it is the fast path,
while dynamic-range models run about as fast as float (book/method.md, "Which quantized model counts").
Quantization-aware training is lpirc.quantize's.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from lpirc.data import to_model_input
from lpirc.grid import run_grid
from lpirc.models import count_macs, mobilenet_v1
from lpirc.results import atomic_path
from lpirc.tfutil import native_stderr_to_log
from lpirc.tfutil import tensorflow as _tf

MODES = ("float32", "dynamic_range", "int8")


@dataclasses.dataclass
class Converted:
    mode: str
    path: Path
    convert_s: float
    size_bytes: int


def _converter(model):
    """A converter over the model's inference function at batch 1.

    Going through a concrete function without the Keras object avoids the SavedModel export that
    ``from_keras_model`` performs: same flatbuffer ops, 10-15x faster on small models (measured
    0.44 s against 6-10 s for the 32x32 student)."""
    tf = _tf()
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn])


def representative_dataset(images_uint8: np.ndarray, size: int, seed: int = 0):
    """A generator of single float images in [-1, 1], drawn without replacement from the given split."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(images_uint8), size=min(size, len(images_uint8)), replace=False)
    return _one_at_a_time(to_model_input(images_uint8[np.sort(idx)]))


def _one_at_a_time(sample: np.ndarray):
    """The converter's representative_dataset: a callable yielding [batch-1 float input]."""
    def gen():
        for x in sample:
            yield [x[None]]
    return gen


def convert(model, mode: str, path: Path | str, representative=None) -> Converted:
    """Convert and write ``path`` atomically. ``representative`` (from representative_dataset) is
    required for int8; for models that have not been trained, random images calibrate well enough
    for latency work."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    tf = _tf()
    conv = _converter(model)
    if mode in ("dynamic_range", "int8"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset")
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    start = time.perf_counter()
    with native_stderr_to_log():
        flatbuffer = conv.convert()
    seconds = time.perf_counter() - start
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return Converted(mode, path, seconds, len(flatbuffer))


def random_representative(shape, n: int = 16, seed: int = 0):
    """Calibration images for untrained architectures (latency only): uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return _one_at_a_time(rng.uniform(-1, 1, size=(n, *shape)).astype(np.float32))


# --------------------------------------------------------------------------------------------------
# untrained architectures (latency needs no trained weights): one conversion per grid task
def convert_untrained(model, precision: str, path, seed: int = 0) -> dict:
    """Convert a model with random weights (int8: calibrated on random images); what the file cost."""
    resolution = model.input_shape[1]
    rep = random_representative((resolution, resolution, 3), 4, seed)
    conv = convert(model, precision, path, rep if precision == "int8" else None)
    return {"path": str(conv.path), "convert_s": conv.convert_s, "size_bytes": conv.size_bytes,
            "macs": count_macs(model)}


def convert_architecture(*, width_multiplier: float, resolution: int, classes: int, precision: str, path: str,
                         seed: int = 0, **extra) -> dict:
    """MobileNet v1 with random weights converted to ``precision`` at ``path``. A pure task."""
    model = mobilenet_v1(width_multiplier, resolution, classes)
    return {"width_multiplier": width_multiplier, "resolution": resolution, "classes": classes,
            "precision": precision, **extra, **convert_untrained(model, precision, path, seed)}


def convert_architectures(jobs: list[dict], label: str = "conversions", scheduler: str | None = None,
                          task=convert_architecture) -> list[dict]:
    """``task`` (default :func:`convert_architecture`) for every job, as grid tasks (lpirc.grid): the
    converter is mostly single-threaded, so one task per core divides the wall time."""
    return run_grid(task, jobs, label=label, scheduler=scheduler)

"""Converting Keras models to TFLite: float32, dynamic-range, full-integer int8, and QAT int8.

The quantized model of record is full-integer int8 (TFLITE_BUILTINS_INT8, int8 input and output,
calibrated on a representative sample of the train split): on CPUs with XNNPACK it is the fast path,
while dynamic-range models run about as fast as float (book/method.md, "Which quantized model counts").
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from lpirc.tfutil import native_stderr_to_log, quiet_tensorflow

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
    import tensorflow as tf

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn])


def representative_dataset(images_uint8: np.ndarray, size: int, seed: int = 0):
    """A generator of single float images in [-1, 1], drawn without replacement from the given split."""
    from lpirc.data import to_model_input

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
    import tensorflow as tf
    from lpirc.results import atomic_path

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    quiet_tensorflow()
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
# quantization-aware training
def quantization_aware(model):
    """Wrap a (tf_keras, functional) model with fake-quantization nodes for QAT."""
    quiet_tensorflow()
    import tensorflow_model_optimization as tfmot

    with native_stderr_to_log():
        return tfmot.quantization.keras.quantize_model(model)


def train_qat(model, x_train, y_train, x_val, y_val, *, epochs: int, learning_rate: float = 1e-3,
              batch_size: int = 128, verbose: int = 2):
    """Fine-tune a QAT-wrapped copy of a trained float model; returns (qat_model, record)."""
    from lpirc.models import train_classifier

    qat_model = quantization_aware(model)
    record = train_classifier(qat_model, x_train, y_train, x_val, y_val, epochs=epochs,
                              batch_size=batch_size, learning_rate=learning_rate, verbose=verbose)
    return qat_model, record


# --------------------------------------------------------------------------------------------------
# many untrained architectures at once (the benchmark grid): conversions in parallel processes
def _convert_architecture_job(job: dict) -> dict:
    from lpirc.models import count_macs, mobilenet_v1

    model = mobilenet_v1(job["width_multiplier"], job["resolution"], job["classes"])
    rep = random_representative((job["resolution"], job["resolution"], 3), 4, job.get("seed", 0))
    conv = convert(model, job["precision"], job["path"], rep if job["precision"] == "int8" else None)
    return {**job, "path": str(conv.path), "convert_s": conv.convert_s, "size_bytes": conv.size_bytes,
            "macs": count_macs(model)}


def convert_architectures(jobs: list[dict], workers: int = 2) -> list[dict]:
    """Convert MobileNet v1 variants with random weights ({width_multiplier, resolution, classes,
    precision, path}) in ``workers`` processes: the converter is mostly single-threaded, so two
    processes on two cores halve the wall time."""
    import concurrent.futures as cf
    import multiprocessing as mp

    if workers <= 1:
        return [_convert_architecture_job(j) for j in jobs]
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_convert_architecture_job, jobs))

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
# the chapter's experiment (notebooks/10_quantization.ipynb)
VARIANTS = {"float32": "float32 TFLite", "dynamic_range": "dynamic-range", "int8_ptq": "int8 PTQ",
            "int8_qat": "int8 QAT"}


def variants(student_path, splits: dict, num_classes: int, out_dir, *, representative_size: int, qat_epochs: int,
             qat_learning_rate: float, batch_size: int, seed: int = 0):
    """The trained student in every form: Keras float, and the TFLite files of :data:`VARIANTS`
    (post-training float32, dynamic-range and int8; int8 after quantization-aware training), all
    evaluated on every split but 'train' of ``splits`` ({split: (uint8 images, labels)}).

    Returns (rows, predictions): a DataFrame with one row per form (key, variant, file, size, top-1/5 per
    split, conversion time), and the top-1 prediction of each TFLite form per validation image."""
    import pandas as pd

    from lpirc import evaluate
    from lpirc.models import evaluate_keras, load_model

    out_dir = Path(out_dir)
    student = load_model(student_path)
    (x_train, y_train), (x_val, y_val) = splits["train"], splits["val"]
    shown = {k: v for k, v in splits.items() if k != "train"}
    rep = representative_dataset(x_train, representative_size, seed)
    converted = {"float32": convert(student, "float32", out_dir / "student_float32.tflite"),
                 "dynamic_range": convert(student, "dynamic_range", out_dir / "student_dynamic_range.tflite"),
                 "int8_ptq": convert(student, "int8", out_dir / "student_int8_ptq.tflite", rep)}
    qat_model, qat_fit = train_qat(student, x_train, y_train, x_val, y_val, epochs=qat_epochs,
                                   learning_rate=qat_learning_rate, batch_size=batch_size)
    converted["int8_qat"] = convert(qat_model, "int8", out_dir / "student_int8_qat.tflite", rep)
    rows, predictions = [], {}
    for key, label, model in (("keras", "float32 Keras", student), ("qat_keras", "QAT Keras (fake-quantized)", qat_model)):
        acc = {f"{s}_{k}": v for s, (x, y) in shown.items() for k, v in evaluate_keras(model, x, y).items()}
        rows.append({"key": key, "variant": label, "file": None, "size_kb": float("nan"), **acc,
                     "convert_s": float("nan"), "train_s": qat_fit["train_time_s"] if key == "qat_keras" else 0.0})
    for key, conv in converted.items():
        acc = {}
        for s, (x, y) in shown.items():
            r = evaluate.evaluate_arrays(conv.path, x, y, num_classes)
            acc.update({f"{s}_top1": r["top1"], f"{s}_top5": r["top5"]})
            if s == "val":
                predictions[key] = r["predictions"]
        rows.append({"key": key, "variant": VARIANTS[key], "file": str(conv.path), "size_kb": conv.size_bytes / 1024,
                     **acc, "convert_s": conv.convert_s, "train_s": 0.0})
    return pd.DataFrame(rows), predictions


# --------------------------------------------------------------------------------------------------
# untrained architectures (latency needs no trained weights): one conversion per grid task
def convert_untrained(model, precision: str, path, seed: int = 0) -> dict:
    """Convert a model with random weights (int8: calibrated on random images); what the file cost."""
    from lpirc.models import count_macs

    resolution = model.input_shape[1]
    rep = random_representative((resolution, resolution, 3), 4, seed)
    conv = convert(model, precision, path, rep if precision == "int8" else None)
    return {"path": str(conv.path), "convert_s": conv.convert_s, "size_bytes": conv.size_bytes,
            "macs": count_macs(model)}


def convert_architecture(*, width_multiplier: float, resolution: int, classes: int, precision: str, path: str,
                         seed: int = 0, **extra) -> dict:
    """MobileNet v1 with random weights converted to ``precision`` at ``path``. A pure task."""
    from lpirc.models import mobilenet_v1

    model = mobilenet_v1(width_multiplier, resolution, classes)
    return {"width_multiplier": width_multiplier, "resolution": resolution, "classes": classes,
            "precision": precision, **extra, **convert_untrained(model, precision, path, seed)}


def convert_architectures(jobs: list[dict], label: str = "conversions", scheduler: str | None = None,
                          task=convert_architecture) -> list[dict]:
    """``task`` (default :func:`convert_architecture`) for every job, as grid tasks (lpirc.grid): the
    converter is mostly single-threaded, so one task per core divides the wall time."""
    from lpirc.grid import run_grid

    return run_grid(task, jobs, label=label, scheduler=scheduler)

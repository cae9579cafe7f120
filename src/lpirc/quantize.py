"""Quantization: the trained student converted post-training (float32, dynamic-range, int8: the
conversions are lpirc.conversion's) and int8 after quantization-aware training (QAT, with
tensorflow-model-optimization), every form evaluated.

The quantized model of record is full-integer int8 (lpirc.conversion): on CPUs with XNNPACK it is the
fast path, while dynamic-range models run about as fast as float (book/method.md, "Which quantized
model counts").
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lpirc import evaluate
from lpirc.conversion import convert, representative_dataset
from lpirc.models import evaluate_keras, load_model, train_classifier
from lpirc.tfutil import model_optimization as _tfmot
from lpirc.tfutil import native_stderr_to_log


# --------------------------------------------------------------------------------------------------
# quantization-aware training
def quantization_aware(model):
    """Wrap a (tf_keras, functional) model with fake-quantization nodes for QAT."""
    with native_stderr_to_log():
        return _tfmot().quantization.keras.quantize_model(model)


def train_qat(model, x_train, y_train, x_val, y_val, *, epochs: int, learning_rate: float = 1e-3,
              batch_size: int = 128, verbose: int = 2):
    """Fine-tune a QAT-wrapped copy of a trained float model; returns (qat_model, record).

    Trained by the project's recipe (lpirc.models.train_classifier), on every device of the runtime's
    strategy; the QAT layers' scope lets the recipe copy the model into the strategy's scope."""
    qat_model = quantization_aware(model)
    with _tfmot().quantization.keras.quantize_scope():
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

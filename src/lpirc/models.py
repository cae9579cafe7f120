"""Model builders (MobileNet v1 student and teachers), the training recipe, and MAC counting.

Everything uses Keras 2 through ``tf_keras``: tensorflow-model-optimization's QAT rejects Keras 3
models (book/method.md, "One Keras"). Layer names follow ``keras.applications.MobileNet`` (conv1, conv_dw_N,
conv_pw_N, ..._bn, ..._relu) so later chapters can address layers by name.

Every model takes images mapped to [-1, 1] (``lpirc.data.to_model_input``) and returns logits.
"""
from __future__ import annotations

import os
import time

import numpy as np

from lpirc.tfutil import quiet_tensorflow

quiet_tensorflow()  # imports TensorFlow with its native start-up log lines muted
import tf_keras as keras  # noqa: E402

# (stride, pointwise filters at width 1.0) for the 13 depthwise-separable blocks of MobileNet v1
MOBILENET_V1_BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512),
                       (1, 512), (1, 512), (1, 512), (1, 512), (1, 512), (2, 1024), (1, 1024))
# A spike found BatchNorm's default momentum (0.99) leaves running statistics too stale for short
# from-scratch runs: validation then predicts one class for ~1,000 steps. 0.9 fixes it.
BN_MOMENTUM = 0.9


def mobilenet_v1(width_multiplier: float = 1.0, resolution: int = 224, classes: int = 1000,
                 dropout: float = 1e-3, name: str | None = None) -> keras.Model:
    """MobileNet v1 (Howard et al. 2017) with Keras applications' layer names, returning logits."""
    def filters(n):
        return int(n * width_multiplier)

    inputs = keras.Input((resolution, resolution, 3), name="input")
    x = keras.layers.Conv2D(filters(32), 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = keras.layers.ReLU(6.0, name="conv1_relu")(x)
    for i, (stride, pw) in enumerate(MOBILENET_V1_BLOCKS, start=1):
        if stride == 2:
            x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{i}")(x)
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid",
                                         use_bias=False, name=f"conv_dw_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"conv_dw_{i}_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"conv_dw_{i}_relu")(x)
        x = keras.layers.Conv2D(filters(pw), 1, use_bias=False, name=f"conv_pw_{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"conv_pw_{i}_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"conv_pw_{i}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"mobilenet_v1_{width_multiplier:g}_{resolution}")


def resnet(depth: int = 8, width: int = 32, resolution: int = 32, classes: int = 10,
           name: str | None = None) -> keras.Model:
    """A small CIFAR-style ResNet (He et al. 2016), depth = 6n + 2; a teacher of a different family."""
    if (depth - 2) % 6:
        raise ValueError(f"resnet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    inputs = keras.Input((resolution, resolution, 3), name="input")
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage in range(3):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            f = width * 2 ** stage
            tag = f"s{stage + 1}b{block + 1}"
            y = keras.layers.Conv2D(f, 3, strides=stride, padding="same", use_bias=False, name=f"{tag}_conv1")(x)
            y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{tag}_bn1")(y)
            y = keras.layers.ReLU(name=f"{tag}_relu1")(y)
            y = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{tag}_conv2")(y)
            y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{tag}_bn2")(y)
            if stride != 1 or x.shape[-1] != f:
                x = keras.layers.Conv2D(f, 1, strides=stride, use_bias=False, name=f"{tag}_proj")(x)
                x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{tag}_proj_bn")(x)
            x = keras.layers.ReLU(name=f"{tag}_out")(keras.layers.Add(name=f"{tag}_add")([x, y]))
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}_w{width}")


def build(spec: dict, classes: int, resolution: int) -> keras.Model:
    """Build from a parameter dict such as {"arch": "mobilenet_v1", "width_multiplier": 0.25}.

    A ``weights`` entry chooses the start: "none" (default), "imagenet" or a .keras/.h5/.tflite path
    (lpirc.weights)."""
    from lpirc import weights

    arch = spec.get("arch")
    if arch == "mobilenet_v1":
        model = mobilenet_v1(spec.get("width_multiplier", 1.0), resolution, classes)
    elif arch == "resnet":
        model = resnet(spec.get("depth", 8), spec.get("width", 32), resolution, classes)
    elif arch == "frozen":
        raise ValueError(f"a frozen model ({spec.get('path')}) is a file used as it is, not built; "
                         "it can only be a teacher")
    else:
        raise ValueError(f"unknown arch {arch!r}; expected 'mobilenet_v1', 'resnet' or (teachers) 'frozen'")
    return weights.apply(model, spec.get("weights", "none"), spec, classes, resolution)


# --------------------------------------------------------------------------------------------------
# MACs and parameters
def layer_macs(layer) -> int:
    """Multiply-accumulates of one layer for one image (convolutions and dense layers only)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, c = layer.output.shape
        kh, kw = layer.kernel_size
        return int(h * w * kh * kw * c)  # c = input channels x depth multiplier
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, cout = layer.output.shape
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1]
        return int(h * w * kh * kw * cin * cout // layer.groups)
    if isinstance(layer, keras.layers.Dense):
        return int(layer.input.shape[-1] * layer.units)
    return 0


def count_macs(model: keras.Model) -> int:
    return sum(layer_macs(layer) for layer in model.layers)


def macs_by_layer(model: keras.Model) -> dict[str, int]:
    return {layer.name: m for layer in model.layers if (m := layer_macs(layer))}


# --------------------------------------------------------------------------------------------------
# training
def set_seed(seed: int) -> None:
    """Seed Python, numpy and TensorFlow, and make TensorFlow's ops deterministic unless
    ``$LPIRC_DETERMINISM`` says otherwise (``auto``, the default: on without a GPU, off with one,
    where it slows cuDNN and makes some ops raise; ``1`` / ``0`` force it; lpirc.accelerators)."""
    from lpirc import accelerators

    keras.utils.set_random_seed(seed)
    accelerators.configure(os.environ.get("LPIRC_DETERMINISM", "auto"))


def fit_inputs(x, targets, *, batch_size: int, train: bool) -> dict:
    """Keras ``fit`` / ``evaluate`` arguments for images ``x`` and their ``targets``: an in-memory uint8
    array is mapped to [-1, 1] whole (the embedded data); a streamed ``lpirc.stream.FolderSplit``
    becomes a tf.data pipeline (real data; ``train``: augmented, reshuffled, repeated, ``epoch_size``
    images per epoch)."""
    from lpirc import stream
    from lpirc.data import to_model_input

    if not stream.is_streamed(x):
        return {"x": to_model_input(x), "y": targets, "batch_size": batch_size, **({"shuffle": True} if train else {})}
    if not train:
        return {"x": x.batches(batch_size, targets)}
    seed = int(np.random.randint(2 ** 31 - 1))          # drawn from the generator set_seed seeded
    return {"x": x.batches(batch_size, targets, train=True, seed=seed).repeat(),
            "steps_per_epoch": x.steps_per_epoch(batch_size)}


def steps_per_epoch(x, batch_size: int) -> int:
    from lpirc import stream

    return x.steps_per_epoch(batch_size) if stream.is_streamed(x) else int(np.ceil(len(x) / batch_size))


def fit_cosine(model: keras.Model, x_train, targets, *, loss, metrics, epochs: int, batch_size: int = 128,
               learning_rate: float = 1e-2, validation=None, verbose: int = 2) -> dict:
    """The project's training recipe: Adam with a cosine learning-rate decay over all steps.

    x are uint8 images (an array, or a streamed ``FolderSplit``: see :func:`fit_inputs`), mapped to
    [-1, 1] here; ``validation`` is (x_uint8, targets) or None. Returns the per-epoch history, the wall
    time and the training throughput."""
    per_epoch = steps_per_epoch(x_train, batch_size)
    steps = max(1, epochs * per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)
    val = None
    if validation is not None:
        v = fit_inputs(*validation, batch_size=512, train=False)
        val = v["x"] if "y" not in v else (v["x"], v["y"])
    start = time.perf_counter()
    hist = model.fit(**fit_inputs(x_train, targets, batch_size=batch_size, train=True), validation_data=val,
                     epochs=epochs, verbose=verbose)
    wall = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    from lpirc import stream

    images = epochs * (per_epoch * batch_size if stream.is_streamed(x_train) else len(x_train))
    return {"history": history, "train_time_s": wall, "images_per_s": images / wall if wall > 0 else float("nan")}


def train_classifier(model: keras.Model, x_train, y_train, x_val, y_val, *, epochs: int,
                     batch_size: int = 128, learning_rate: float = 1e-2, verbose: int = 2) -> dict:
    """Plain cross-entropy training on labels with the project's recipe (fit_cosine)."""
    return fit_cosine(model, x_train, y_train, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")], epochs=epochs,
                      batch_size=batch_size, learning_rate=learning_rate, validation=(x_val, y_val),
                      verbose=verbose)


def predict_logits(model: keras.Model, images_uint8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits for uint8 images (an array or a streamed FolderSplit)."""
    from lpirc import stream
    from lpirc.data import to_model_input

    if not len(images_uint8):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    if stream.is_streamed(images_uint8):
        return model.predict(images_uint8.batches(batch_size), verbose=0)
    return model.predict(to_model_input(images_uint8), batch_size=batch_size, verbose=0)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    if len(labels) == 0:
        return float("nan")
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def evaluate_keras(model: keras.Model, images_uint8, labels) -> dict:
    logits = predict_logits(model, images_uint8)
    return {"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)}


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight's bytes: equal digests mean bit-identical models."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def save_model(model: keras.Model, path) -> None:
    """Save as a single .keras (Keras 2 'keras' format) file, atomically."""
    from lpirc.results import atomic_path

    with atomic_path(path) as tmp:
        model.save(str(tmp) + ".keras")
        os.replace(str(tmp) + ".keras", tmp)


def load_model(path) -> keras.Model:
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found; run the step that writes it first")
    if path.suffix != ".keras":
        raise ValueError(f"expected a .keras file, got {path}")
    return keras.models.load_model(path, compile=False)


# --------------------------------------------------------------------------------------------------
# the baseline chapter's grid (notebooks/01_baseline.ipynb): the student and its teachers
def train_point(*, out_path: str, data_dir: str, name: str, role: str, spec: dict, epochs: int, batch_size: int,
                learning_rate: float, seed: int) -> dict:
    """A pure task: build ``spec`` for the dataset in ``data_dir``, train it on labels with the project's
    recipe, evaluate it on val and holdout, save it at ``out_path``; one row with the training history."""
    from pathlib import Path

    from lpirc import data

    if spec["arch"] == "frozen":
        return frozen_point(out_path=out_path, data_dir=data_dir, name=name, role=role, path=spec["path"])
    splits, classes = data.load_splits(Path(data_dir))
    (x_train, y_train), (x_val, y_val), (x_hold, y_hold) = splits["train"], splits["val"], splits["holdout"]
    set_seed(seed)
    model = build(spec, len(classes), x_train.shape[1])
    fit = train_classifier(model, x_train, y_train, x_val, y_val, epochs=epochs, batch_size=batch_size,
                           learning_rate=learning_rate, verbose=0)
    val, hold = evaluate_keras(model, x_val, y_val), evaluate_keras(model, x_hold, y_hold)
    save_model(model, out_path)
    return {"model": name, "role": role, "arch": spec["arch"], "params": model.count_params(),
            "MMACs": count_macs(model) / 1e6, "epochs": epochs, "val_top1": val["top1"], "val_top5": val["top5"],
            "holdout_top1": hold["top1"], "holdout_top5": hold["top5"], "train_time_s": fit["train_time_s"],
            "images_per_s": fit["images_per_s"], "history": fit["history"]}


def frozen_point(*, out_path: str, data_dir: str, name: str, role: str, path: str) -> dict:
    """A teacher given as a pretrained classifier file and never trained (``{"arch": "frozen", "path":
    FILE}``): a ``.tflite`` — TF-slim's Inception, NASNet or PNASNet files, as the entry's teachers were —
    or a ``.keras`` model. Copied beside the trained models (``<name>`` + the file's suffix) and
    evaluated on val and holdout like them; its size is counted from the file."""
    import shutil
    from pathlib import Path

    from lpirc import data, distill, profiler
    from lpirc.results import atomic_path

    src = Path(path)
    if not src.exists():
        raise FileNotFoundError(f"frozen teacher {name!r}: {src} does not exist")
    if src.suffix not in (".tflite", ".keras"):
        raise ValueError(f"frozen teacher {name!r}: expected a .tflite or .keras file, got {src}")
    splits, _ = data.load_splits(Path(data_dir), names=("val", "holdout"))
    acc = {}
    for split, (x, y) in splits.items():
        logits = distill.teacher_predict(src, x)
        acc.update({f"{split}_top1": topk_accuracy(logits, y, 1), f"{split}_top5": topk_accuracy(logits, y, 5)})
    if src.suffix == ".tflite":
        params, macs = profiler.size_of(src)
    else:
        model = load_model(src)
        params, macs = model.count_params(), count_macs(model)
    with atomic_path(Path(out_path).with_suffix(src.suffix)) as tmp:
        shutil.copyfile(src, tmp)
    return {"model": name, "role": role, "arch": f"frozen {src.suffix[1:]}", "params": int(params),
            "MMACs": macs / 1e6, "epochs": 0, **acc, "train_time_s": 0.0, "images_per_s": float("nan"),
            "history": {}}


def how_started(student: dict, teachers: list[dict]) -> str:
    """Words for the baseline table's caption: trained from scratch, or from pretrained weights."""
    if all(spec.get("weights", "none") == "none" and spec.get("arch") != "frozen" for spec in [student, *teachers]):
        return "trained from scratch"
    return "trained from their pretrained `weights` (a `frozen` teacher is used as it is)"


def describe_baselines(table) -> str:
    """The baseline chapter's sentence: the student's top-1, the best teacher's, and what the teacher cost."""
    from lpirc.report import pct

    s = table[table.role == "student"].iloc[0]
    best = table[table.role == "teacher"].sort_values("val_top1").iloc[-1]
    cost = ("was not trained here (a pretrained file used as it is)" if best.epochs == 0 else
            f"costs {best.train_time_s / s.train_time_s:.1f}x the student's training time")
    return (f"The student reaches **{pct(s.val_top1)}** validation and **{pct(s.holdout_top1)}** holdout top-1 in "
            f"{s.train_time_s:.0f} s; the best teacher, {best.model}, reaches {pct(best.val_top1)} and "
            f"{pct(best.holdout_top1)} ({100 * (best.val_top1 - s.val_top1):+.1f} points on validation) and {cost}. "
            f"The holdout shift costs the student {100 * (s.val_top1 - s.holdout_top1):.1f} points.")


def train_baselines(out_dir, data_dir, student: dict, teachers: list[dict], *, epochs: int, teacher_epochs: int,
                    batch_size: int, learning_rate: float, seed: int, scheduler: str | None = None):
    """The student (``student``: an architecture spec) and each teacher (a spec with a ``name``) trained
    on labels from their ``weights``, one grid task each; files ``out_dir``/<name>.keras. A teacher with
    ``arch: frozen`` is a file used as it is (:func:`frozen_point`). Returns a DataFrame."""
    from pathlib import Path

    import pandas as pd

    from lpirc.grid import run_grid

    specs = [("student", "student", student, epochs)] + [(t["name"], "teacher", t, teacher_epochs) for t in teachers]
    points = [dict(out_path=str(Path(out_dir) / f"{name}.keras"), data_dir=str(data_dir), name=name, role=role,
                   spec={k: v for k, v in spec.items() if k != "name"}, epochs=n, batch_size=batch_size,
                   learning_rate=learning_rate, seed=seed) for name, role, spec, n in specs]
    return pd.DataFrame(run_grid(train_point, points, label="baseline"))

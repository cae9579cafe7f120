"""Networks: the builders (MobileNet v1 student and teachers), MAC counting, the training recipe (on
every device of the runtime's strategy), prediction, saving and loading.

Everything uses Keras 2 through ``tf_keras``: tensorflow-model-optimization's QAT rejects Keras 3
models (book/method.md, "One Keras"). Layer names follow ``keras.applications.MobileNet`` (conv1, conv_dw_N,
conv_pw_N, ..._bn, ..._relu) so later chapters can address layers by name.

Every model takes images mapped to [-1, 1] (``lpirc.data.to_model_input``) and returns logits. A model
built from a spec with pretrained weights is lpirc.weights'.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np

from lpirc import runtime, stream
from lpirc.data import to_model_input
from lpirc.results import atomic_path
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


# --------------------------------------------------------------------------------------------------
# training
def fit_inputs(x, targets, *, batch_size: int) -> dict:
    """Keras ``fit`` arguments for training on images ``x`` and their ``targets``: an in-memory uint8
    array is mapped to [-1, 1] whole (the embedded data) and shuffled every epoch; a streamed
    ``lpirc.stream.FolderSplit`` becomes a tf.data pipeline (real data: augmented, reshuffled, repeated,
    ``epoch_size`` images per epoch)."""
    if not stream.is_streamed(x):
        return {"x": to_model_input(x), "y": targets, "batch_size": batch_size, "shuffle": True}
    seed = int(np.random.randint(2 ** 31 - 1))          # drawn from the generator set_seed seeded
    return {"x": x.batches(batch_size, targets, train=True, seed=seed).repeat(),
            "steps_per_epoch": x.steps_per_epoch(batch_size)}


def steps_per_epoch(x, batch_size: int) -> int:
    return x.steps_per_epoch(batch_size) if stream.is_streamed(x) else int(np.ceil(len(x) / batch_size))


def _made_in_scope(obj):
    """A Keras optimizer or metric made again, from its config, in the current strategy's scope (their
    variables must live there); a loss or metric function as it is."""
    if isinstance(obj, (keras.optimizers.Optimizer, keras.metrics.Metric)):
        return type(obj).from_config(obj.get_config())
    return obj


def _build_optimizer(model: keras.Model) -> None:
    """Make the compiled optimizer's variables for ``model``'s trainable weights now (see
    :func:`compile_and_fit`); a legacy Keras optimizer, which has no ``build``, makes them as it did."""
    if isinstance(model.optimizer, keras.optimizers.Optimizer):
        model.optimizer.build(model.trainable_variables)


def compile_and_fit(model: keras.Model, *, optimizer, loss, metrics, **fit_args):
    """``model.compile(...)`` then ``model.fit(**fit_args)`` on every device of the runtime's strategy
    (lpirc.runtime.strategy); returns (Keras History, lpirc.runtime.record of the devices).

    On one device that is those two calls, the optimizer built in between (below). Across several (MirroredStrategy) the model is
    trained as a copy built in the strategy's scope (unless it was built there), with the optimizer
    and metrics made again there, and the copy's weights are copied back into ``model``: a caller
    keeps converting, saving and evaluating (on one device) the model it passed. Models with custom
    layers need their custom-object scope around the call (lpirc.quantize.train_qat does).

    The optimizer's variables (Adam's moments) are made before ``fit``: made inside the first training
    step, they make TensorFlow trace that step twice (once to create them, once without), which took
    half of a small run's time (4.3 s -> 2.6 s for one epoch of the smoke profile's student on the test
    host); the trained weights are bit-identical either way."""
    strategy = runtime.strategy()
    if strategy.num_replicas_in_sync == 1:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
        _build_optimizer(model)
        return model.fit(**fit_args), runtime.record(strategy)
    with strategy.scope():
        if all(strategy.extended.variable_created_in_scope(v) for v in model.variables):
            replica = model
        else:
            replica = keras.models.clone_model(model)
            replica.set_weights(model.get_weights())
        replica.compile(optimizer=_made_in_scope(optimizer), loss=loss,
                        metrics=[_made_in_scope(m) for m in metrics])
        _build_optimizer(replica)
    history = replica.fit(**fit_args)
    if replica is not model:
        model.set_weights(replica.get_weights())
    return history, runtime.record(strategy)


class ValidationTop1(keras.callbacks.Callback):
    """Top-1 on (uint8 images, labels) after every epoch, as 'val_top1' in the epoch's logs (so in the
    history, and in Keras' epoch line), computed from the model's predictions as :func:`evaluate_keras`
    computes it after training. Keras' own ``validation_data`` would trace a second graph (the test step,
    with the loss and every metric: about 2.5 s a model on the test host, more than a small run's whole
    training) for a number the predictions give, and add 'val_loss', which nothing reads; on one device
    the prediction function traced here serves the evaluation after training too."""

    def __init__(self, images, labels):
        super().__init__()
        if len(images) != len(labels):
            raise ValueError(f"validation: {len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, np.asarray(labels)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["val_top1"] = topk_accuracy(predict_logits(self.model, self.images), self.labels, 1)


def fit_cosine(model: keras.Model, x_train, targets, *, loss, metrics, epochs: int, batch_size: int = 128,
               learning_rate: float = 1e-2, validation=None, verbose: int = 2) -> dict:
    """The project's training recipe: Adam with a cosine learning-rate decay over all steps, on every
    device of the runtime's strategy (:func:`compile_and_fit`).

    x are uint8 images (an array, or a streamed ``FolderSplit``: see :func:`fit_inputs`), mapped to
    [-1, 1] here; ``validation`` is (x_uint8, labels) or None: top-1 on it after every epoch goes into
    the history as 'val_top1' (:class:`ValidationTop1`). ``batch_size`` is the global batch, split across
    the strategy's replicas. Returns the per-epoch history, the wall time, the training throughput and
    the devices it trained on."""
    per_epoch = steps_per_epoch(x_train, batch_size)
    steps = max(1, epochs * per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.01)
    callbacks = [] if validation is None else [ValidationTop1(*validation)]
    start = time.perf_counter()
    hist, devices = compile_and_fit(model, optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics,
                                    **fit_inputs(x_train, targets, batch_size=batch_size),
                                    callbacks=callbacks, epochs=epochs, verbose=verbose)
    wall = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    images = epochs * (per_epoch * batch_size if stream.is_streamed(x_train) else len(x_train))
    return {"history": history, "train_time_s": wall, "images_per_s": images / wall if wall > 0 else float("nan"),
            "devices": devices}


def train_classifier(model: keras.Model, x_train, y_train, x_val, y_val, *, epochs: int,
                     batch_size: int = 128, learning_rate: float = 1e-2, verbose: int = 2) -> dict:
    """Plain cross-entropy training on labels with the project's recipe (fit_cosine)."""
    return fit_cosine(model, x_train, y_train, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")], epochs=epochs,
                      batch_size=batch_size, learning_rate=learning_rate, validation=(x_val, y_val),
                      verbose=verbose)


def predict_logits(model: keras.Model, images_uint8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits for uint8 images (an array or a streamed FolderSplit)."""
    if not len(images_uint8):
        return np.zeros((0, model.output_shape[-1]), np.float32)
    if stream.is_streamed(images_uint8):
        return model.predict(images_uint8.batches(batch_size), verbose=0)
    return model.predict(to_model_input(images_uint8), batch_size=batch_size, verbose=0)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    if len(labels) == 0:
        return float("nan")
    # stable: ties go to the lowest class index, as np.argmax breaks them, so top-1 here and a
    # prediction from argmax never disagree on the same logits
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def evaluate_keras(model: keras.Model, images_uint8, labels) -> dict:
    logits = predict_logits(model, images_uint8)
    return {"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)}


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of every weight's bytes: equal digests mean bit-identical models."""
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def save_model(model: keras.Model, path) -> None:
    """Save as a single .keras (Keras 2 'keras' format) file, atomically."""
    with atomic_path(path) as tmp:
        model.save(str(tmp) + ".keras")
        os.replace(str(tmp) + ".keras", tmp)


def load_model(path) -> keras.Model:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path} not found; run the step that writes it first")
    if path.suffix != ".keras":
        raise ValueError(f"expected a .keras file, got {path}")
    return keras.models.load_model(path, compile=False)

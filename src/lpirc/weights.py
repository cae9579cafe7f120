"""Pretrained starts: a model built from its spec and its ``weights`` parameter, and importing a float
MobileNet v1 ``.tflite``.

The entry did not train MobileNet v1 from scratch: it started from Google's published pretrained
model. A model spec (``{"arch": "mobilenet_v1", "width_multiplier": 1.0, "weights": ...}``) chooses the
start:

- ``none`` (default): random initialisation, as the embedded default book does;
- ``imagenet``: Keras applications' ImageNet weights for the width and resolution (downloaded by Keras
  into ``~/.keras/models`` when online; 1,000 classes, so the data must have 1,000 classes too);
- a path: a ``.keras`` / ``.h5`` file of the same architecture, or a **float MobileNet v1 .tflite** such
  as TF-slim's published ``mobilenet_v1_1.0_160.tflite`` (1,001 classes, background first), imported
  by :func:`import_tflite`.

:func:`import_tflite` reads the flatbuffer's constant tensors through LiteRT's interpreter. A
converter folds each BatchNorm into the convolution before it (the kernel is scaled, the shift becomes
the convolution's bias), so the imported model's BatchNorms are set to the identity with the bias as
their shift: gamma = 1, mean = 0, variance = 1 - epsilon, beta = bias. Fine-tuning then starts from
exactly the file's function. A file whose BatchNorms are *not* folded (separate MUL / ADD operators)
is refused with a message: no published MobileNet v1 file has that form.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from lpirc import models
from lpirc.errors import WeightsError
from lpirc.tflite import check_tflite_file

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _constant(it, index: int, details: dict):
    if index < 0:
        return None
    if details[index]["dtype"] != np.float32:
        raise WeightsError(f"tensor {details[index]['name']!r} is {np.dtype(details[index]['dtype']).name}, not "
                           "float32: import-weights reads float .tflite files only (for example TF-slim's "
                           "mobilenet_v1_1.0_160.tflite, not the _quant file)")
    return np.array(it.get_tensor(index))


def read_tflite_layers(path) -> dict:
    """The weighted operators of a float .tflite in execution order, and its input size.

    Returns ``{"resolution": int, "layers": [{"op": name, "weights": array, "bias": array or None}]}``."""
    path = check_tflite_file(path)
    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}
    (inp,) = it.get_input_details()
    if np.dtype(inp["dtype"]) != np.float32:
        raise WeightsError(f"{path} takes {np.dtype(inp['dtype']).name} input: a quantized file. "
                           "Import the float file of the same model")
    layers = []
    for op in it._get_ops_details():
        name = op["op_name"]
        if name == "MUL" and layers:
            raise WeightsError(f"{path} multiplies after its convolutions: BatchNorm is not folded into them, "
                               "which import-weights does not read. Convert the model with BatchNorm folded "
                               "(the TFLite converter's default)")
        if name not in WEIGHTED_OPS:
            continue
        ins = list(op["inputs"]) + [-1] * 3
        layers.append({"op": name, "weights": _constant(it, ins[1], details), "bias": _constant(it, ins[2], details)})
    return {"resolution": int(inp["shape"][1]), "layers": layers}


def import_tflite(path):
    """A Keras MobileNet v1 (the project's builder) holding a float MobileNet v1 .tflite's weights.

    Width, resolution and number of classes are read from the file. Raises WeightsError when the file
    is not a float MobileNet v1 (28 weighted layers: conv1, 13 depthwise + pointwise pairs, logits)."""
    found = read_tflite_layers(path)
    layers = found["layers"]
    expected = ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * len(models.MOBILENET_V1_BLOCKS)
    kinds = [x["op"] for x in layers]
    if len(layers) != len(expected) + 1 or kinds[:-1] != expected:
        raise WeightsError(f"{path} is not a MobileNet v1: expected {len(expected) + 1} weighted operators "
                           f"(conv1, 13 depthwise/pointwise pairs, logits), found {len(layers)}: "
                           f"{', '.join(kinds[:6])}...")
    width = layers[0]["weights"].shape[0] / 32
    logits = layers[-1]["weights"]
    classes = logits.shape[0]
    model = models.mobilenet_v1(width, found["resolution"], classes)
    if model.get_layer("conv1").filters != layers[0]["weights"].shape[0]:
        raise WeightsError(f"{path}: conv1 has {layers[0]['weights'].shape[0]} filters, not 32 x a width multiplier")
    names = ["conv1"] + [f"conv_{kind}_{i}" for i in range(1, len(models.MOBILENET_V1_BLOCKS) + 1)
                         for kind in ("dw", "pw")]
    for name, layer in zip(names, layers):
        w = layer["weights"]
        keras_layer = model.get_layer(name)
        if layer["op"] == "DEPTHWISE_CONV_2D":   # (1, kh, kw, channels) -> (kh, kw, channels, 1)
            kernel = w[0][..., None]
        else:                                    # (out, kh, kw, in) -> (kh, kw, in, out)
            kernel = np.transpose(w, (1, 2, 3, 0))
        expected_shape = tuple(keras_layer.weights[0].shape)
        if kernel.shape != expected_shape:
            raise WeightsError(f"{path}: {name} has shape {kernel.shape}, the builder expects {expected_shape}")
        keras_layer.set_weights([kernel])
        bn = model.get_layer(f"{name}_bn")
        n = kernel.shape[-2] if layer["op"] == "DEPTHWISE_CONV_2D" else kernel.shape[-1]
        bias = layer["bias"] if layer["bias"] is not None else np.zeros(n, np.float32)
        bn.set_weights([np.ones(n, np.float32), bias.astype(np.float32), np.zeros(n, np.float32),
                        np.full(n, 1.0 - bn.epsilon, np.float32)])
    bias = layers[-1]["bias"] if layers[-1]["bias"] is not None else np.zeros(classes, np.float32)
    model.get_layer("logits").set_weights([logits.reshape(classes, -1).T, bias])
    return model


def import_to_keras(tflite_path, out_path) -> dict:
    """``lpirc import-weights``: import a float MobileNet v1 .tflite and save it as ``.keras``."""
    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise WeightsError(f"--out must end in .keras, got {out_path}")
    model = import_tflite(tflite_path)
    models.save_model(model, out_path)
    spec = model.get_layer("input").output.shape
    return {"out": str(out_path), "resolution": int(spec[1]), "classes": int(model.output.shape[-1]),
            "width_multiplier": model.get_layer("conv1").filters / 32, "params": int(model.count_params())}


def build(spec: dict, classes: int, resolution: int):
    """A model built from a parameter dict such as {"arch": "mobilenet_v1", "width_multiplier": 0.25}
    (lpirc.models' builders), starting from its ``weights`` entry: "none" (default), "imagenet" or a
    .keras/.h5/.tflite path (:func:`apply`)."""
    arch = spec.get("arch")
    if arch == "mobilenet_v1":
        model = models.mobilenet_v1(spec.get("width_multiplier", 1.0), resolution, classes)
    elif arch == "resnet":
        model = models.resnet(spec.get("depth", 8), spec.get("width", 32), resolution, classes)
    elif arch == "frozen":
        raise ValueError(f"a frozen model ({spec.get('path')}) is a file used as it is, not built; "
                         "it can only be a teacher")
    else:
        raise ValueError(f"unknown arch {arch!r}; expected 'mobilenet_v1', 'resnet' or (teachers) 'frozen'")
    return apply(model, spec.get("weights", "none"), spec, classes, resolution)


def apply(model, weights: str, spec: dict, classes: int, resolution: int):
    """The model a spec's ``weights`` asks for: ``model`` itself for "none", else the pretrained one.

    The pretrained model must have ``classes`` outputs and the same resolution; a mismatch is an error
    that names both, since silently re-initialising the classifier would hide it."""
    if weights in (None, "", "none"):
        return model
    if weights == "imagenet":
        if spec.get("arch") != "mobilenet_v1":
            raise WeightsError(f"weights: imagenet exists for mobilenet_v1 only, not {spec.get('arch')!r}")
        loaded = _keras_applications_mobilenet(spec.get("width_multiplier", 1.0), resolution)
    else:
        path = Path(weights)
        if not path.exists():
            raise WeightsError(f"weights file {path} does not exist; pass none, imagenet or a .keras/.h5/.tflite path")
        if path.suffix == ".tflite":
            loaded = import_tflite(path)
        elif path.suffix in (".keras", ".h5"):
            loaded = models.load_model(path) if path.suffix == ".keras" else models.keras.models.load_model(
                path, compile=False)
        else:
            raise WeightsError(f"weights file {path}: expected .keras, .h5 or .tflite")
    out = int(loaded.output.shape[-1])
    res = int(loaded.input.shape[1])
    if res != resolution or out not in (classes, classes + 1):
        raise WeightsError(f"weights {weights}: the model is {res}x{res} with {out} outputs, the data needs "
                           f"{resolution}x{resolution} and {classes} classes (or {classes + 1} with background)")
    return _copy_into(model, loaded)


def _copy_into(model, loaded):
    """``model`` (freshly built) holding ``loaded``'s weights, layer by layer by name. A classifier with
    one output more than ``model`` (TF-slim's background class first) loses that output."""
    for layer in model.layers:
        if not layer.weights:
            continue
        src = loaded.get_layer(layer.name).get_weights()
        if layer.name == "logits" and src[0].shape[-1] == layer.weights[0].shape[-1] + 1:
            src = [src[0][:, 1:], src[1][1:]]
        layer.set_weights(src)
    return model


def _keras_applications_mobilenet(width: float, resolution: int):
    """Keras applications' ImageNet MobileNet v1, copied layer by layer into the project's builder."""
    keras = models.keras
    try:
        app = keras.applications.MobileNet(input_shape=(resolution, resolution, 3), alpha=width,
                                           weights="imagenet", include_top=True)
    except Exception as exc:  # Keras raises ValueError / URL errors; both need the same advice
        raise WeightsError(f"cannot load Keras applications' MobileNet v1 (alpha {width}, {resolution} px): {exc}. "
                           "Keras publishes alphas 0.25/0.5/0.75/1.0 at 128/160/192/224 and downloads them on "
                           "first use; offline, pass a .tflite or .keras path instead") from exc
    model = models.mobilenet_v1(width, resolution, 1000)
    for layer in model.layers:
        if layer.weights and layer.name != "logits":
            layer.set_weights(app.get_layer(layer.name).get_weights())
    kernel, bias = app.get_layer("conv_preds").get_weights()
    model.get_layer("logits").set_weights([kernel.reshape(kernel.shape[-2], -1), bias])
    return model

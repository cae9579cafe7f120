"""Evaluating any TFLite classifier with LiteRT, the project's own or a third party's.

The challenge ran batch 1 on one core, so does this: single-thread interpreter, one image per
invoke. Input and output tensors may be float32, int8 or uint8; their quantization parameters are
read from the model. Float inputs take (x - 127.5) / 127.5, quantized inputs that value quantized
with the model's own scale and zero point (for Google's uint8 MobileNets, scale 1/128 and zero
point 128, that is the raw pixel). A model with one output more than the data has classes is
taken to put a background class first (the challenge's 1001-way format) and output 0 is dropped.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TFLITE_IDENTIFIER = b"TFL3"


class ModelFileError(ValueError):
    pass


def check_tflite_file(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier at byte 4); "
                             "pass a .tflite file, for example one under results/<profile>/quantization/")
    return path


def interpreter(path: Path | str, num_threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter

    from lpirc.tfutil import native_stderr_to_log

    path = check_tflite_file(path)
    # LiteRT prints "Created TensorFlow Lite XNNPACK delegate" on fd 2; keep it out of the book.
    with native_stderr_to_log():
        it = Interpreter(model_path=str(path), num_threads=num_threads)
        it.allocate_tensors()
    return it


class TFLiteClassifier:
    """Batch-1 classifier over a .tflite file. ``logits(images_uint8)`` returns float scores."""

    def __init__(self, path: Path | str, num_threads: int = 1):
        self.path = Path(path)
        self.it = interpreter(path, num_threads)
        inp = self.it.get_input_details()
        out = self.it.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelFileError(f"{path}: expected one input and one output, got {len(inp)} and {len(out)}")
        self.inp, self.out = inp[0], out[0]
        shape = self.inp["shape"]
        if len(shape) != 4 or shape[3] != 3:
            raise ModelFileError(f"{path}: expected an NHWC RGB image input, got shape {list(shape)}")
        self.height, self.width = int(shape[1]), int(shape[2])
        self.num_outputs = int(self.out["shape"][-1])
        self.input_dtype = np.dtype(self.inp["dtype"])
        self.output_dtype = np.dtype(self.out["dtype"])

    def describe(self) -> dict:
        return {"path": str(self.path), "input_shape": [1, self.height, self.width, 3],
                "input_dtype": self.input_dtype.name, "input_quantization": list(self.inp["quantization"]),
                "output_dtype": self.output_dtype.name, "num_outputs": self.num_outputs}

    def _prepare(self, image_uint8: np.ndarray) -> np.ndarray:
        if image_uint8.shape[:2] != (self.height, self.width):
            from PIL import Image
            image_uint8 = np.asarray(Image.fromarray(image_uint8).resize((self.width, self.height),
                                                                          Image.BILINEAR))
        x = (image_uint8.astype(np.float32) - 127.5) / 127.5
        if self.input_dtype == np.float32:
            return x[None]
        scale, zero = self.inp["quantization"]
        if scale == 0:
            raise ModelFileError(f"{self.path}: quantized input without quantization parameters; "
                                 "re-convert the model with its input quantization (scale, zero point) recorded")
        info = np.iinfo(self.input_dtype)
        q = np.clip(np.round(x / scale + zero), info.min, info.max)
        return q.astype(self.input_dtype)[None]

    def _read_output(self) -> np.ndarray:
        y = self.it.get_tensor(self.out["index"])[0]
        if self.output_dtype != np.float32:
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * (scale if scale else 1.0)
        return y.reshape(-1).astype(np.float32)

    def logits(self, images_uint8: np.ndarray, progress: bool = False) -> np.ndarray:
        """Scores for uint8 images: an array, or a streamed FolderSplit (decoded batch by batch)."""
        from lpirc import stream

        if stream.is_streamed(images_uint8) and len(images_uint8):
            return np.concatenate([self.logits(batch) for batch in
                                   images_uint8.batches(64, model_input=False).as_numpy_iterator()])
        out = np.empty((len(images_uint8), self.num_outputs), np.float32)
        iterator = range(len(images_uint8))
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, desc=f"evaluating {self.path.name}", mininterval=2.0)
        for i in iterator:
            self.it.set_tensor(self.inp["index"], self._prepare(images_uint8[i]))
            self.it.invoke()
            out[i] = self._read_output()
        return out


def align_outputs(scores: np.ndarray, num_classes: int) -> np.ndarray:
    """Drop a leading background class when the model has num_classes + 1 outputs."""
    k = scores.shape[1]
    if k == num_classes:
        return scores
    if k == num_classes + 1:
        return scores[:, 1:]
    raise ModelFileError(f"model has {k} outputs but the data has {num_classes} classes "
                         f"(expected {num_classes} or {num_classes + 1} with a background class first)")


def topk(scores: np.ndarray, labels: np.ndarray) -> dict:
    from lpirc.models import topk_accuracy
    return {"top1": topk_accuracy(scores, labels, 1), "top5": topk_accuracy(scores, labels, 5),
            "n": int(len(labels))}


def evaluate_arrays(model_path, images_uint8: np.ndarray, labels: np.ndarray, num_classes: int,
                    progress: bool = False) -> dict:
    clf = TFLiteClassifier(model_path)
    scores = align_outputs(clf.logits(images_uint8, progress=progress), num_classes)
    return {**topk(scores, labels), "predictions": np.argmax(scores, axis=1)}


def evaluate_source(model_path, data: Path, labels_file: Path | None = None, limit: int | None = None,
                    split: str = "val", skip_corrupt: bool = False, progress: bool = True,
                    preprocess: str = "resize_crop") -> dict:
    """Top-1/top-5 of a .tflite or .keras classifier on a folder: an embedded dataset folder
    (dataset.json), an ILSVRC2012 folder with a ground-truth file, or a class-per-subfolder folder.

    Image folders are streamed (``lpirc.stream``) with ``preprocess`` = ``resize_crop`` (shorter side
    to S / 0.875, centre crop) or ``inception`` (TF-slim's: central 87.5%, resize); both kinds of model
    see the same uint8 images."""
    from lpirc import loaders, stream

    model_path = Path(model_path)
    stream.check_preprocess(preprocess)
    if model_path.suffix == ".keras":
        if not model_path.exists():
            raise ModelFileError(f"model file {model_path} does not exist")
        from lpirc import models
        keras_model = models.load_model(model_path)
        io = {"path": str(model_path), "format": "keras", "input_shape": list(keras_model.input.shape),
              "num_outputs": int(keras_model.output.shape[-1])}
    else:
        clf = TFLiteClassifier(model_path)
        io = clf.describe()
    data = Path(data)
    skipped = 0
    if (data / "dataset.json").exists():
        from lpirc.data import load_split
        images, labels = load_split(data, split)
        num_classes = len(json.loads((data / "dataset.json").read_text())["classes"])
        if limit:
            images, labels = images[:limit], labels[:limit]
        layout = f"embedded:{split}"
        if model_path.suffix == ".keras":
            from lpirc.models import predict_logits
            raw = predict_logits(keras_model, images)
        else:
            raw = clf.logits(images, progress=progress)
    else:
        image_list = (loaders.read_ilsvrc(data, labels_file) if labels_file
                      else loaders.read_image_folder(data))
        raw, labels, skipped = stream.evaluate(model_path, image_list, preprocess=preprocess,
                                               skip_corrupt=skip_corrupt, limit=limit, progress=progress)
        num_classes = len(image_list.classes)
        layout = image_list.layout
    scores = align_outputs(raw, num_classes)
    result = topk(scores, labels)
    result.update({"model": str(model_path), "data": str(data), "layout": layout, "preprocess": preprocess,
                   "skipped_corrupt": int(skipped), "model_io": io})
    return result


def float_and_int8_top1(model, out_path: Path | str, representative, splits: dict, num_classes: int) -> dict:
    """The pattern every chapter repeats: top-1 of a Keras model and of its int8 TFLite file.

    ``splits`` maps a name ('val', 'holdout') to (uint8 images, labels). Returns
    ``{"<name>_top1": float top-1, "int8_<name>_top1": int8 top-1}`` and writes ``out_path``."""
    from lpirc import models

    row = {f"{name}_top1": models.evaluate_keras(model, x, y)["top1"] for name, (x, y) in splits.items()}
    int8 = int8_top1(model, out_path, representative, splits, num_classes)
    return {**row, **{f"int8_{k}": v for k, v in int8.items()}}


def int8_top1(model, out_path: Path | str, representative, splits: dict, num_classes: int) -> dict:
    """Convert ``model`` to an int8 TFLite file at ``out_path`` and return its top-1 per split:
    ``{"<name>_top1": ...}`` for each ``name: (uint8 images, labels)`` of ``splits``."""
    from lpirc import quantize

    converted = quantize.convert(model, "int8", out_path, representative)
    return {f"{name}_top1": evaluate_arrays(converted.path, x, y, num_classes)["top1"]
            for name, (x, y) in splits.items()}

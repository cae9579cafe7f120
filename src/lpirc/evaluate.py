"""Top-1 and top-5 of classifiers: Keras models and TFLite files (lpirc.tflite), on in-memory splits,
streamed splits and image folders, and the int8 round trip every chapter repeats.

A model with one output more than the data has classes is taken to put a background class first
(the challenge's 1001-way format) and output 0 is dropped.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from scipy import stats as sps
from tqdm import tqdm

from lpirc import loaders, models, stream
from lpirc.conversion import convert
from lpirc.data import load_split, to_model_input
from lpirc.errors import ModelFileError
from lpirc.tflite import TFLiteClassifier
from lpirc.tfutil import tensorflow as _tf


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
    return {"top1": models.topk_accuracy(scores, labels, 1), "top5": models.topk_accuracy(scores, labels, 5),
            "n": int(len(labels))}


def evaluate_arrays(model_path, images_uint8: np.ndarray, labels: np.ndarray, num_classes: int,
                    progress: bool = False) -> dict:
    clf = TFLiteClassifier(model_path)
    scores = align_outputs(clf.logits(images_uint8, progress=progress), num_classes)
    return {**topk(scores, labels), "predictions": np.argmax(scores, axis=1)}


def correct_on(path, images, labels, num_classes: int) -> np.ndarray:
    """Per-image top-1 outcomes (True where right) of a TFLite file; ties go to the lowest class index, as
    in every top-1 of the project (lpirc.models.topk_accuracy)."""
    return evaluate_arrays(path, images, labels, num_classes)["predictions"] == np.asarray(labels)


def evaluate_source(model_path, data: Path, labels_file: Path | None = None, limit: int | None = None,
                    split: str = "val", skip_corrupt: bool = False, progress: bool = True,
                    preprocess: str = "resize_crop", skip: str | None = None) -> dict:
    """Top-1/top-5 of a .tflite or .keras classifier on a folder: an embedded dataset folder
    (dataset.json), an ILSVRC2012 folder with a ground-truth file, or a class-per-subfolder folder.

    Image folders are streamed (``lpirc.stream``) with ``preprocess`` = ``resize_crop`` (shorter side
    to S / 0.875, centre crop) or ``inception`` (TF-slim's: central 87.5%, resize); both kinds of model
    see the same uint8 images. ``skip``: how an undecodable image's error says to skip such files
    (default: the profile key; ``lpirc eval`` passes its flag)."""
    model_path = Path(model_path)
    stream.check_preprocess(preprocess)
    if model_path.suffix == ".keras":
        if not model_path.exists():
            raise ModelFileError(f"model file {model_path} does not exist")
        keras_model = models.load_model(model_path)
        io = {"path": str(model_path), "format": "keras", "input_shape": list(keras_model.input.shape),
              "num_outputs": int(keras_model.output.shape[-1])}
    else:
        clf = TFLiteClassifier(model_path)
        io = clf.describe()
    data = Path(data)
    skipped = 0
    if (data / "dataset.json").exists():
        images, labels = load_split(data, split)
        num_classes = len(json.loads((data / "dataset.json").read_text())["classes"])
        if limit:
            images, labels = images[:limit], labels[:limit]
        layout = f"embedded:{split}"
        if model_path.suffix == ".keras":
            raw = models.predict_logits(keras_model, images)
        else:
            raw = clf.logits(images, progress=progress)
    else:
        image_list = (loaders.read_ilsvrc(data, labels_file) if labels_file
                      else loaders.read_image_folder(data))
        raw, labels, skipped = folder_scores(model_path, image_list, preprocess=preprocess,
                                             skip_corrupt=skip_corrupt, limit=limit, progress=progress,
                                             skip=skip or stream.SKIP_PROFILE)
        num_classes = len(image_list.classes)
        layout = image_list.layout
    scores = align_outputs(raw, num_classes)
    result = topk(scores, labels)
    result.update({"model": str(model_path), "data": str(data), "layout": layout, "preprocess": preprocess,
                   "skipped_corrupt": int(skipped), "model_io": io})
    return result


def folder_scores(model_path, image_list, size: int | None = None, *, preprocess: str = "inception",
             batch_size: int = 64, skip_corrupt: bool = False, limit: int | None = None, progress: bool = False,
             skip: str = stream.SKIP_PROFILE):
    """Scores of a .tflite or .keras classifier over a streamed image list, and how many files were
    skipped. The same uint8 images feed either kind of model. Without ``skip_corrupt`` an undecodable
    file stops it with an error naming the file and saying how to skip such files (``skip``)."""
    tf = _tf()
    model_path = Path(model_path)
    if model_path.suffix == ".keras":
        model = models.load_model(model_path)
        size = size or int(model.input.shape[1])

        def score(batch):
            return model.predict_on_batch(to_model_input(batch))
    else:
        clf = TFLiteClassifier(model_path)
        size = size or clf.height

        def score(batch):
            return clf.logits(batch)
    ds = stream.dataset(image_list, size, train=False, batch_size=batch_size, preprocess=preprocess,
                 skip_corrupt=skip_corrupt, limit=limit)
    scores, labels = [], []
    batches = ds.as_numpy_iterator()
    if progress:
        batches = tqdm(batches, total=int(np.ceil(len(image_list.paths[:limit]) / batch_size)),
                       desc=f"evaluating {model_path.name}", mininterval=2.0)
    try:
        for images, y in batches:
            scores.append(np.asarray(score(images), np.float32))
            labels.append(y)
    except tf.errors.InvalidArgumentError as exc:
        # decoding is parallel but delivered in order: the file is at or after the images delivered so far
        raise stream.guard(exc, image_list.paths[:limit], sum(map(len, labels)), skip) from exc
    listed = len(image_list.paths[:limit])
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return np.concatenate(scores), y, listed - len(y)


def classifier_logits(path, images) -> np.ndarray:
    """Logits of a classifier file for uint8 images (an array or a streamed split). A ``.keras`` file
    is the project's model; a ``.tflite`` file is any pretrained classifier used as it is (TF-slim's
    Inception or NASNet files, a frozen teacher): it runs with every core, a streamed split is re-read
    at the file's own input size (an array is resized), a 1001-way output loses its background class,
    and probabilities (files ending in a softmax) become log-probabilities, which have the same softmax
    at every temperature as the logits."""
    path = Path(path)
    if path.suffix != ".tflite":
        return models.predict_logits(models.load_model(path), images)
    clf = TFLiteClassifier(path, num_threads=os.cpu_count() or 1)
    if stream.is_streamed(images) and images.size != clf.height:
        images = stream.FolderSplit(images.paths, images.labels, clf.height, images.preprocess)
    scores = clf.logits(images)
    if scores.shape[1] == 1001:
        scores = scores[:, 1:]
    if len(scores) and scores.min() >= 0 and np.allclose(scores.sum(1), 1.0, atol=1e-3):
        scores = np.log(np.maximum(scores, 1e-12))
    return scores.astype(np.float32)


def classifier_forward(path):
    """The forward pass of :func:`classifier_logits`'s file, loaded once: a function of uint8 images (an
    array) returning the file's raw scores. For timing what a teacher costs per image when it runs online:
    the file's load and its first call's tracing are paid once per run, not once per batch."""
    path = Path(path)
    if path.suffix != ".tflite":
        model = models.load_model(path)
        return lambda images: models.predict_logits(model, images)
    return TFLiteClassifier(path, num_threads=os.cpu_count() or 1).logits


def int8_top1(model, out_path: Path | str, representative, splits: dict, num_classes: int) -> dict:
    """Convert ``model`` to an int8 TFLite file at ``out_path`` and return its top-1 per split:
    ``{"<name>_top1": ...}`` for each ``name: (uint8 images, labels)`` of ``splits``."""
    converted = convert(model, "int8", out_path, representative)
    return {f"{name}_top1": evaluate_arrays(converted.path, x, y, num_classes)["top1"]
            for name, (x, y) in splits.items()}


def paired_change(file_a, file_b, images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Top-1 of two TFLite classifiers on the same images, compared image by image: how many images each
    gets right that the other gets wrong (the only images that can move the difference), the change
    b − a in points with its 95% interval (normal approximation to the mean of the per-image differences,
    paired), and McNemar's exact p-value (a binomial test on the discordant images)."""
    a = evaluate_arrays(file_a, images, labels, num_classes)["predictions"] == labels
    b = evaluate_arrays(file_b, images, labels, num_classes)["predictions"] == labels
    d = b.astype(float) - a.astype(float)
    n, only_a, only_b = len(d), int((a & ~b).sum()), int((b & ~a).sum())
    half = 1.96 * d.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    p = float(sps.binomtest(only_b, only_a + only_b).pvalue) if only_a + only_b else 1.0
    return {"n": n, "top1_a": float(a.mean()), "top1_b": float(b.mean()), "only_a": only_a, "only_b": only_b,
            "change_points": 100 * float(d.mean()), "ci95": (100 * (d.mean() - half), 100 * (d.mean() + half)),
            "p_mcnemar": p}

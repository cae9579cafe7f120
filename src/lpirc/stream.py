"""Streaming input for image folders (ImageNet-sized data): tf.data, parallel decoding, prefetch.

The embedded default book holds its 32x32 splits in memory (``lpirc.data``). ImageNet does not fit:
its train split at 160 px is about 98 GB as uint8. Here images are read and decoded batch by batch,
so memory depends on the batch size and the prefetch depth, not on the number of images.

Preprocessing follows TF-slim, whose recipes produced Google's published MobileNet v1 accuracies:

- **training** (``train_image``): a random crop covering 5-100% of the image with aspect ratio 3/4-4/3
  (``sample_distorted_bounding_box``, min_object_covered 0.1), a bilinear resize to S x S and a random
  horizontal flip. TF-slim's colour distortion is left out (its MobileNet recipe runs it in "fast mode";
  a reader can add it in ``train_image``).
- **evaluation** (``eval_image``), chosen by ``preprocess``:
  ``inception`` = TF-slim's: keep the central 87.5% of each side, bilinear resize to S x S;
  ``resize_crop`` = resize the shorter side to round(S / 0.875), then centre-crop S x S (what
  ``lpirc.loaders`` does with PIL for the in-memory path).

The random crop and flip are stateless and seeded per image from ``seed`` and the image's position
in the epoch, so a run is repeatable with parallel decoding. Images come out as uint8; the model
input mapping ([-1, 1], ``lpirc.data.to_model_input``) is applied by the training pipeline.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lpirc.loaders import CENTRAL_FRACTION  # the same 87.5% as the in-memory (PIL) path
from lpirc.tfutil import tensorflow as _tf

PREPROCESS = ("inception", "resize_crop")


def check_preprocess(name: str) -> str:
    if name not in PREPROCESS:
        raise ValueError(f"preprocess must be one of {', '.join(PREPROCESS)}, got {name!r}")
    return name


def decode(path):
    """uint8 (H, W, 3) from an image file of any format TensorFlow decodes (JPEG, PNG, GIF, BMP)."""
    tf = _tf()
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def _to_uint8(image):
    tf = _tf()
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def eval_image(image, size: int, preprocess: str = "inception"):
    """Evaluation preprocessing of one decoded uint8 image to uint8 (size, size, 3)."""
    tf = _tf()
    if preprocess == "inception":
        crop = tf.image.central_crop(image, CENTRAL_FRACTION)
        return _to_uint8(tf.image.resize(crop, [size, size], method="bilinear"))
    check_preprocess(preprocess)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.round(size / CENTRAL_FRACTION) / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    resized = tf.image.resize(image, new, method="bilinear")
    top, left = (new[0] - size) // 2, (new[1] - size) // 2
    return _to_uint8(tf.image.crop_to_bounding_box(resized, top, left, size, size))


def train_image(image, size: int, seed):
    """TF-slim's training crop and flip of one decoded uint8 image; ``seed`` is a stateless seed (2 ints)."""
    tf = _tf()
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=seed,
        min_object_covered=0.1, aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 1.0), max_attempts=100,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, extent)
    resized = tf.image.resize(crop, [size, size], method="bilinear")
    flipped = tf.image.stateless_random_flip_left_right(resized, seed=seed + tf.constant([0, 1], tf.int64))
    return _to_uint8(flipped)


def pipeline(paths, targets, size: int, *, train: bool, batch_size: int, preprocess: str = "inception",
             seed: int = 0, skip_corrupt: bool = False, prefetch: int = 2, model_input: bool = False):
    """A tf.data pipeline over image files and their targets (labels, or any per-image rows; None for
    images only): batches of (uint8 images (B, S, S, 3), targets).

    ``train``: reshuffled every epoch (the list of paths, not decoded images), augmented, and the last
    short batch dropped when there is more than one batch; otherwise in file order with ``preprocess``.
    Decoding runs in parallel (one file per core) with deterministic order. ``skip_corrupt`` drops undecodable
    files; without it the first one stops the pipeline (see :func:`guard`). ``model_input`` maps the
    images to the float [-1, 1] the project's models take."""
    tf = _tf()
    check_preprocess(preprocess)
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("the image list is empty")
    ds = tf.data.Dataset.from_tensor_slices(paths if targets is None else (paths, np.asarray(targets)))
    if train:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

        def load(item, s):
            if targets is None:
                return train_image(decode(item), size, s)
            return train_image(decode(item[0]), size, s), item[1]
    else:
        def load(path, *target):
            image = eval_image(decode(path), size, preprocess)
            return (image, *target) if target else image
    # A fixed number of parallel decodes (one per core) rather than AUTOTUNE: the autotuner grows its
    # buffers as a pass goes on (measured: +240 MB over 300 images instead of 30), and memory is to stay flat.
    ds = ds.map(load, num_parallel_calls=os.cpu_count() or 1, deterministic=True)
    if skip_corrupt:
        ds = ds.ignore_errors()
    ds = ds.batch(batch_size, drop_remainder=train and len(paths) >= batch_size)
    if model_input:
        def scale(x, *target):
            x = (tf.cast(x, tf.float32) - 127.5) / 127.5
            return (x, *target) if target else x
        ds = ds.map(scale)
    return ds.prefetch(prefetch)


def dataset(image_list, size: int, *, train: bool, batch_size: int, preprocess: str = "inception", seed: int = 0,
            skip_corrupt: bool = False, limit: int | None = None, prefetch: int = 2):
    """:func:`pipeline` over an ``lpirc.loaders.ImageList``: (uint8 images (B, S, S, 3), int64 labels)."""
    return pipeline(image_list.paths[:limit], np.asarray(image_list.labels, np.int64)[:limit], size, train=train,
                    batch_size=batch_size, preprocess=preprocess, seed=seed, skip_corrupt=skip_corrupt,
                    prefetch=prefetch)


def decodable(paths, progress: bool = False) -> np.ndarray:
    """Which files decode (bool per path): one parallel pass, as the data step runs it before any training
    so that no later step meets a corrupt file."""
    tf = _tf()
    paths = [str(p) for p in paths]
    ds = tf.data.Dataset.from_tensor_slices((paths, np.arange(len(paths))))
    ds = ds.map(lambda p, i: (tf.shape(decode(p))[0], i), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.ignore_errors().batch(256).prefetch(2)
    ok = np.zeros(len(paths), bool)
    batches = ds.as_numpy_iterator()
    if progress:
        from tqdm import tqdm
        batches = tqdm(batches, total=int(np.ceil(len(paths) / 256)), desc="checking images", mininterval=2.0)
    for _, idx in batches:
        ok[idx] = True
    return ok


# Batch of streamed evaluation and prediction, whatever batch the caller asks of an array: batches of
# 512 images at 160 px are 157 MB of floats each, and memory is to stay small and flat.
EVAL_BATCH = 32


class FolderSplit:
    """A split of image files standing in for the in-memory uint8 array the chapters' steps take.

    It has what they use of an array — ``len``, ``shape``, integer indexing (one decoded image) and
    indexing by a slice or index array (a smaller FolderSplit: nothing is decoded) — and
    ``np.asarray(split)`` decodes every image, for small subsets only (a quantizer's calibration
    images). Training and prediction take it as a tf.data pipeline (:meth:`batches`), so memory
    depends on the batch size, not on the number of images. ``epoch_size`` caps the images one
    training epoch sees (0 = all): the budget for real data."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, paths, labels, size: int, preprocess: str = "inception", epoch_size: int = 0):
        self.paths = [str(p) for p in paths]
        self.labels = np.asarray(labels, np.int64)
        self.size, self.preprocess, self.epoch_size = int(size), check_preprocess(preprocess), int(epoch_size)

    @property
    def shape(self) -> tuple:
        return (len(self.paths), self.size, self.size, 3)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"FolderSplit({len(self)} images at {self.size} px, {self.preprocess})"

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return np.asarray(eval_image(decode(self.paths[key]), self.size, self.preprocess))
        idx = np.arange(len(self))[key]
        return FolderSplit([self.paths[i] for i in idx], self.labels[idx], self.size, self.preprocess,
                           self.epoch_size)

    def __array__(self, dtype=None, copy=None):
        if not len(self):
            return np.zeros(self.shape, dtype or np.uint8)
        out = np.concatenate([b for b in self.batches(256, model_input=False).as_numpy_iterator()])
        return out.astype(dtype) if dtype else out

    def digest(self) -> str:
        """SHA-256 of what the pixels depend on: each file's path, size and modification time, the
        resolution and the preprocessing (a cache key, as ``lpirc.data.array_digest`` is for arrays)."""
        import hashlib
        import os

        h = hashlib.sha256(f"{self.size}:{self.preprocess}".encode())
        for p in self.paths:
            st = os.stat(p)
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return h.hexdigest()

    def steps_per_epoch(self, batch_size: int) -> int:
        n = min(len(self), self.epoch_size) if self.epoch_size else len(self)
        return max(1, n // batch_size)

    def batches(self, batch_size: int, targets=None, *, train: bool = False, seed: int = 0, model_input: bool = True):
        """Batches of model inputs (float [-1, 1]; uint8 with ``model_input=False``), with ``targets``
        (one row per image) when given. ``train``: TF-slim's augmentation, reshuffled each epoch;
        otherwise at most :data:`EVAL_BATCH` images a batch."""
        if targets is not None and len(targets) != len(self):
            raise ValueError(f"{len(targets)} targets for {len(self)} images")
        batch_size = batch_size if train else min(batch_size, EVAL_BATCH)
        return pipeline(self.paths, targets, self.size, train=train, batch_size=batch_size,
                        preprocess=self.preprocess, seed=seed, model_input=model_input)


def is_streamed(x) -> bool:
    return isinstance(x, FolderSplit)


def guard(error) -> Exception:
    """The DataError to raise for a decoding failure inside a pipeline (TensorFlow's message names
    no file)."""
    from lpirc.loaders import DataError

    return DataError(f"an image could not be decoded ({str(error).splitlines()[0]}). Find it with "
                     "`lpirc data verify`, or set skip_corrupt: true to skip and count such files")


def images_per_second(image_list, size: int, *, train: bool, batch_size: int = 64, limit: int | None = None,
                      preprocess: str = "inception") -> dict:
    """Decode + preprocess throughput of the pipeline alone (no model): one pass, after one warm-up batch."""
    import time

    from lpirc.loaders import DataError

    n = len(image_list.paths[:limit])
    if n < 2 * batch_size:
        raise DataError(f"{n} images are fewer than two batches of {batch_size}; lower the batch size")
    ds = dataset(image_list, size, train=train, batch_size=batch_size, preprocess=preprocess, limit=limit)
    it = iter(ds)
    warmup = len(next(it)[1])
    start, timed = time.perf_counter(), 0
    for images, _ in it:
        timed += len(images)
    wall = time.perf_counter() - start
    return {"images": warmup + timed, "timed_images": timed, "seconds": wall,
            "images_per_s": timed / wall if wall > 0 else float("nan"), "train": train, "size": size,
            "batch_size": batch_size}


def evaluate(model_path, image_list, size: int | None = None, *, preprocess: str = "inception",
             batch_size: int = 64, skip_corrupt: bool = False, limit: int | None = None, progress: bool = False):
    """Scores of a .tflite or .keras classifier over a streamed image list, and how many files were
    skipped. The same uint8 images feed either kind of model."""
    tf = _tf()
    from lpirc.data import to_model_input
    from lpirc.evaluate import TFLiteClassifier

    model_path = Path(model_path)
    if model_path.suffix == ".keras":
        from lpirc import models
        model = models.load_model(model_path)
        size = size or int(model.input.shape[1])

        def score(batch):
            return model.predict_on_batch(to_model_input(batch))
    else:
        clf = TFLiteClassifier(model_path)
        size = size or clf.height

        def score(batch):
            return clf.logits(batch)
    ds = dataset(image_list, size, train=False, batch_size=batch_size, preprocess=preprocess,
                 skip_corrupt=skip_corrupt, limit=limit)
    scores, labels = [], []
    batches = ds.as_numpy_iterator()
    if progress:
        from tqdm import tqdm
        batches = tqdm(batches, total=int(np.ceil(len(image_list.paths[:limit]) / batch_size)),
                       desc=f"evaluating {model_path.name}", mininterval=2.0)
    try:
        for images, y in batches:
            scores.append(np.asarray(score(images), np.float32))
            labels.append(y)
    except tf.errors.InvalidArgumentError as exc:
        raise guard(exc) from exc
    listed = len(image_list.paths[:limit])
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return np.concatenate(scores), y, listed - len(y)


def fit(build, train_list, *, epochs: int, batch_size: int, learning_rate: float, size: int, seed: int = 0,
        steps_per_epoch: int | None = None, strategy=None, skip_corrupt: bool = False,
        verbose: int = 2) -> tuple:
    """Train ``build()`` (a function returning a Keras model, called inside ``strategy``'s scope) on a
    streamed image list with the project's recipe: Adam, cosine decay over all steps, cross-entropy on
    labels. ``steps_per_epoch`` caps an epoch (a budget for real data); ``batch_size`` is the global
    batch, split across the strategy's replicas. Returns (model, record with images/s)."""
    import time

    tf = _tf()
    from lpirc import models

    keras = models.keras
    strategy = strategy or tf.distribute.get_strategy()
    n = len(train_list.paths)
    steps = steps_per_epoch or max(1, n // batch_size)
    ds = pipeline(train_list.paths, train_list.labels, size, train=True, batch_size=batch_size, seed=seed,
                  skip_corrupt=skip_corrupt, model_input=True).repeat()
    with strategy.scope():
        model = build()
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * steps, alpha=0.01)
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")])
    start = time.perf_counter()
    try:
        hist = model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=verbose)
    except tf.errors.InvalidArgumentError as exc:
        raise guard(exc) from exc
    wall = time.perf_counter() - start
    return model, {"history": {k: [float(v) for v in vals] for k, vals in hist.history.items()},
                   "train_time_s": wall, "images_per_s": epochs * steps * batch_size / wall if wall else 0.0,
                   "steps_per_epoch": steps, "replicas": strategy.num_replicas_in_sync}

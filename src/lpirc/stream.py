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
  ``resize_crop`` = resize the shorter side to round(S / 0.875), then centre-crop S x S.

The random crop and flip are stateless and seeded per image from ``seed`` and the image's position
in the epoch, so a run is repeatable with parallel decoding. Images come out as uint8; the model
input mapping ([-1, 1], ``lpirc.data.to_model_input``) is applied by the training pipeline.
Scoring a model over a folder is lpirc.evaluate's (``folder_scores``).
"""
from __future__ import annotations

import hashlib
import os
import re
import time

import numpy as np
from tqdm import tqdm

from lpirc.choices import PREPROCESS
from lpirc.loaders import CENTRAL_FRACTION
from lpirc.loaders import CorruptImageError, DataError
from lpirc.tfutil import tensorflow as _tf


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


# How to skip undecodable files, said by a decoding error: a step's profile key (the default); the
# command line passes its flag instead (``lpirc eval --skip-corrupt``).
SKIP_PROFILE = "set skip_corrupt: true (data step) in the profile"


def first_undecodable(paths, start: int = 0, chunk: int = 512) -> str | None:
    """The first of ``paths[start:]`` that does not decode, or None: checked a chunk at a time, so a
    failure near ``start`` is found without decoding the rest."""
    for lo in range(start, len(paths), chunk):
        ok = decodable(paths[lo:lo + chunk])
        if not ok.all():
            return str(paths[lo + int(np.flatnonzero(~ok)[0])])
    return None


def guard(error, paths=None, start: int = 0, skip: str = SKIP_PROFILE) -> Exception:
    """The DataError to raise for a decoding failure inside a pipeline. TensorFlow's message names no
    file: given the pipeline's ``paths`` (in order) and how many images it had delivered (``start``),
    the file is found and named. ``skip`` says how to skip such files where the failure surfaced."""
    reason = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[\[.*$|\s*\[Op:.*$", "", str(error).splitlines()[0]).strip()
    bad = first_undecodable(paths, start) if paths is not None else None
    if bad:
        return CorruptImageError(f"cannot decode image {bad} ({reason}). Remove or replace the file, or {skip} "
                                 "to skip and count such files")
    return DataError(f"an image could not be decoded ({reason}). Find it with `lpirc data verify`, or {skip} "
                     "to skip and count such files")


def images_per_second(image_list, size: int, *, train: bool, batch_size: int = 64, limit: int | None = None,
                      preprocess: str = "inception") -> dict:
    """Decode + preprocess throughput of the pipeline alone (no model): one pass, after one warm-up batch."""
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

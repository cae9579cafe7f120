"""Real image data: listing ImageNet-style validation folders, class-per-subfolder folders and
unlabeled folders (decoding and preprocessing them is lpirc.stream's), and the errors bad data raises.

Three layouts are read:

* **ILSVRC2012**: a folder of images plus a ground-truth file with one ``FILENAME LABEL`` line per
  image (``ILSVRC2012_val_00000001.JPEG 65``), labels 0..999 in sorted-synset order. Models with
  1001 outputs (background first, as the challenge's and Google's hosted MobileNets) are handled at
  evaluation time by dropping output 0.
* **image folder**: one subfolder per class, classes indexed in sorted order.
* **unlabeled**: any images under a folder (the pretraining pool).

Evaluation keeps the central 87.5% of each side (:data:`CENTRAL_FRACTION`, lpirc.stream).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".ppm"}
CENTRAL_FRACTION = 0.875


class DataError(ValueError):
    """Data that cannot be used; the message names the file and what to do."""


class CorruptImageError(DataError):
    pass


@dataclasses.dataclass
class ImageList:
    paths: list[Path]
    labels: np.ndarray      # int64, -1 when unknown
    classes: list[str]
    layout: str


def read_ilsvrc(folder: Path, labels_file: Path) -> ImageList:
    folder, labels_file = Path(folder), Path(labels_file)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    if not labels_file.exists():
        raise DataError(f"ground-truth file {labels_file} does not exist")
    paths, labels = [], []
    for n, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{labels_file}:{n}: expected 'FILENAME LABEL', got {line!r}")
        path = folder / parts[0]
        if not path.exists():
            raise DataError(f"{labels_file}:{n}: image {path} listed but missing")
        paths.append(path)
        labels.append(int(parts[1]))
    if not paths:
        raise DataError(f"{labels_file} lists no images")
    num_classes = max(1000, max(labels) + 1)
    return ImageList(paths, np.array(labels, dtype=np.int64), [str(i) for i in range(num_classes)], "ilsvrc")


def read_image_folder(folder: Path) -> ImageList:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes and all(c.isdigit() for c in classes):
        classes.sort(key=int)      # folders named by class index (ImageNetV2: 0 ... 999) keep that index
    if not classes:
        raise DataError(f"{folder} has no class subfolders; expected DIR/<class>/<image> "
                        "(or pass --labels FILE for an ILSVRC2012-format folder)")
    paths, labels = [], []
    for i, name in enumerate(classes):
        for p in sorted((folder / name).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(i)
    if not paths:
        raise DataError(f"{folder} has class subfolders but no images")
    return ImageList(paths, np.array(labels, dtype=np.int64), classes, "folder")


def read_unlabeled_folder(folder: Path) -> ImageList:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{folder} holds no images")
    return ImageList(paths, np.full(len(paths), -1, dtype=np.int64), [], "unlabeled")

"""The embedded dataset: a seeded, procedurally generated 32x32 image classification task.

It mirrors the challenge's structure, not its content:

* ``train`` / ``val``: ten shape classes drawn anti-aliased, rotated and shaded, composited on random
  crops of the photographs that scikit-image ships (natural texture without a download);
* ``holdout``: generated separately from a slightly shifted distribution (some unseen photographs,
  smaller objects, more noise, looser colours), as the challenge scored a freshly collected holdout;
* ``extra``: a larger unlabeled pool from a broader distribution (out-of-vocabulary shapes, random
  colours) that stands in for Open Images.

The same seed gives byte-identical arrays within one pinned environment (numpy, Pillow,
scikit-image versions are pinned in requirements.txt).
"""
from __future__ import annotations

import colorsys
import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import skimage.data
from PIL import Image, ImageDraw
from tqdm import tqdm

from lpirc import loaders, stream
from lpirc.results import atomic_path, write_json

CLASSES = ("circle", "square", "triangle", "star", "cross", "ring",
           "hexagon", "heart", "arrow", "crescent")
# Shapes the extra pool may contain that are in no class: the "Open Images" pool is broader.
OUT_OF_VOCABULARY = ("pentagon", "ellipse", "diamond", "bar")
IMAGE_SIZE = 32
SUPERSAMPLE = 4

# Photographs bundled inside the scikit-image wheel (no download). The holdout adds photographs the
# training split never sees.
TRAIN_PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coins", "colorwheel",
                "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "cell", "text")
HOLDOUT_ONLY_PHOTOS = ("coffee", "rocket", "grass", "retina", "page")


@dataclasses.dataclass(frozen=True)
class SplitStyle:
    """How one split is drawn. Holdout and extra differ from train/val only through these knobs."""
    radius_px: tuple[float, float] = (9.0, 14.0)
    class_hue_prob: float = 0.9
    hue_jitter: float = 0.04
    noise_std: float = 0.03
    occlude_prob: float = 0.15
    max_distractors: int = 2
    unseen_photo_prob: float = 0.0
    out_of_vocabulary_prob: float = 0.0


STYLES = {
    "train": SplitStyle(),
    "val": SplitStyle(),
    # Softened shift: a spike with only unseen photographs, smaller objects and more noise cost
    # 10-11 points, more than the challenge's fresh holdout; most backgrounds stay familiar.
    "holdout": SplitStyle(radius_px=(8.5, 13.5), hue_jitter=0.05, noise_std=0.035,
                          unseen_photo_prob=0.35),
    "extra": SplitStyle(radius_px=(7.0, 15.0), class_hue_prob=0.5, hue_jitter=0.08,
                        noise_std=0.04, unseen_photo_prob=0.3, out_of_vocabulary_prob=0.2),
}
SPLITS = ("train", "val", "holdout", "extra")
# Seeds of the splits are derived from the dataset seed and the split's index, so sizes can change
# without changing the other splits' content.
_SPLIT_INDEX = {name: i for i, name in enumerate(SPLITS)}


# --------------------------------------------------------------------------------------------------
# drawing
def _load_photos(names) -> list[list[np.ndarray]]:
    """Each photo as RGB float32 in [0, 1], at several scales (so crops show coarse and fine texture)."""
    photos = []
    for name in names:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        pil = Image.fromarray(img)
        scales = []
        for short_side in (48, 80, 128):
            w, h = pil.size
            f = short_side / min(w, h)
            scales.append(np.asarray(pil.resize((max(32, round(w * f)), max(32, round(h * f))),
                                                Image.BILINEAR), dtype=np.float32) / 255.0)
        photos.append(scales)
    return photos


def _polygon(kind: str, r: float) -> list[tuple[float, float]] | None:
    """Vertices of a shape of circumradius r around the origin, or None for round shapes."""
    def regular(n, rad, phase=-math.pi / 2):
        return [(rad * math.cos(phase + 2 * math.pi * k / n), rad * math.sin(phase + 2 * math.pi * k / n))
                for k in range(n)]
    if kind == "square":
        return regular(4, r, math.pi / 4)
    if kind == "triangle":
        return regular(3, r * 1.1)
    if kind == "hexagon":
        return regular(6, r)
    if kind == "pentagon":
        return regular(5, r)
    if kind == "diamond":
        return [(0, -r), (0.55 * r, 0), (0, r), (-0.55 * r, 0)]
    if kind == "bar":
        return [(-r, -0.3 * r), (r, -0.3 * r), (r, 0.3 * r), (-r, 0.3 * r)]
    if kind == "star":
        pts = []
        for k in range(10):
            rad = r * 1.1 if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return pts
    if kind == "cross":
        a, b = r * 0.32, r
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b),
                (-a, a), (-b, a), (-b, -a), (-a, -a)]
    if kind == "arrow":
        return [(-r, -0.25 * r), (0.2 * r, -0.25 * r), (0.2 * r, -0.7 * r), (r, 0),
                (0.2 * r, 0.7 * r), (0.2 * r, 0.25 * r), (-r, 0.25 * r)]
    if kind == "heart":
        pts = []
        for k in range(40):
            t = 2 * math.pi * k / 40
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            pts.append((x * r / 16, y * r / 16 + 0.1 * r))
        return pts
    return None


def _shape_mask(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one shape, drawn supersampled and box-filtered down."""
    s = SUPERSAMPLE
    size = IMAGE_SIZE * s
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    c, sn = math.cos(angle), math.sin(angle)

    def place(pts):
        return [((cx + x * c - y * sn) * s, (cy + x * sn + y * c) * s) for x, y in pts]

    poly = _polygon(kind, r)
    if poly is not None:
        draw.polygon(place(poly), fill=255)
    elif kind == "circle":
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=255)
    elif kind == "ellipse":
        draw.polygon(place([(r * math.cos(t), 0.55 * r * math.sin(t))
                            for t in np.linspace(0, 2 * math.pi, 36, endpoint=False)]), fill=255)
    elif kind == "ring":
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=255)
        ri = 0.55 * r
        draw.ellipse([(cx - ri) * s, (cy - ri) * s, (cx + ri) * s, (cy + ri) * s], fill=0)
    elif kind == "crescent":
        draw.ellipse([(cx - r) * s, (cy - r) * s, (cx + r) * s, (cy + r) * s], fill=255)
        ox, oy = place([(0.45 * r, 0)])[0]
        draw.ellipse([ox - 0.85 * r * s, oy - 0.85 * r * s, ox + 0.85 * r * s, oy + 0.85 * r * s], fill=0)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    small = canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _class_hue(label: int) -> float:
    return (label / len(CLASSES) + 0.03) % 1.0


def _colour(rng, hue: float) -> np.ndarray:
    sat = rng.uniform(0.55, 1.0)
    val = rng.uniform(0.55, 1.0)
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, sat, val), dtype=np.float32)


def _shaded_fill(rng, rgb: np.ndarray) -> np.ndarray:
    """A colour with a random linear light gradient across the image, so shapes are not flat."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE - 0.5
    a = rng.uniform(0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.1, 0.45) * (xx * math.cos(a) + yy * math.sin(a))
    return np.clip(rgb[None, None, :] * light[..., None], 0, 1)


def _background(rng, photos) -> np.ndarray:
    scales = photos[rng.integers(len(photos))]
    img = scales[rng.integers(len(scales))]
    h, w, _ = img.shape
    y, x = rng.integers(0, h - IMAGE_SIZE + 1), rng.integers(0, w - IMAGE_SIZE + 1)
    crop = img[y:y + IMAGE_SIZE, x:x + IMAGE_SIZE]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    # Dim and desaturate a little so the object is usually, not always, the most salient thing.
    gray = crop.mean(axis=-1, keepdims=True)
    crop = 0.7 * crop + 0.3 * gray
    return crop * rng.uniform(0.5, 1.0)


def _draw_one(rng, style: SplitStyle, kind: str, label: int | None, photos, unseen_photos) -> np.ndarray:
    use_unseen = unseen_photos and rng.random() < style.unseen_photo_prob
    img = _background(rng, unseen_photos if use_unseen else photos)
    # distractors first (smaller, any colour), the object on top
    for _ in range(rng.integers(0, style.max_distractors + 1)):
        dkind = CLASSES[rng.integers(len(CLASSES))] if rng.random() < 0.5 else "ellipse"
        dr = rng.uniform(3.0, 6.0)
        mask = _shape_mask(dkind, rng.uniform(0, IMAGE_SIZE), rng.uniform(0, IMAGE_SIZE), dr,
                           rng.uniform(0, 2 * math.pi))
        fill = _shaded_fill(rng, _colour(rng, rng.random()))
        img = img * (1 - mask[..., None]) + fill * mask[..., None]
    r = rng.uniform(*style.radius_px)
    margin = r * 0.6
    cx, cy = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
    mask = _shape_mask(kind, cx, cy, r, rng.uniform(0, 2 * math.pi))
    if label is not None and rng.random() < style.class_hue_prob:
        hue = _class_hue(label) + rng.normal(0, style.hue_jitter)
    else:
        hue = rng.random()
    fill = _shaded_fill(rng, _colour(rng, hue))
    img = img * (1 - mask[..., None]) + fill * mask[..., None]
    if rng.random() < style.occlude_prob:
        w, h = rng.integers(6, 14, size=2)
        x0, y0 = rng.integers(0, IMAGE_SIZE - w), rng.integers(0, IMAGE_SIZE - h)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 1, size=3)
    img = img + rng.normal(0, style.noise_std, size=img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def balanced_labels(rng, n: int, num_classes: int) -> np.ndarray:
    """Exactly balanced (up to n % num_classes) labels in shuffled order."""
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    return labels.astype(np.int64)


def generate_split(split: str, n: int, seed: int, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 and labels (n,) int64.

    For ``extra`` the labels are the generating class, -1 for out-of-vocabulary shapes; they are
    never used for training (the pool is unlabeled), only to describe the pool in the datasheet.
    """
    if split not in STYLES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if n < 0:
        raise ValueError(f"split size must be >= 0, got {n}")
    style = STYLES[split]
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_INDEX[split]]))
    photos = _load_photos(TRAIN_PHOTOS)
    unseen = _load_photos(HOLDOUT_ONLY_PHOTOS) if style.unseen_photo_prob > 0 else []
    labels = balanced_labels(rng, n, len(CLASSES))
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    iterator = range(n)
    if progress:
        iterator = tqdm(iterator, desc=f"generating {split}", mininterval=2.0)
    for i in iterator:
        if style.out_of_vocabulary_prob and rng.random() < style.out_of_vocabulary_prob:
            kind = OUT_OF_VOCABULARY[rng.integers(len(OUT_OF_VOCABULARY))]
            labels[i] = -1
            images[i] = _draw_one(rng, style, kind, None, photos, unseen)
        else:
            images[i] = _draw_one(rng, style, CLASSES[labels[i]], int(labels[i]), photos, unseen)
    return images, labels


# --------------------------------------------------------------------------------------------------
# storage: one .npy pair per split plus dataset.json with sizes and checksums
def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's bytes; a streamed split (lpirc.stream.FolderSplit) gives its own digest."""
    if hasattr(a, "digest"):
        return a.digest()
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def generate_dataset(out_dir: Path, sizes: dict[str, int], seed: int, progress: bool = True) -> dict:
    """Generate every split into ``out_dir`` (atomically per file) and return the dataset record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"name": "embedded-shapes", "seed": seed, "image_size": IMAGE_SIZE,
              "classes": list(CLASSES), "splits": {}}
    for split in SPLITS:
        x, y = generate_split(split, int(sizes.get(split, 0)), seed, progress=progress)
        record["splits"][split] = save_split(out_dir, split, x, y)
    write_json(out_dir / "dataset.json", record)
    return record


def save_split(out_dir: Path, split: str, x: np.ndarray, y: np.ndarray) -> dict:
    """Write <split>_x.npy and <split>_y.npy atomically; return their size and digests."""
    for kind, arr in (("x", x), ("y", y)):
        with atomic_path(Path(out_dir) / f"{split}_{kind}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr)
    return {"n": int(len(y)), "x_sha256": array_digest(x), "y_sha256": array_digest(y)}


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, labels) of one split of the data step's output: arrays for the embedded data, a
    streamed ``lpirc.stream.FolderSplit`` for imported folders (see :func:`import_folders`)."""
    data_dir = Path(data_dir)
    listed = data_dir / f"{split}_list.json"
    if listed.exists():
        record = json.loads((data_dir / "dataset.json").read_text())
        files = json.loads(listed.read_text())
        x = stream.FolderSplit(files["paths"], files["labels"], record["image_size"], record["preprocess"],
                        record.get("epoch_size", 0))
        return x, x.labels
    xp, yp = data_dir / f"{split}_x.npy", data_dir / f"{split}_y.npy"
    if not xp.exists() or not yp.exists():
        raise FileNotFoundError(
            f"split {split!r} not found in {data_dir}; run the data step first: lpirc run --only data")
    return np.load(xp), np.load(yp)


def to_model_input(images_uint8: np.ndarray) -> np.ndarray:
    """The project's float models take pixels mapped to [-1, 1], as Google's MobileNets do."""
    images_uint8 = np.asarray(images_uint8)           # a streamed split decodes here (small subsets only)
    return (images_uint8.astype(np.float32) - 127.5) / 127.5


def import_folders(out_dir: Path, split_dirs: dict[str, str], resolution: int,
                   labels_files: dict[str, str] | None = None, skip_corrupt: bool = False,
                   progress: bool = True, limits: dict[str, int] | None = None, seed: int = 0,
                   preprocess: str = "inception", epoch_size: int = 0) -> dict:
    """Real data: list image folders for streaming (``lpirc.stream``); nothing is decoded into memory.

    ``split_dirs`` maps split -> folder (class-per-subfolder, or ILSVRC2012 with a labels file in
    ``labels_files``; the ``extra`` split may be a plain folder of unlabeled images). Every folder
    is checked before any work starts, then every listed file is decoded once (a streamed pass) so no
    later step meets a corrupt one: with ``skip_corrupt`` such files are dropped and listed in the
    record, otherwise the first one stops the step with its name.

    ``limits`` (split -> number of images, 0 = all) takes a random subset drawn with ``seed``. Without a
    holdout folder the holdout is a seeded random ``limits['holdout']`` images of the train folder,
    removed from train. Each split is written as ``<split>_list.json`` (paths and labels), which
    :func:`load_split` opens as a :class:`lpirc.stream.FolderSplit` at ``resolution`` with evaluation
    ``preprocess``; ``epoch_size`` caps the images one training epoch sees (0 = all).
    """
    stream.check_preprocess(preprocess)
    labels_files = labels_files or {}
    limits = limits or {}
    lists = {}
    for split, folder in split_dirs.items():
        if split not in SPLITS:
            raise loaders.DataError(f"unknown split {split!r}; expected one of {SPLITS}")
        if not folder:
            continue
        if split == "extra" and not labels_files.get(split):
            lists[split] = loaders.read_unlabeled_folder(Path(folder))
        elif labels_files.get(split):
            lists[split] = loaders.read_ilsvrc(Path(folder), Path(labels_files[split]))
        else:
            lists[split] = loaders.read_image_folder(Path(folder))
    for required in ("train", "val"):
        if required not in lists:
            raise loaders.DataError(f"real-data import needs a {required!r} folder")
    classes = lists["val"].classes
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"name": "imported-folders", "image_size": resolution, "classes": classes, "splits": {},
              "storage": "streamed", "preprocess": preprocess, "epoch_size": int(epoch_size),
              "sources": {k: str(v) for k, v in split_dirs.items() if v}}
    rng = np.random.default_rng(seed)

    def take(lst, idx):
        return loaders.ImageList([lst.paths[i] for i in idx], lst.labels[idx], lst.classes, lst.layout)

    carved = "holdout" not in lists and bool(limits.get("holdout"))
    if carved:
        train = lists["train"]
        n = int(limits["holdout"])
        if n >= len(train.paths):
            raise loaders.DataError(f"holdout_size {n} leaves no training images of the {len(train.paths)} in "
                                    f"{split_dirs['train']}; lower it or give a holdout folder")
        order = rng.permutation(len(train.paths))
        lists["holdout"], lists["train"] = take(train, np.sort(order[:n])), take(train, np.sort(order[n:]))
        record["sources"]["holdout"] = f"{n} random images of {split_dirs['train']}, removed from train"
    for split, lst in lists.items():
        n = limits.get(split) or 0
        if 0 < n < len(lst.paths) and not (carved and split == "holdout"):
            lists[split] = take(lst, np.sort(rng.permutation(len(lst.paths))[:n]))
    t0, checked = time.perf_counter(), 0
    for split in SPLITS:
        lst = lists.get(split, loaders.ImageList([], np.zeros(0, np.int64), classes, "none"))
        ok = stream.decodable(lst.paths, progress=progress) if lst.paths else np.zeros(0, bool)
        checked += len(ok)
        bad = [str(lst.paths[i]) for i in np.flatnonzero(~ok)]
        if bad and not skip_corrupt:
            raise loaders.CorruptImageError(
                f"cannot decode image {bad[0]} ({len(bad)} such file(s) in the {split} split). Remove or replace "
                "them, or set skip_corrupt: true to skip and count such files")
        keep = np.flatnonzero(ok)
        paths, labels = [str(lst.paths[i]) for i in keep], np.asarray(lst.labels, np.int64)[keep]
        write_json(out_dir / f"{split}_list.json", {"paths": paths, "labels": labels.tolist()})
        digest = stream.FolderSplit(paths, labels, resolution, preprocess).digest() if paths else array_digest(labels)
        record["splits"][split] = {"n": len(paths), "x_sha256": digest, "y_sha256": array_digest(labels),
                                   "skipped_corrupt": bad}
    seconds = time.perf_counter() - t0
    record["decode_check"] = {"images": checked, "seconds": seconds,
                              "images_per_s": checked / seconds if seconds > 0 else float("nan")}
    write_json(out_dir / "dataset.json", record)
    return record


def load_splits(data_dir: Path, names=("train", "val", "holdout")) -> tuple[dict, list[str]]:
    """{split: (uint8 images, labels)} and the class names of a dataset folder (the data step's output)."""
    data_dir = Path(data_dir)
    classes = json.loads((data_dir / "dataset.json").read_text())["classes"]
    return {name: load_split(data_dir, name) for name in names}, classes


def datasheet(record: dict, splits: dict, source: str):
    """The datasheet chapter's two tables: split sizes (with each image array's digest) and images per
    class per split (for the embedded extra pool, its hidden generator classes, shown for information)."""
    sizes = pd.DataFrame([{"split": s, "images": len(y), "labelled": "yes" if len(y) and (y >= 0).all() else "no",
                           "image shape": "x".join(map(str, x.shape[1:])) if len(x) else "-",
                           "SHA-256 (first 12)": record["splits"][s]["x_sha256"][:12]} for s, (x, y) in splits.items()])
    classes = record["classes"]
    balance = pd.DataFrame({"class": classes})
    shown = ["train", "val", "holdout"] + (["extra"] if source == "embedded" else [])
    for s in shown:
        label = "extra (hidden generator class)" if s == "extra" else s
        balance[label] = [int((splits[s][1] == c).sum()) for c in range(len(classes))]
    return sizes, balance


def make_dataset(out_dir: Path, source: str, sizes: dict, seed: int, folders: dict, resolution: int,
                 labels_files: dict, skip_corrupt: bool = False, preprocess: str = "inception",
                 epoch_size: int = 0) -> dict:
    """The data step: the embedded dataset generated from ``seed`` at ``sizes``, or image ``folders``
    listed for streaming at ``resolution`` (``source`` 'embedded' or 'folders'; ``preprocess`` and
    ``epoch_size``: :func:`import_folders`). Returns the dataset record."""
    if source == "embedded":
        return generate_dataset(out_dir, sizes, seed)
    if source == "folders":
        return import_folders(out_dir, folders, resolution, labels_files, skip_corrupt=skip_corrupt, limits=sizes,
                              seed=seed, preprocess=preprocess, epoch_size=epoch_size)
    raise ValueError(f"source must be 'embedded' or 'folders', got {source!r}")

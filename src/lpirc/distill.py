"""Knowledge distillation (Hinton et al. 2015) as the entry used it: two cross-entropies, mixed.

    loss = (1 - alpha) * CE(labels, student) + alpha * T^2 * CE(softmax(teacher / T), softmax(student / T))

alpha = 0 is plain training on labels; alpha = 1 learns from the teacher alone. The T^2 factor
keeps the soft term's gradients on the same scale as the hard term's when T changes.

Teacher logits are computed once per (teacher file, images) and cached on disk, so a sweep over
alpha, temperature and seeds never runs a teacher twice.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lpirc import data, evaluate, models, quantize, runtime
from lpirc.choices import INITS
from lpirc.evaluate import classifier_logits
from lpirc.grid import run_grid
from lpirc.models import keras
from lpirc.results import atomic_path
from lpirc.tfutil import tensorflow


def distillation_loss(alpha: float, temperature: float, num_classes: int):
    """A Keras loss over y_true = [label, teacher logits...] (shape (batch, 1 + num_classes))."""
    tf = tensorflow()
    alpha = float(alpha)
    t = float(temperature)

    def loss(y_true, student_logits):
        labels = tf.cast(y_true[:, 0], tf.int32)
        teacher_logits = y_true[:, 1:1 + num_classes]
        hard = tf.keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
        soft_targets = tf.nn.softmax(teacher_logits / t)
        soft = -tf.reduce_sum(soft_targets * tf.nn.log_softmax(student_logits / t), axis=-1)
        return (1.0 - alpha) * hard + alpha * (t ** 2) * soft

    loss.__name__ = f"distill_a{alpha:g}_t{t:g}"
    return loss


def label_top1():
    """Top-1 against the label column of packed targets: a metric object, whose variables exist before
    training (given as a bare function, Keras makes them inside the first training step, and TensorFlow
    traces that step twice)."""
    tf = tensorflow()

    def top1(y_true, logits):
        labels = tf.cast(y_true[:, 0], tf.int64)
        return tf.cast(tf.equal(tf.argmax(logits, axis=-1), labels), tf.float32)
    return keras.metrics.MeanMetricWrapper(top1, name="top1")


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray | None, num_classes: int) -> np.ndarray:
    """[label, teacher logits] rows; zeros stand in for the teacher when alpha = 0."""
    if teacher_logits is None:
        teacher_logits = np.zeros((len(labels), num_classes), np.float32)
    return np.concatenate([labels[:, None].astype(np.float32), teacher_logits.astype(np.float32)], axis=1)


# --------------------------------------------------------------------------------------------------
# teacher-logit cache
def cache_key(teacher_path: Path, images: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(Path(teacher_path).read_bytes())
    h.update(data.array_digest(images).encode())
    h.update(str(images.shape).encode())
    return h.hexdigest()[:24]


def teacher_file(models_dir: Path, name: str) -> Path:
    """The baseline step's file of teacher ``name``: ``<name>.keras`` (trained there, or a frozen .keras)
    or ``<name>.tflite`` (a frozen .tflite, see ``lpirc.models.frozen_point``)."""
    for suffix in (".keras", ".tflite"):
        path = Path(models_dir) / f"{name}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no model of teacher {name!r} in {models_dir}: run the baseline step first "
                            "(lpirc run --only baseline)")


def teacher_logits_file(teacher_path: Path, images: np.ndarray, cache_dir: Path) -> tuple[Path, bool]:
    """(cache file of the logits, cache_hit), computing and writing them on a miss. Keyed by the
    teacher file's bytes and the images' bytes. Grid tasks take the file, not the array."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{Path(teacher_path).stem}-{cache_key(teacher_path, images)}.npy"
    if path.exists():
        return path, True
    logits = classifier_logits(teacher_path, images).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, logits)
    return path, False


def teacher_logits(teacher_path: Path, images: np.ndarray, cache_dir: Path) -> tuple[np.ndarray, bool]:
    """(logits, cache_hit); see :func:`teacher_logits_file`."""
    path, hit = teacher_logits_file(teacher_path, images, cache_dir)
    return np.load(path), hit


# --------------------------------------------------------------------------------------------------
def train_student(model: keras.Model, x_train, y_train, logits_train, *, alpha: float, temperature: float,
                  epochs: int, batch_size: int = 128, learning_rate: float = 1e-2, verbose: int = 2,
                  validation: tuple | None = None) -> dict:
    """Train ``model`` (logits out) on the mixed loss with the project's recipe (models.fit_cosine);
    ``validation`` = (images, labels) adds top-1 after every epoch to the history ('val_top1')."""
    num_classes = model.output_shape[-1]
    if alpha > 0 and logits_train is None:
        raise ValueError("alpha > 0 needs teacher logits")
    targets = pack_targets(y_train, logits_train if alpha > 0 else None, num_classes)
    return models.fit_cosine(model, x_train, targets, loss=distillation_loss(alpha, temperature, num_classes),
                      metrics=[label_top1()], epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, verbose=verbose, validation=validation)


def label_with_teachers(teacher_paths: dict, x_train, y_train, cache_dir: Path, trained: dict):
    """Each teacher's logits for the training split, computed once (cached), and what each teacher costs.

    ``trained``: the baseline step's record per teacher (params, MMACs, accuracy, training time). Returns
    (a DataFrame with one row per teacher: size, accuracy, training time, the time to label the split,
    whether the cache had it, agreement with the labels; {teacher: logits file}). A teacher's time per
    image is measured once, as the entry paid it, with the teacher online (:func:`online_costs`)."""
    rows, files = [], {}
    for name, path in teacher_paths.items():
        t0 = time.perf_counter()
        files[name], hit = teacher_logits_file(path, x_train, cache_dir)
        elapsed = time.perf_counter() - t0
        info = trained[name]
        rows.append({"teacher": name, "params": info["params"], "MMACs": info["MMACs"],
                     "val top-1 (%)": 100 * info["val_top1"], "holdout top-1 (%)": 100 * info["holdout_top1"],
                     "teacher training (s)": info["train_time_s"],
                     "logits for train split (s)": elapsed, "cache": "hit" if hit else "computed",
                     "agreement with labels (%)": 100 * float(np.mean(np.argmax(np.load(files[name]), 1) == y_train))})
    return pd.DataFrame(rows), files


def expand_alpha0(runs, teachers):
    """alpha = 0 ignores the teacher and is trained once per seed (teacher 'none'); for per-teacher
    tables and tests its runs are repeated under every teacher."""
    none = runs[runs.teacher == "none"]
    return pd.concat([runs[runs.teacher != "none"]] + [none.assign(teacher=t) for t in teachers], ignore_index=True)


# --------------------------------------------------------------------------------------------------
# the sweep: one pure task per (alpha, teacher, seed)
def train_point(*, out_dir: str, data_dir: str, student_path: str, logits_path: str | None, alpha: float,
                teacher: str, seed: int, temperature: float, epochs: int, batch_size: int, learning_rate: float,
                representative_size: int, init: str = "trained", int8: bool = False,
                budget: str = "equal epochs") -> dict:
    """Train one student from ``student_path`` (``init``: see :func:`fresh_student`) on the mixed loss,
    recording validation top-1 after every epoch (the learning curve); evaluate it as float (and as
    int8 when ``int8``: a conversion costs more than a short training run, so only where a claim
    reads int8); write ``out_dir``/student.keras.

    Inputs are files and numbers only, so the task runs the same in any process (lpirc.grid)."""
    clock = Clock()
    splits, classes = data.load_splits(Path(data_dir))
    x_train, y_train = splits.pop("train")
    logits = np.load(logits_path) if logits_path else None
    model = fresh_student(student_path, seed, init)
    clock.lap("build")
    x_val, y_val = splits["val"]
    fit = train_student(model, x_train, y_train, logits, alpha=alpha, temperature=temperature, epochs=epochs,
                        batch_size=batch_size, learning_rate=learning_rate, verbose=0,
                        validation=(x_val, y_val))
    clock.lap("train")
    row = finish_student(model, Path(out_dir), x_train, splits, len(classes), seed, representative_size, int8, clock)
    curve = fit["history"].get("val_top1", [])
    return {"alpha": float(alpha), "teacher": teacher, "seed": int(seed), "epochs": int(epochs), "budget": budget,
            **row, "train_time_s": fit["train_time_s"], "val_curve": [float(v) for v in curve],
            "timing_s": clock.laps}


class Clock:
    """Wall time of a task's phases: ``lap(name)`` records the time since the previous lap."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def fresh_student(student_path, seed: int, init: str = "fresh"):
    """The student a grid task trains, after seeding everything with ``seed``: ``init`` 'fresh' = the
    architecture of ``student_path`` with a new initialisation drawn from ``seed`` (the embedded book:
    seeds vary the start); 'trained' = ``student_path`` itself, weights and all (real data, as the
    entry distilled into Google's pretrained MobileNet; seeds then vary only the data order)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    runtime.set_seed(seed)
    model = models.load_model(student_path)
    return model if init == "trained" else keras.models.clone_model(model)


def finish_student(model, out: Path, x_train, splits: dict, num_classes: int, seed: int,
                   representative_size: int, int8: bool = True, clock: "Clock | None" = None) -> dict:
    """What every grid task ends with: float top-1 on ``splits`` (and int8 top-1 when ``int8``), the
    model (and its int8 file) saved in ``out``, and a digest of the weights (equal digests:
    bit-identical models). ``clock`` gets laps 'evaluate' and 'int8: convert and evaluate'."""
    clock = clock or Clock()
    out.mkdir(parents=True, exist_ok=True)
    row = {f"{name}_top1": models.evaluate_keras(model, x, y)["top1"] for name, (x, y) in splits.items()}
    clock.lap("evaluate")
    if int8:
        rep = quantize.representative_dataset(x_train, representative_size, seed)
        row.update({f"int8_{k}": v for k, v in evaluate.int8_top1(model, out / "int8.tflite", rep, splits,
                                                                     num_classes).items()})
        clock.lap("int8: convert and evaluate")
    models.save_model(model, out / "student.keras")
    clock.lap("evaluate")
    return {**row, "weights_sha256": models.weights_digest(model)[:16], "model": str(out / "student.keras")}


def equal_time_epochs(epochs: int, student_ms: float, light_ms: float, heavy_ms: float) -> int:
    """Epochs the lighter teacher's student gets for the wall-clock the heavier teacher's student spends
    in ``epochs``, when the teacher runs online every step as in the entry (per image: a student
    training step plus a teacher forward pass), rounded to the nearest epoch."""
    return max(1, int(round(epochs * (student_ms + heavy_ms) / (student_ms + light_ms))))


def online_costs(student_path: Path, teacher_paths: dict, images, labels, n: int = 512, rounds: int = 5) -> dict:
    """Milliseconds per image, measured in this process on the same ``n`` images, the median of
    ``rounds`` rounds that alternate the measurements: one training epoch of the student (forward,
    backward, update) and each teacher's forward pass; what a step costs when the teacher runs
    online, as it did in the entry. Every file is loaded and traced once, before the rounds: a run pays
    that once, not per image."""
    x, y = images[:n], labels[:n]
    student = models.load_model(student_path)
    num_classes = student.output_shape[-1]
    student.compile(optimizer=keras.optimizers.Adam(1e-4), loss=distillation_loss(0.5, 4.0, num_classes))
    inputs = models.fit_inputs(x, pack_targets(y, None, num_classes), batch_size=128)
    student.fit(**inputs, epochs=1, verbose=0)                       # warm-up: traces the training step
    forwards = {name: evaluate.classifier_forward(path) for name, path in teacher_paths.items()}
    for forward in forwards.values():
        forward(x[:64])                                                # traces the forward pass once
    times: dict[str, list] = {"student training step": [], **{name: [] for name in teacher_paths}}
    for _ in range(rounds):
        t0 = time.perf_counter()
        student.fit(**inputs, epochs=1, verbose=0)
        times["student training step"].append(time.perf_counter() - t0)
        for name, forward in forwards.items():
            t0 = time.perf_counter()
            forward(x)
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) / len(x) * 1000 for k, v in times.items()}


def sweep(out_dir: Path, data_dir: Path, student_path: Path, logits_paths: dict[str, Path], *, alphas, seeds,
          temperature: float, epochs: int, batch_size: int, learning_rate: float, representative_size: int,
          init: str = "trained", int8: bool = False, equal_time: dict | None = None, scheduler: str | None = None,
          report: Path | None = None):
    """Every (alpha, teacher, seed) of the grid as a task on lpirc.grid; a DataFrame of rows.

    alpha = 0 ignores the teacher, so it is trained once per seed (teacher 'none'). ``equal_time`` =
    {"teacher", "alpha", "epochs"} adds that teacher's students trained for ``epochs`` (the heavier
    teacher's wall-clock, see :func:`equal_time_epochs`), marked budget 'equal wall-clock'. Every cell
    uses the same seeds, so a seed gives the same data order in every arm (paired differences). Every task
    writes its own folder, the equal wall-clock arm's too when its epochs equal the others' (``_wall``)."""
    cells = [(0.0, "none", epochs, "equal epochs")] + [(float(a), t, epochs, "equal epochs")
                                                         for t in logits_paths for a in alphas if a > 0]
    if equal_time:
        cells.append((float(equal_time["alpha"]), equal_time["teacher"], int(equal_time["epochs"]), "equal wall-clock"))
    points = [dict(out_dir=str(Path(out_dir) / (f"a{a:g}_{t}_e{e}_s{s}" + ("_wall" if b == "equal wall-clock" else ""))),
                   data_dir=str(data_dir),
                   student_path=str(student_path), logits_path=str(logits_paths[t]) if t != "none" else None,
                   alpha=a, teacher=t, seed=int(s), temperature=temperature, epochs=e, batch_size=batch_size,
                   learning_rate=learning_rate, representative_size=representative_size, init=init, int8=int8,
                   budget=b)
              for a, t, e, b in cells for s in seeds]
    return pd.DataFrame(run_grid(train_point, points, label="distillation", scheduler=scheduler, report=report))

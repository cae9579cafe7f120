"""The baseline chapter's grid (notebooks/01_baseline.ipynb): the student and its teachers, each
built from its spec (lpirc.weights: architecture and start), trained on labels with the project's
recipe (lpirc.models), or, for a ``frozen`` teacher, a pretrained classifier file used as it is.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from lpirc import data, weights
from lpirc.evaluate import classifier_logits
from lpirc.flatbuffer import size_of
from lpirc.grid import run_grid
from lpirc.models import count_macs, evaluate_keras, load_model, save_model, topk_accuracy, train_classifier
from lpirc.report import pct
from lpirc.results import atomic_path
from lpirc.runtime import set_seed


def train_point(*, out_path: str, data_dir: str, name: str, role: str, spec: dict, epochs: int, batch_size: int,
                learning_rate: float, seed: int) -> dict:
    """A pure task: build ``spec`` for the dataset in ``data_dir``, train it on labels with the project's
    recipe, evaluate it on val and holdout, save it at ``out_path``; one row with the training history."""
    if spec["arch"] == "frozen":
        return frozen_point(out_path=out_path, data_dir=data_dir, name=name, role=role, path=spec["path"])
    splits, classes = data.load_splits(Path(data_dir))
    (x_train, y_train), (x_val, y_val), (x_hold, y_hold) = splits["train"], splits["val"], splits["holdout"]
    set_seed(seed)
    model = weights.build(spec, len(classes), x_train.shape[1])
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
    src = Path(path)
    if not src.exists():
        raise FileNotFoundError(f"frozen teacher {name!r}: {src} does not exist")
    if src.suffix not in (".tflite", ".keras"):
        raise ValueError(f"frozen teacher {name!r}: expected a .tflite or .keras file, got {src}")
    splits, _ = data.load_splits(Path(data_dir), names=("val", "holdout"))
    acc = {}
    for split, (x, y) in splits.items():
        logits = classifier_logits(src, x)
        acc.update({f"{split}_top1": topk_accuracy(logits, y, 1), f"{split}_top5": topk_accuracy(logits, y, 5)})
    if src.suffix == ".tflite":
        params, macs = size_of(src)
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
    specs = [("student", "student", student, epochs)] + [(t["name"], "teacher", t, teacher_epochs) for t in teachers]
    points = [dict(out_path=str(Path(out_dir) / f"{name}.keras"), data_dir=str(data_dir), name=name, role=role,
                   spec={k: v for k, v in spec.items() if k != "name"}, epochs=n, batch_size=batch_size,
                   learning_rate=learning_rate, seed=seed) for name, role, spec, n in specs]
    return pd.DataFrame(run_grid(train_point, points, label="baseline"))

"""Knowledge distillation (Hinton et al. 2015) as the entry used it: two cross-entropies, mixed.

    loss = (1 - alpha) * CE(labels, student) + alpha * T^2 * CE(softmax(teacher / T), softmax(student / T))

alpha = 0 is plain training on labels; alpha = 1 learns from the teacher alone. The T^2 factor
keeps the soft term's gradients on the same scale as the hard term's when T changes.

Teacher logits are computed once per (teacher file, images) and cached on disk, so a sweep over
alpha, temperature and seeds never runs a teacher twice.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lpirc.models import keras


def distillation_loss(alpha: float, temperature: float, num_classes: int):
    """A Keras loss over y_true = [label, teacher logits...] (shape (batch, 1 + num_classes))."""
    import tensorflow as tf

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
    """Top-1 against the label column of packed targets."""
    import tensorflow as tf

    def top1(y_true, logits):
        labels = tf.cast(y_true[:, 0], tf.int64)
        return tf.cast(tf.equal(tf.argmax(logits, axis=-1), labels), tf.float32)
    return top1


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray | None, num_classes: int) -> np.ndarray:
    """[label, teacher logits] rows; zeros stand in for the teacher when alpha = 0."""
    if teacher_logits is None:
        teacher_logits = np.zeros((len(labels), num_classes), np.float32)
    return np.concatenate([labels[:, None].astype(np.float32), teacher_logits.astype(np.float32)], axis=1)


# --------------------------------------------------------------------------------------------------
# teacher-logit cache
def cache_key(teacher_path: Path, images: np.ndarray) -> str:
    from lpirc.data import array_digest

    h = hashlib.sha256()
    h.update(Path(teacher_path).read_bytes())
    h.update(array_digest(images).encode())
    h.update(str(images.shape).encode())
    return h.hexdigest()[:24]


def teacher_logits(teacher_path: Path, images: np.ndarray, cache_dir: Path) -> tuple[np.ndarray, bool]:
    """(logits, cache_hit). Keyed by the teacher file's bytes and the images' bytes."""
    from lpirc.models import load_model, predict_logits
    from lpirc.results import atomic_path

    cache_dir = Path(cache_dir)
    path = cache_dir / f"{Path(teacher_path).stem}-{cache_key(teacher_path, images)}.npy"
    if path.exists():
        return np.load(path), True
    logits = predict_logits(load_model(teacher_path), images).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, logits)
    return logits, False


# --------------------------------------------------------------------------------------------------
def train_student(model: keras.Model, x_train, y_train, logits_train, *, alpha: float, temperature: float,
                  epochs: int, batch_size: int = 128, learning_rate: float = 1e-2, verbose: int = 2) -> dict:
    """Train ``model`` (logits out) on the mixed loss with the project's recipe (models.fit_cosine)."""
    from lpirc.models import fit_cosine

    num_classes = model.output_shape[-1]
    if alpha > 0 and logits_train is None:
        raise ValueError("alpha > 0 needs teacher logits")
    targets = pack_targets(y_train, logits_train if alpha > 0 else None, num_classes)
    return fit_cosine(model, x_train, targets, loss=distillation_loss(alpha, temperature, num_classes),
                      metrics=[label_top1()], epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, verbose=verbose)


def paired_tests(frame, value: str, group: str, pair_on: str, reference=None) -> list[dict]:
    """Paired t-tests of each group against ``reference`` (default: the best mean), paired on seeds."""
    from scipy import stats

    wide = frame.pivot_table(index=pair_on, columns=group, values=value)
    means = wide.mean()
    ref = reference if reference is not None else means.idxmax()
    out = []
    for g in wide.columns:
        if g == ref:
            continue
        pair = wide[[ref, g]].dropna()
        diff = pair[ref] - pair[g]
        if len(pair) >= 2 and diff.std(ddof=1) > 0:
            res = stats.ttest_rel(pair[ref], pair[g])
            p = float(res.pvalue)
        else:
            p = float("nan")
        out.append({"reference": ref, "other": g, "mean_difference": float(diff.mean()), "n_pairs": int(len(pair)),
                    "p_value": p})
    return out

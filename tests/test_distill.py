from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lpirc import distill, models, runtime


def _loss(alpha, t, labels, student, teacher):
    fn = distill.distillation_loss(alpha, t, student.shape[1])
    y = distill.pack_targets(labels, teacher, student.shape[1])
    return fn(tf.constant(y), tf.constant(student)).numpy()


def test_alpha_zero_is_plain_cross_entropy():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(16, 10)).astype(np.float32)
    t = rng.normal(size=(16, 10)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    plain = tf.keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True).numpy()
    np.testing.assert_allclose(_loss(0.0, 4.0, y, s, t), plain, rtol=1e-5)


def test_alpha_one_soft_term_is_minimal_when_student_equals_teacher():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(32, 10)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    at_teacher = _loss(1.0, 3.0, y, t, t)
    for _ in range(5):
        other = t + rng.normal(scale=0.5, size=t.shape).astype(np.float32)
        assert np.all(at_teacher <= _loss(1.0, 3.0, y, other, t) + 1e-6)
    # and the minimum is T^2 times the teacher's softened entropy
    p = tf.nn.softmax(t / 3.0).numpy()
    entropy = -(p * np.log(p)).sum(1)
    np.testing.assert_allclose(at_teacher, 9.0 * entropy, rtol=1e-4)


def test_teacher_logit_cache_hits_and_misses(tmp_path):
    runtime.set_seed(0)
    teacher = models.mobilenet_v1(0.25, 32, 10)
    path = tmp_path / "teacher.keras"
    models.save_model(teacher, path)
    images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    a, hit1 = distill.teacher_logits(path, images, tmp_path / "cache")
    b, hit2 = distill.teacher_logits(path, images, tmp_path / "cache")
    assert (hit1, hit2) == (False, True) and np.array_equal(a, b) and a.shape == (20, 10)
    changed = images.copy()
    changed[0, 0, 0, 0] ^= 1
    _, hit3 = distill.teacher_logits(path, changed, tmp_path / "cache")
    assert hit3 is False


def test_alpha_needs_teacher():
    m = models.mobilenet_v1(0.25, 32, 3)
    x = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="teacher logits"):
        distill.train_student(m, x, np.zeros(4, np.int64), None, alpha=0.5, temperature=2.0, epochs=1)


def test_equal_time_epochs_charges_the_teacher_online():
    # student step 1 ms/image; teachers 0.4 and 1.4 ms: 3 heavy epochs cost 7.2 ms/image, 5.14 light epochs
    assert distill.equal_time_epochs(3, 1.0, 0.4, 1.4) == 5
    assert distill.equal_time_epochs(3, 1.0, 0.5, 0.5) == 3
    assert distill.equal_time_epochs(1, 10.0, 0.0, 0.1) == 1


def test_online_costs_load_and_trace_each_file_once(tmp_path, monkeypatch):
    """A teacher's cost per image is its forward pass: loading the file (and tracing the first call) is
    paid once per run, so it is done before the timed rounds, not inside each (it was: the load then
    outweighed a small teacher's forward pass and skewed the equal wall-clock budget)."""
    from lpirc import weights

    files = {}
    for name, width in (("student", 0.25), ("teacher", 0.5)):
        files[name] = tmp_path / f"{name}.keras"
        models.save_model(weights.build({"arch": "mobilenet_v1", "width_multiplier": width}, classes=10, resolution=32),
                          files[name])
    loaded = []
    load = models.load_model
    monkeypatch.setattr(models, "load_model", lambda path, *a, **k: loaded.append(Path(path).name) or load(path, *a, **k))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 64)
    costs = distill.online_costs(files["student"], {"teacher": files["teacher"]}, x, y, n=64, rounds=3)
    assert sorted(loaded) == ["student.keras", "teacher.keras"]
    assert set(costs) == {"student training step", "teacher"} and all(v > 0 for v in costs.values())


def test_every_sweep_task_writes_its_own_folder(monkeypatch, tmp_path):
    """The equal wall-clock arm can get as many epochs as the others (the lighter teacher's budget rounds
    to them): its tasks must still write folders of their own, not the equal-epochs tasks' folders."""
    seen = []
    monkeypatch.setattr(distill, "run_grid", lambda fn, points, **kw: seen.extend(points) or [])
    distill.sweep(tmp_path, tmp_path / "data", tmp_path / "student.keras", {"light": tmp_path / "l.npy",
                  "heavy": tmp_path / "h.npy"}, alphas=[0.0, 0.5], seeds=[0, 1], temperature=4.0, epochs=3,
                  batch_size=8, learning_rate=0.01, representative_size=4,
                  equal_time={"teacher": "light", "alpha": 0.5, "epochs": 3})
    folders = [p["out_dir"] for p in seen]
    assert len(seen) == 2 + 2 * 2 + 2 and len(set(folders)) == len(folders)
    assert sum(p["budget"] == "equal wall-clock" for p in seen) == 2


def test_a_student_trains_with_one_trace_of_its_training_step():
    """The distillation loss and label top-1 make no variable inside the first training step, so the step
    is traced once (a bare-function metric made Keras create its variables there: a second trace, about
    1.5 s of each small grid task)."""
    from conftest import colour_images, colour_model
    from test_models import one_device

    one_device()
    x, y = colour_images(12, 16)
    model = colour_model(16, 3, background=False)
    logits = np.random.default_rng(0).normal(size=(len(y), 3)).astype(np.float32)
    fit = distill.train_student(model, x, y, logits, alpha=0.5, temperature=4.0, epochs=2, batch_size=10, verbose=0)
    assert model.train_function.experimental_get_tracing_count() == 1
    assert set(fit["history"]) == {"loss", "top1"} and len(fit["history"]["top1"]) == 2

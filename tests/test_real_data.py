"""The real-ImageNet path on files the tests make: streaming input, pretrained weights imported from a
float .tflite and `lpirc eval` on .keras and .tflite. Training on two logical CPU devices
(MirroredStrategy) is tests/test_runtime.py; the whole imagenet profile runs in
tests/test_imagenet_profile.py."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lpirc import evaluate, loaders, models, stream, weights


def jpeg_tree(root, n_per_class: int, classes: int = 3, seed: int = 0, sizes=((48, 64), (80, 60), (100, 100))):
    """ILSVRC-style tree: train/<class>/<img>.JPEG, val/ (flat) with val.txt, pool/ (unlabeled);
    JPEGs of several sizes, each class a different mean colour so a model can learn it."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "pool"):
        (root / split).mkdir(parents=True, exist_ok=True)
    lines = []
    for c in range(classes):
        (root / "train" / f"n{c:08d}").mkdir(exist_ok=True)
        for i in range(n_per_class):
            h, w = sizes[(i + c) % len(sizes)]
            base = np.zeros((h, w, 3)) + 255 * np.eye(3)[c % 3] * 0.8
            img = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "train" / f"n{c:08d}" / f"{c}_{i}.JPEG", quality=90)
            if i % 4 == 0:
                name = f"ILSVRC2012_val_{len(lines) + 1:08d}.JPEG"
                Image.fromarray(img[::-1]).save(root / "val" / name, quality=90)
                lines.append(f"{name} {c}")
                Image.fromarray(img[:, ::-1]).save(root / "pool" / f"p{c}_{i}.jpg", quality=90)
    (root / "val" / "val.txt").write_text("\n".join(lines) + "\n")
    return root


def randomize_batchnorm(model, seed=0):
    """Non-trivial BatchNorm statistics, so folding them into the convolutions is really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, models.keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.5, 2.0, n)])
    return model


def float_tflite(model, path):
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


@pytest.fixture(scope="module")
def published_like(tmp_path_factory):
    """A float MobileNet v1 .tflite shaped like TF-slim's published files (1001 classes, background first)."""
    d = tmp_path_factory.mktemp("tflite")
    m = randomize_batchnorm(models.mobilenet_v1(0.25, 64, 1001))
    return float_tflite(m, d / "mobilenet_v1_0.25_64.tflite")


def test_import_weights_reproduces_the_tflite(published_like, tmp_path, root):
    out = tmp_path / "imported.keras"
    r = subprocess.run([sys.executable, "-m", "lpirc", "import-weights", str(published_like), "--out", str(out)],
                       capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "MobileNet v1 0.25 @64, 1001 classes" in r.stdout
    model = models.load_model(out)
    from lpirc.data import to_model_input
    from lpirc.tflite import TFLiteClassifier

    x = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    keras_out = model.predict_on_batch(to_model_input(x))
    tflite_out = TFLiteClassifier(published_like).logits(x)
    assert np.abs(keras_out - tflite_out).max() < 1e-4
    assert np.abs(tflite_out).max() > 1e-2  # the comparison is not between two near-zero outputs


def test_weights_parameter_starts_from_the_file(published_like):
    """`weights: PATH` on a spec: the 1001-way file on 1000-class data loses its background output."""
    spec = {"arch": "mobilenet_v1", "width_multiplier": 0.25, "weights": str(published_like)}
    m = weights.build(spec, classes=1000, resolution=64)
    imported = weights.import_tflite(published_like)
    np.testing.assert_array_equal(m.get_layer("logits").get_weights()[0],
                                  imported.get_layer("logits").get_weights()[0][:, 1:])
    np.testing.assert_array_equal(m.get_layer("conv_pw_5").get_weights()[0],
                                  imported.get_layer("conv_pw_5").get_weights()[0])
    with pytest.raises(weights.WeightsError, match="the data needs 96x96"):
        weights.build(spec, classes=1000, resolution=96)
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.build({**spec, "weights": "/nowhere/m.tflite"}, classes=1000, resolution=64)


def test_import_refuses_quantized_and_foreign_files(tmp_path):
    """A quantized file (int8 input) is refused before its operators are read: a small network's int8 file
    shows it as well as a quantized MobileNet's, and converts in a fraction of the time."""
    import tensorflow as tf
    from conftest import colour_model, convert_tiny

    quantized = convert_tiny(colour_model(16, 3, background=False), "int8", tmp_path / "q.tflite", io_type=tf.int8)
    with pytest.raises(weights.WeightsError, match="float"):
        weights.import_tflite(quantized)
    r = float_tflite(models.resnet(8, 8, 32, 10), tmp_path / "r.tflite")
    with pytest.raises(weights.WeightsError, match="not a MobileNet v1"):
        weights.import_tflite(r)


def test_eval_agrees_on_keras_and_tflite(published_like, tmp_path, root):
    tree = jpeg_tree(tmp_path / "data", 8)
    keras_path = tmp_path / "m.keras"
    weights.import_to_keras(published_like, keras_path)
    results = {}
    for path in (keras_path, published_like):
        out = tmp_path / f"{path.suffix[1:]}.json"
        r = subprocess.run([sys.executable, "-m", "lpirc", "eval", str(path), "--data", str(tree / "val"),
                            "--labels", str(tree / "val" / "val.txt"), "--preprocess", "inception",
                            "--json", str(out), "--quiet"], capture_output=True, text=True, cwd=root, timeout=300)
        assert r.returncode == 0, r.stderr
        results[path.suffix] = json.loads(out.read_text())
    k, t = results[".keras"], results[".tflite"]
    assert k["n"] == t["n"] == 6 and k["preprocess"] == "inception"
    assert (k["top1"], k["top5"]) == (t["top1"], t["top5"])
    lst = loaders.read_ilsvrc(tree / "val", tree / "val" / "val.txt")
    sk, _, _ = evaluate.folder_scores(keras_path, lst, preprocess="inception")
    st, _, _ = evaluate.folder_scores(published_like, lst, preprocess="inception")
    assert np.abs(sk - st).max() < 1e-4


def test_preprocessing_recipes(tmp_path):
    """inception keeps the central 87.5% and resizes; resize_crop resizes the shorter side to S / 0.875
    and keeps the centre; the training crop is random but repeatable for a seed."""
    import tensorflow as tf

    img = np.zeros((80, 160, 3), np.uint8)
    img[:, :80] = 255                                   # left half white
    Image.fromarray(img).save(tmp_path / "a.png")
    decoded = stream.decode(str(tmp_path / "a.png"))
    inc = stream.eval_image(decoded, 32, "inception").numpy()
    rc = stream.eval_image(decoded, 32, "resize_crop").numpy()
    assert inc.shape == rc.shape == (32, 32, 3)
    assert inc[:, :14].min() == 255 and inc[:, 18:].max() == 0   # the 87.5% crop squeezed to 32 wide
    assert rc[:, :14].min() > 240 and rc[:, 18:].max() < 15     # 80x160 -> 37x74, columns 21..52 kept
    seed = tf.constant([3, 4], tf.int64)
    a, b = stream.train_image(decoded, 24, seed), stream.train_image(decoded, 24, seed)
    c = stream.train_image(decoded, 24, tf.constant([5, 6], tf.int64))
    assert np.array_equal(a, b) and a.shape == (24, 24, 3)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="preprocess must be one of"):
        stream.check_preprocess("centre")


def test_corrupt_images_are_counted_or_named(tmp_path, published_like):
    tree = jpeg_tree(tmp_path / "data", 4)
    (tree / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"not a jpeg")
    lst = loaders.read_ilsvrc(tree / "val", tree / "val" / "val.txt")
    scores, labels, skipped = evaluate.folder_scores(published_like, lst, skip_corrupt=True)
    assert skipped == 1 and len(labels) == len(lst.paths) - 1
    with pytest.raises(loaders.DataError, match=r"ILSVRC2012_val_00000001\.JPEG .*skip_corrupt: true"):
        evaluate.folder_scores(published_like, lst)


def test_eval_names_a_truncated_jpeg_and_the_flag(tmp_path, root):
    """`lpirc eval` on class folders holding one truncated JPEG stops naming that file and the command's
    flag (not the profile key); the streaming pipeline's own message (jpeg::Uncompress failed) names none."""
    from conftest import colour_model

    tree = jpeg_tree(tmp_path / "data", 4)
    bad = tree / "train" / "n00000001" / "1_2.JPEG"
    bad.write_bytes(bad.read_bytes()[:300])
    model = tmp_path / "colour.keras"
    colour_model(32, 3, background=False).save(model)
    r = subprocess.run([sys.executable, "-m", "lpirc", "eval", str(model), "--data", str(tree / "train"), "--quiet"],
                       capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 2, r.stderr
    assert f"cannot decode image {bad} " in r.stderr and "pass --skip-corrupt" in r.stderr, r.stderr
    assert "skip_corrupt:" not in r.stderr


def test_data_rate_measures_the_pipeline(tmp_path, root):
    """`lpirc data rate` times decode + preprocessing alone. (Memory that does not grow with the number
    of images is tested on the streaming steps of the imagenet profile: tests/test_imagenet_profile.py.)"""
    tree = jpeg_tree(tmp_path / "data", 20, sizes=((300, 400), (375, 500)))
    r = subprocess.run([sys.executable, "-m", "lpirc", "data", "rate", str(tree / "train"), "--size", "64",
                        "--batch-size", "8"],
                       capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0 and "images/s (training preprocessing, 64 px" in r.stdout, r.stderr

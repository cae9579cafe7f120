"""Evaluating TFLite classifiers whose right answers the test knows (dominant-colour models)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import colour_images, colour_model, convert_tiny
from lpirc import evaluate, tflite


@pytest.fixture(scope="module")
def images():
    return colour_images(10, 16)


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_project_models_score_perfectly(tmp_path, images, mode):
    x, y = images
    path = convert_tiny(colour_model(16, 3, background=False), mode, tmp_path / f"m_{mode}.tflite")
    res = evaluate.evaluate_arrays(path, x, y, num_classes=3)
    assert res["top1"] == 1.0 and res["n"] == 30
    clf = tflite.TFLiteClassifier(path)
    assert clf.input_dtype == (np.float32 if mode == "float32" else np.int8)


def test_uint8_model_with_background_class_and_other_input_size(tmp_path, images):
    x, y = images                                     # 16x16 images, model takes 24x24
    path = convert_tiny(colour_model(24, 4, background=True), "int8", tmp_path / "u8.tflite", io_type=tf.uint8)
    clf = tflite.TFLiteClassifier(path)
    assert clf.input_dtype == np.uint8 and clf.num_outputs == 4 and clf.height == 24
    res = evaluate.evaluate_arrays(path, x, y, num_classes=3)   # 4 outputs = background + 3
    assert res["top1"] == 1.0


def test_output_count_mismatch_is_explained(tmp_path, images):
    x, y = images
    path = convert_tiny(colour_model(16, 7, background=False), "float32", tmp_path / "m7.tflite")
    with pytest.raises(evaluate.ModelFileError, match="7 outputs but the data has 3 classes"):
        evaluate.evaluate_arrays(path, x, y, num_classes=3)


def test_cli_eval_third_party_uint8_1001_on_ilsvrc_folder(tmp_path, root):
    """A file the project did not produce: uint8 I/O, 1001 outputs, 40x40 input, over an ILSVRC folder."""
    path = convert_tiny(colour_model(40, 1001, background=True), "int8", tmp_path / "third_party.tflite",
                        io_type=tf.uint8)
    folder = tmp_path / "val"
    folder.mkdir()
    x, y = colour_images(4, 64, seed=3)
    lines = []
    for i, (img, label) in enumerate(zip(x, y), start=1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        Image.fromarray(img).save(folder / name, quality=95)
        lines.append(f"{name} {label}")
    (folder / "val.txt").write_text("\n".join(lines))
    out = tmp_path / "result.json"
    r = subprocess.run([sys.executable, "-m", "lpirc", "eval", str(path), "--data", str(folder),
                        "--labels", str(folder / "val.txt"), "--json", str(out), "--quiet"],
                       capture_output=True, text=True, cwd=root, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "top-1 1.0000" in r.stdout
    result = json.loads(out.read_text())
    assert result["n"] == 12 and result["model_io"]["input_dtype"] == "uint8"
    assert result["layout"] == "ilsvrc"


def test_not_a_flatbuffer(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_text("hello world, not a model")
    with pytest.raises(tflite.ModelFileError, match="not a TFLite flatbuffer"):
        tflite.TFLiteClassifier(p)

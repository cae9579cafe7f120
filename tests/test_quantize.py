import numpy as np
import pytest

from conftest import colour_images
from lpirc import conversion, models, quantize, runtime, tflite


@pytest.fixture(scope="module")
def tiny_trained():
    runtime.set_seed(0)
    x, y = colour_images(40, 32)
    m = models.mobilenet_v1(0.25, 32, 3)
    models.train_classifier(m, x, y, x, y, epochs=1, batch_size=32, verbose=0)
    return m, x, y


@pytest.mark.parametrize("mode", conversion.MODES)
def test_post_training_modes(tmp_path, tiny_trained, mode):
    m, x, y = tiny_trained
    rep = conversion.representative_dataset(x, 16)
    conv = conversion.convert(m, mode, tmp_path / f"{mode}.tflite", rep if mode == "int8" else None)
    assert conv.path.exists() and conv.size_bytes == conv.path.stat().st_size and conv.convert_s > 0
    clf = tflite.TFLiteClassifier(conv.path)
    assert clf.input_dtype == (np.int8 if mode == "int8" else np.float32)
    assert clf.logits(x[:4]).shape == (4, 3)


def test_int8_needs_representative(tmp_path, tiny_trained):
    with pytest.raises(ValueError, match="representative"):
        conversion.convert(tiny_trained[0], "int8", tmp_path / "x.tflite")


def test_qat_then_int8(tmp_path, tiny_trained):
    m, x, y = tiny_trained
    qat, rec = quantize.train_qat(m, x, y, x, y, epochs=1, batch_size=32, verbose=0)
    assert any("quant" in layer.name for layer in qat.layers)
    conv = conversion.convert(qat, "int8", tmp_path / "qat.tflite", conversion.representative_dataset(x, 16))
    assert tflite.TFLiteClassifier(conv.path).input_dtype == np.int8
    # the int8 file agrees with the fake-quantized Keras model on most predictions
    keras_pred = np.argmax(models.predict_logits(qat, x), 1)
    tfl_pred = np.argmax(tflite.TFLiteClassifier(conv.path).logits(x), 1)
    assert np.mean(keras_pred == tfl_pred) > 0.9

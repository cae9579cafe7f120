"""Where training runs (lpirc.runtime): one device by default, every device when there are several.

Two logical CPU devices stand in for two GPUs: MirroredStrategy runs the same code path on them. The
chapters' four trainings are checked on them, in a fresh process (devices are fixed once TensorFlow
starts): the recipe's fit on a streamed split (baseline), per-layer fine-tuning (factorization), QAT
(quantization) and distillation; each trains on both devices and leaves its result in the model the
caller holds. The model is a MobileNet v1 in miniature (one depthwise-separable block, the same layer
kinds and names) on 24 images of 16 px: what is tested is where the trainings run, and a small graph
traces quickly on two devices.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from test_real_data import jpeg_tree

TWO_DEVICES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]           # before TensorFlow starts its devices
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from lpirc import distill, factorize, loaders, models, quantize, runtime, stream

    keras = models.keras
    def tiny_mobilenet(classes, size):
        inputs = keras.Input((size, size, 3), name="input")
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
        x = keras.layers.BatchNormalization(name="conv1_bn")(x)
        x = keras.layers.ReLU(6.0, name="conv1_relu")(x)
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="conv_dw_1")(x)
        x = keras.layers.BatchNormalization(name="conv_dw_1_bn")(x)
        x = keras.layers.ReLU(6.0, name="conv_dw_1_relu")(x)
        x = keras.layers.Conv2D(16, 1, use_bias=False, name="conv_pw_1")(x)
        x = keras.layers.BatchNormalization(name="conv_pw_1_bn")(x)
        x = keras.layers.ReLU(6.0, name="conv_pw_1_relu")(x)
        x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        return keras.Model(inputs, keras.layers.Dense(classes, name="logits")(x))

    used = []                                                  # the devices of every training
    fit_on_strategy = models.compile_and_fit
    def spy(*args, **kwargs):
        history, devices = fit_on_strategy(*args, **kwargs)
        used.append(devices)
        return history, devices
    models.compile_and_fit = spy

    def changed(before, model):
        return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    runtime.set_seed(0)
    out = {"strategy": type(runtime.strategy()).__name__}
    lst = loaders.read_image_folder(sys.argv[1])
    train = stream.FolderSplit(lst.paths, lst.labels, 16)
    model = tiny_mobilenet(len(lst.classes), 16)
    before = model.get_weights()
    rec = models.train_classifier(model, train, lst.labels, train, lst.labels, epochs=2, batch_size=8, verbose=0)
    out["fit"] = {"changed": changed(before, model), "loss": rec["history"]["loss"], "devices": rec["devices"]}

    x = np.asarray(train)
    y = lst.labels
    tuned, _, log = factorize.finetune_layerwise(model, ["conv_pw_1"], factorize.RankSpec(fraction=0.25), x, y,
                                                 x, y, epochs_per_layer=1, batch_size=8, verbose=0)
    init, _ = factorize.factorize(model, {"conv_pw_1": factorize.RankSpec(fraction=0.25)})
    out["finetune"] = {"changed": changed(init.get_weights(), tuned), "devices": used[-1]}

    qat, rec = quantize.train_qat(model, x, y, x, y, epochs=1, batch_size=8, verbose=0)
    fresh = quantize.quantization_aware(model)
    out["qat"] = {"changed": changed(fresh.get_weights(), qat), "devices": rec["devices"]}

    before = model.get_weights()
    logits = models.predict_logits(model, x)
    rec = distill.train_student(model, x, y, logits, alpha=0.5, temperature=2.0, epochs=1, batch_size=8, verbose=0)
    out["distill"] = {"changed": changed(before, model), "devices": rec["devices"]}
    out["calls"] = [d["strategy"] for d in used]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_every_training_runs_on_both_devices(tmp_path, root):
    tree = jpeg_tree(tmp_path / "data", 8)
    r = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(tree / "train")], capture_output=True, text=True,
                       cwd=root, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["strategy"] == "MirroredStrategy"
    for training in ("fit", "finetune", "qat", "distill"):
        devices = rec[training]["devices"]
        assert devices["strategy"] == "MirroredStrategy" and devices["replicas"] == 2, training
        assert len(devices["training_devices"]) == 2, training
        assert rec[training]["changed"], f"{training}: the trained weights did not reach the caller's model"
    assert rec["calls"] == ["MirroredStrategy"] * 4               # fit, one fine-tuned layer, QAT, distillation
    assert all(np.isfinite(rec["fit"]["loss"]))


def test_one_device_trains_under_the_default_strategy():
    """Without a second device the recipe is plain compile and fit (the default book, bit for bit). In
    this process, which never splits its CPU: one device."""
    from conftest import colour_model

    from lpirc import models, runtime

    runtime.set_seed(0)
    m = colour_model(16, 3, background=False)
    x = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    y = np.arange(16) % 3
    rec = models.train_classifier(m, x, y, x, y, epochs=1, batch_size=8, verbose=0)
    devices = rec["devices"]
    assert devices["replicas"] == 1 and devices["strategy"] != "MirroredStrategy"

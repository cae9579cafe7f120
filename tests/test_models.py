import numpy as np
import pytest

from lpirc import models, weights


def test_mobilenet_v1_matches_published_size_and_compute():
    m = models.mobilenet_v1(1.0, 224, 1000)
    assert m.count_params() == 4_253_864          # Keras applications' MobileNet: 4.2M
    assert round(models.count_macs(m) / 1e6) == 569  # published 569M MACs


@pytest.mark.parametrize("alpha,res,mmacs", [(1.0, 160, 291), (0.5, 128, 49), (0.25, 128, 14)])
def test_mobilenet_v1_macs_grid(alpha, res, mmacs):
    assert round(models.count_macs(models.mobilenet_v1(alpha, res, 1001)) / 1e6) == mmacs


def test_layer_names_follow_keras_applications():
    names = [layer.name for layer in models.mobilenet_v1(0.25, 32, 10).layers]
    for i in range(1, 14):
        for suffix in ("", "_bn", "_relu"):
            assert f"conv_dw_{i}{suffix}" in names and f"conv_pw_{i}{suffix}" in names
    assert names[1] == "conv1" and names[-1] == "logits"


def test_teachers_build_and_differ_in_size():
    small = weights.build({"arch": "resnet", "depth": 8, "width": 16}, 10, 32)
    big = weights.build({"arch": "mobilenet_v1", "width_multiplier": 1.0}, 10, 32)
    assert small.count_params() < big.count_params()
    with pytest.raises(ValueError, match="6n\\+2"):
        models.resnet(depth=9)
    with pytest.raises(ValueError, match="unknown arch"):
        weights.build({"arch": "vgg"}, 10, 32)


def one_device():
    """The tests reading the trained model's own traced functions: with several devices a copy trains."""
    from lpirc import runtime

    if runtime.strategy().num_replicas_in_sync > 1:
        pytest.skip("several devices: compile_and_fit trains a copy of the model")


def scrambled_colour_model(size: int, seed: int):
    """The colour model (:func:`conftest.colour_model`) with a random dense layer: it starts wrong on some
    images, so its accuracies are neither 0 nor 1 and training changes them."""
    from conftest import colour_model

    model = colour_model(size, 3, background=False)
    rng = np.random.default_rng(seed)
    model.get_layer("logits").set_weights([rng.normal(0, 2, (3, 3)).astype(np.float32), np.zeros(3, np.float32)])
    return model


def test_validation_top1_comes_from_the_predictions_without_a_test_graph():
    """fit_cosine's per-epoch validation top-1 is the top-1 evaluate_keras gives on the validation images
    after training, from the prediction function (traced once, reused by that evaluation); Keras' test
    step is never traced. Images and labels of different lengths are refused."""
    from conftest import colour_images
    from lpirc import runtime

    one_device()
    x, y = colour_images(20, 16)
    train, val = slice(0, None, 2), slice(1, None, 2)
    runtime.set_seed(0)
    model = scrambled_colour_model(16, seed=4)
    fit = models.train_classifier(model, x[train], y[train], x[val], y[val], epochs=3, batch_size=10,
                                  learning_rate=0.5, verbose=0)
    curve, after = fit["history"]["val_top1"], models.evaluate_keras(model, x[val], y[val])["top1"]
    assert len(curve) == 3 and "val_loss" not in fit["history"]
    assert curve[-1] == after and 0 < after < 1 and len(set(curve)) > 1      # the curve moved with training
    assert model.test_function is None and model.predict_function is not None
    with pytest.raises(ValueError, match="30 images but 29 labels"):
        models.train_classifier(model, x[train], y[train], x[val], y[val][:-1], epochs=1, verbose=0)


def test_the_training_step_is_traced_once_and_trains_as_plain_keras():
    """compile_and_fit builds the optimizer before fit, so TensorFlow traces the training step once (made
    inside the first step, Adam's moments cost a second trace); the weights equal plain compile and fit's,
    and training changed them."""
    import tf_keras as keras

    from conftest import colour_images
    from lpirc import runtime

    one_device()
    x, y = colour_images(12, 16)
    trained = {}
    for how in ("plain", "project"):
        runtime.set_seed(0)
        model = scrambled_colour_model(16, seed=0)
        start = models.weights_digest(model)
        args = dict(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
        fit = dict(x=models.to_model_input(x), y=y, batch_size=10, epochs=2, shuffle=True, verbose=0)
        if how == "plain":
            model.compile(**args)
            model.fit(**fit)
        else:
            models.compile_and_fit(model, **args, **fit)
            assert model.train_function.experimental_get_tracing_count() == 1
        trained[how] = models.weights_digest(model)
        assert trained[how] != start
    assert trained["plain"] == trained["project"]

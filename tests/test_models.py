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


def test_validation_top1_comes_from_the_predictions_without_a_test_graph():
    """fit_cosine's per-epoch validation top-1 is the top-1 evaluate_keras gives after training, from the
    prediction function (traced once, reused by that evaluation); Keras' test step is never traced."""
    from conftest import colour_images, colour_model

    x, y = colour_images(12, 16)
    model = colour_model(16, 3, background=False)
    fit = models.train_classifier(model, x, y, x[::2], y[::2], epochs=2, batch_size=12, verbose=0)
    assert len(fit["history"]["val_top1"]) == 2 and "val_loss" not in fit["history"]
    assert fit["history"]["val_top1"][-1] == models.evaluate_keras(model, x[::2], y[::2])["top1"]
    assert model.test_function is None and model.predict_function is not None


def test_the_training_step_is_traced_once_and_trains_as_plain_keras():
    """compile_and_fit builds the optimizer before fit, so TensorFlow traces the training step once (made
    inside the first step, Adam's moments cost a second trace); the weights equal plain compile and fit's."""
    import tf_keras as keras

    from conftest import colour_images, colour_model
    from lpirc import runtime

    x, y = colour_images(12, 16)
    trained = {}
    for how in ("plain", "project"):
        runtime.set_seed(0)
        model = colour_model(16, 3, background=False)
        args = dict(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
        fit = dict(x=models.to_model_input(x), y=y, batch_size=10, epochs=2, shuffle=True, verbose=0)
        if how == "plain":
            model.compile(**args)
            model.fit(**fit)
        else:
            models.compile_and_fit(model, **args, **fit)
            assert model.train_function.experimental_get_tracing_count() == 1
        trained[how] = models.weights_digest(model)
    assert trained["plain"] == trained["project"]

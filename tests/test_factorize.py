import numpy as np
import pandas as pd
import pytest

from lpirc import factorize as F
from lpirc import models, runtime


def weights_by_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}


@pytest.fixture(scope="module")
def student():
    runtime.set_seed(0)
    m = models.mobilenet_v1(0.25, 32, 10)
    rng = np.random.default_rng(0)
    for layer in m.layers:   # non-trivial batch-norm statistics, so exactness is tested for real
        if layer.name.endswith("_bn"):
            layer.set_weights([w + rng.uniform(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return m


def test_full_rank_reproduces_the_model(student):
    x = np.random.default_rng(1).uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    names = F.pointwise_layers(student)[-9:]
    fm, info = F.factorize(student, {n: F.RankSpec(fraction=1.0) for n in names})
    out, ref = fm.predict(x, verbose=0), student.predict(x, verbose=0)
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5
    assert all(i["rank"] == min(i["n_in"], i["n_out"]) for i in info.values())


def test_rank_specs_and_mac_arithmetic(student):
    assert F.RankSpec(fraction=0.5).resolve(64, 128) == 32
    assert F.RankSpec(rank=500).resolve(64, 128) == 64
    s = np.array([3.0, 2.0, 1.0, 0.1])
    assert F.RankSpec(energy=0.9).resolve(4, 4, s) == 2       # 13/14.01 > 0.9 after two values
    assert F.break_even_rank(1024, 1024) == 512
    assert F.pointwise_macs(5, 5, 1024, 1024, rank=256) < F.pointwise_macs(5, 5, 1024, 1024)
    with pytest.raises(ValueError):
        F.RankSpec(fraction=1.5)
    with pytest.raises(ValueError):
        F.RankSpec(rank=2, fraction=0.5)
    fm, info = F.factorize(student, {"conv_pw_13": 16})
    i = info["conv_pw_13"]
    assert i["macs_after"] == 1 * 1 * 16 * (256 + 256)
    assert models.count_macs(fm) == models.count_macs(student) - i["macs_before"] + i["macs_after"]
    assert fm.count_params() == student.count_params() - 256 * 256 + 16 * 512


def test_finetune_changes_only_the_factorized_layer(student):
    x = np.random.default_rng(2).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    y = np.random.default_rng(3).integers(0, 10, 64)
    before = weights_by_layer(student)
    tuned, info, log = F.finetune_layerwise(student, ["conv_pw_13"], F.RankSpec(fraction=0.25), x, y, x, y,
                                            epochs_per_layer=1, learning_rate=0.05, batch_size=16, verbose=0)
    init, _ = F.factorize(student, {"conv_pw_13": F.RankSpec(fraction=0.25)})
    after = weights_by_layer(tuned)
    for name, weights in before.items():
        if name == "conv_pw_13":
            continue
        for a, b in zip(after[name], weights):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} changed")   # BN statistics included
    changed = [not np.array_equal(after[n][0], init.get_layer(n).get_weights()[0]) for n in ("conv_pw_13_a", "conv_pw_13_b")]
    assert all(changed)
    assert log[0]["layer"] == "conv_pw_13" and log[0]["rank"] == 64
    # the log's top-1 before and after a layer's fine-tuning: the truncated model's and the tuned one's
    assert log[0]["val_top1_before_ft"] == models.evaluate_keras(init, x, y)["top1"]
    assert log[0]["val_top1_after_ft"] == models.evaluate_keras(tuned, x, y)["top1"]
    _, _, untuned = F.finetune_layerwise(student, ["conv_pw_13"], F.RankSpec(fraction=0.25), x, y, x, y,
                                         epochs_per_layer=0, verbose=0)
    assert untuned[0]["steps"] == 0
    assert untuned[0]["val_top1_before_ft"] == untuned[0]["val_top1_after_ft"] == log[0]["val_top1_before_ft"]


def test_greedy_select_respects_target_and_one_rank_per_layer():
    cands = [{"layer": "a", "rank_fraction": 0.25, "latency_saving": 0.10, "accuracy_cost": 0.01},
             {"layer": "a", "rank_fraction": 0.5, "latency_saving": 0.05, "accuracy_cost": 0.0},
             {"layer": "b", "rank_fraction": 0.25, "latency_saving": 0.08, "accuracy_cost": 0.05},
             {"layer": "c", "rank_fraction": 0.25, "latency_saving": -0.01, "accuracy_cost": 0.0}]
    chosen, predicted = F.greedy_select(cands, 0.9)
    assert chosen == {"a": 0.5, "b": 0.25} and predicted == pytest.approx(0.87)
    chosen, predicted = F.greedy_select(cands, 0.99)
    assert chosen == {"a": 0.5} and predicted == pytest.approx(0.95)


def test_the_control_takes_as_many_steps_as_layerwise_fine_tuning(student):
    """The unfactorized control's budget: K layers x epochs_per_layer epochs of per-layer fine-tuning and
    K x epochs_per_layer epochs of ordinary fine-tuning of the whole network are the same number of gradient
    steps on the same images (counted by the optimizers, not computed), and the control trains every weight."""
    x = np.random.default_rng(4).integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    y = np.random.default_rng(5).integers(0, 10, 48)
    _, _, log = F.finetune_layerwise(student, ["conv_pw_13", "conv_pw_12"], F.RankSpec(fraction=0.25), x, y, x, y,
                                     epochs_per_layer=2, learning_rate=1e-3, batch_size=16, verbose=0)
    control = models.keras.models.clone_model(student)
    control.set_weights(student.get_weights())
    before = weights_by_layer(control)
    run = F.finetune_whole(control, x, y, epochs=2 * 2, learning_rate=1e-3, batch_size=16, verbose=0)
    assert [r["steps"] for r in log] == [2 * 3, 2 * 3]            # 48 images / batch 16 = 3 steps per epoch
    assert run["steps"] == sum(r["steps"] for r in log) and run["epochs"] == 4
    after = weights_by_layer(control)
    for name in ("conv1", "conv_pw_1", "conv_pw_13", "logits", "conv_pw_13_bn"):
        assert not np.array_equal(after[name][0], before[name][0]) or not np.array_equal(after[name][-1], before[name][-1]), name
    assert F.finetune_whole(control, x, y, epochs=0, batch_size=16, verbose=0)["steps"] == 0


def test_a_choice_beaten_by_a_simpler_configuration_says_it_loses():
    configs = pd.DataFrame({"config": ["unfactorized", "last2_r0.5", "last2_r0.25"], "val_top1": [0.80, 0.78, 0.70],
                            "holdout_top1": [0.79, 0.77, 0.69], "latency_ratio": [1.0, 0.90, 0.80]})
    choice = pd.Series({"val_top1": 0.79, "holdout_top1": 0.75, "latency_ratio": 0.92, "ratio_ci_low": 0.90,
                        "ratio_ci_high": 0.94})
    assert F.rival_at_latency(configs, choice).config == "last2_r0.5"       # picked on validation, at most as slow
    assert F.dominating(configs, choice) == ["last2_r0.5"]                   # faster and as accurate on holdout
    versus = {"uniform": "last2_r0.5", "uniform_val_top1": 0.78, "uniform_latency_ratio": 0.90, "n": 1000,
              "uniform_holdout_top1": 0.77, "choice_holdout_top1": 0.75, "only_uniform": 40, "only_choice": 20,
              "difference_points": -2.0, "ci95": (-3.9, -0.1), "dominated_by": ["last2_r0.5"]}
    text = F.describe_choice({"conv_pw_13": 0.25}, 0.85, choice, versus)
    assert "matched or beaten by a simpler choice" in text and "last2_r0.5 runs at most as slow" in text
    assert "75.0% holdout" in text and "wholly below zero" in text
    better = choice.copy()
    better["holdout_top1"] = 0.78
    assert F.dominating(configs, better) == []
    text = F.describe_choice({"conv_pw_13": 0.25}, 0.85, better, {**versus, "choice_holdout_top1": 0.78,
                                                                  "difference_points": 1.0, "ci95": (-0.8, 2.8),
                                                                  "dominated_by": []})
    assert "loses" not in text and "cannot be told from zero" in text
    fastest = {**better, "latency_ratio": 0.5}
    assert F.rival_at_latency(configs, fastest) is None and F.dominating(configs, fastest) == []

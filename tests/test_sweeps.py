"""Each chapter's experiment as a package function, at tiny sizes (the notebooks only call these)."""
import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lpirc import baseline, data, factorize, models, projection, stacked, stats, weights


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small embedded dataset and an (untrained) student saved as the baseline step saves it."""
    folder = tmp_path_factory.mktemp("sweeps")
    data.generate_dataset(folder / "data", {"train": 192, "val": 64, "holdout": 64}, seed=0, progress=False)
    student = weights.build({"arch": "mobilenet_v1", "width_multiplier": 0.25}, classes=10, resolution=32)
    models.save_model(student, folder / "student.keras")
    return folder


@pytest.mark.slow
def test_train_baselines_one_task_per_model(tiny, tmp_path):
    """Trains in a grid worker process (scheduler "serial": one worker, which imports TensorFlow)."""
    table = baseline.train_baselines(tmp_path, tiny / "data", {"arch": "mobilenet_v1", "width_multiplier": 0.25},
                                     [{"name": "resnet8", "arch": "resnet", "depth": 8, "width": 8}], epochs=1,
                                     teacher_epochs=1, batch_size=64, learning_rate=0.01, seed=0, scheduler="serial")
    assert list(table.model) == ["student", "resnet8"] and list(table.role) == ["student", "teacher"]
    assert {"val_top1", "holdout_top1", "MMACs", "history"} <= set(table.columns)
    assert (tmp_path / "student.keras").exists() and (tmp_path / "resnet8.keras").exists()
    assert len(table.history[0]["val_top1"]) == 1


def test_a_frozen_teacher_is_evaluated_as_it_is(tiny, tmp_path):
    """A pretrained .tflite teacher: copied beside the trained models, scored on val and holdout, sized
    from its file; its logits, cached, are the ones distillation reads (lpirc.distill.teacher_logits)."""
    from conftest import convert_tiny

    from lpirc import distill, evaluate

    teacher = convert_tiny(models.mobilenet_v1(0.25, 32, 10), "float32", tmp_path / "teacher.tflite")
    row = baseline.frozen_point(out_path=str(tmp_path / "models" / "t.keras"), data_dir=str(tiny / "data"),
                                name="t", role="teacher", path=str(teacher))
    assert (tmp_path / "models" / "t.tflite").exists() and row["epochs"] == 0 and row["arch"] == "frozen tflite"
    assert row["params"] > 0 and row["MMACs"] > 0 and 0 <= row["val_top1"] <= 1
    x, _ = data.load_split(tiny / "data", "val")
    cached, hit = distill.teacher_logits(teacher, x[:8], tmp_path / "cache")       # what a distillation task reads
    assert not hit
    np.testing.assert_array_equal(evaluate.classifier_logits(teacher, x[:8]), cached)


@pytest.fixture(scope="module")
def last_k_sweep(tiny, tmp_path_factory):
    """One sweep of the student's last two pointwise layers at two rank fractions, read by the sweep's test
    and by the accuracy claim's (whose control matches the deepest configuration's budget: 64 fine-tuning
    images, 32 a step, so 2 steps a layer)."""
    out = tmp_path_factory.mktemp("last_k")
    return factorize.sweep_last_k(out, tiny / "data", tiny / "student.keras", k_values=[0, 2],
                                  rank_fractions=[0.5, 0.25], finetune_size=64, seed=0, epochs_per_layer=1,
                                  learning_rate=1e-3, batch_size=32, representative_size=8, scheduler="serial")


@pytest.mark.slow
def test_sweep_last_k_rows_and_files(last_k_sweep):
    sweep, log = last_k_sweep
    assert list(sweep.config) == ["unfactorized", "last2_r0.5", "last2_r0.25"]
    assert all(Path(f).exists() for f in sweep.file) and (sweep.K == [0, 2, 2]).all()
    # conv_pw_13 is square (256 x 256): rank 128 is its break-even, rank 64 saves MACs
    assert sweep.MMACs.iloc[1] <= sweep.MMACs.iloc[0] and sweep.MMACs.iloc[2] < sweep.MMACs.iloc[1]
    assert list(log.layer[:2]) == ["conv_pw_13", "conv_pw_12"] and len(log) == 4


@pytest.mark.slow
def test_time_configs_and_candidates(tiny, tmp_path):
    spec = {"width_multiplier": 0.25, "resolution": 32, "classes": 10}
    layers = factorize.pointwise_layers(models.mobilenet_v1(**spec))
    assert factorize.last_k(layers, 2, 0.5) == {"conv_pw_12": 0.5, "conv_pw_13": 0.5}
    table = factorize.time_configs(spec, {"unfactorized": {}, "last2": factorize.last_k(layers, 2, 0.25)}, tmp_path,
                                   runs=5, seed=0, scheduler="serial")
    assert list(table.config) == ["unfactorized", "last2"] and table.latency_ratio.iloc[0] == 1.0
    assert table["MAC ratio"].iloc[1] < 1
    cands = factorize.latency_candidates(spec, tiny / "student.keras", tiny / "data", tmp_path / "c",
                                         layers=layers[-2:], rank_fractions=[0.5, 0.25], runs=5, seed=0,
                                         scheduler="serial")
    assert len(cands) == 4 and set(cands.rank_fraction) == {0.5, 0.25}    # two ranks per layer
    chosen, predicted = factorize.greedy_select(cands.to_dict("records"), 0.999)
    assert len(set(chosen)) == len(chosen) and predicted <= 1.0


@pytest.mark.slow
def test_control_claim_and_holdout_comparison(tiny, last_k_sweep, tmp_path):
    """The same-budget control beside the deepest configuration, the accuracy claim from their per-image
    outcomes, and the latency-aware comparison on holdout (latencies made up: only the files are real).
    The sweep (shared with the test above) has two rank fractions; the claim reads the deepest one's log."""
    sweep, log = last_k_sweep
    deep = sweep.iloc[-1]
    assert deep.config == "last2_r0.25"
    deep_log = log[log.rank_fraction == deep.rank_fraction]
    control = factorize.finetune_control(out_path=str(tmp_path / "control.tflite"), data_dir=str(tiny / "data"),
                                         student_path=str(tiny / "student.keras"), layers=2, finetune_size=64, seed=0,
                                         epochs_per_layer=1, learning_rate=1e-3, batch_size=32, representative_size=8)
    assert control["epochs"] == 2 and control["steps"] == deep_log.steps.sum() == 2 * 2     # 64 images / 32 per step
    assert Path(control["file"]).exists() and 0 <= control["val_top1"] <= 1 and "holdout_top1" in control
    claim = factorize.accuracy_claim(deep, control, log, tiny / "data", untuned_top1=sweep.val_top1.iloc[0])
    x, y = data.load_split(tiny / "data", "val")
    assert claim.design["n"] == len(y) and claim.design["budget"]["control_steps"] == 4
    assert claim.estimate == pytest.approx(100 * (1 - deep.val_top1 / control["val_top1"]), abs=1e-6)
    with pytest.raises(ValueError, match="not matched"):
        factorize.accuracy_claim(deep, {**control, "steps": 3}, log, tiny / "data")

    configs = sweep.iloc[[0, -1]].assign(latency_ratio=[1.0, 0.8])      # the unfactorized and the deepest rows
    choice = pd.Series({**control, "latency_ratio": 0.9})
    out = factorize.compare_at_latency(configs, choice, tiny / "data")
    assert out["uniform"] == "last2_r0.25" and out["split"] == "holdout" and out["n"] == 64
    assert out["uniform_holdout_top1"] == pytest.approx(deep.holdout_top1)
    assert out["choice_holdout_top1"] == pytest.approx(control["holdout_top1"])
    assert out["dominated_by"] == (["last2_r0.25"] if deep.holdout_top1 >= control["holdout_top1"] else [])
    assert factorize.compare_at_latency(configs, {**choice, "latency_ratio": 0.5}, tiny / "data") is None


@pytest.mark.slow
def test_stacked_build_evaluates_every_stage(tiny, tmp_path):
    stages, info = stacked.build(tiny / "student.keras", tiny / "data", tmp_path, factorize_layers=2, rank_fraction=0.5,
                                 epochs_per_layer=1, finetune_size=64, finetune_learning_rate=1e-3, qat_epochs=1,
                                 qat_learning_rate=1e-4, batch_size=64, representative_size=8, seed=0)
    assert len(stages) == 7 and stages.stage.iloc[-1].startswith("5. stacked")
    assert stages.file.notna().sum() == 3 and info["factorized_layers"] == ["conv_pw_13", "conv_pw_12"]
    assert stages.MMACs.iloc[-1] < stages.MMACs.iloc[0]
    x_train, _ = data.load_split(tiny / "data", "train")
    assert [r["images"] for r in info["training"]] == [2 * 1 * min(64, len(x_train)), 1 * len(x_train)]


@pytest.mark.slow
def test_width_control_search_matches_the_macs():
    """The width control's width: the grid starts where every layer keeps a channel, and the search returns
    the width whose real MobileNet v1 MAC count is nearest the target (the narrower on a tie)."""
    widths = stacked.candidate_widths(0.25)
    assert widths[0] == 0.04 and widths[-1] == 0.25 and len(widths) == 22
    assert stacked.candidate_widths(0.255)[-2:] == [0.25, 0.255]          # the student's own width is a candidate
    assert stacked.width_for_macs(1000, lambda w: 10_000 * w, [0.05, 0.1, 0.15]) == (0.1, 1000)
    assert stacked.width_for_macs(1250, lambda w: 10_000 * w, [0.15, 0.1]) == (0.1, 1000)     # a tie: the narrower
    with pytest.raises(ValueError):
        stacked.width_for_macs(1000, lambda w: w, [])

    @functools.lru_cache(maxsize=None)
    def macs(w):                      # each width's network is built once (the searches ask for the same widths)
        return models.count_macs(models.mobilenet_v1(w, 32, 10))
    assert stacked.width_for_macs(macs(0.2), macs, widths) == (0.2, macs(0.2))
    assert macs.cache_info().currsize <= 2 * math.ceil(math.log2(len(widths) + 1)) + 1 < len(widths)    # bisection
    between = 0.3 * macs(0.2) + 0.7 * macs(0.21)                          # nearer the 0.21 student
    assert stacked.width_for_macs(between, macs, widths)[0] == 0.21
    assert macs(0.04) < macs(0.1) < macs(0.25)


def test_width_search_agrees_with_trying_every_width():
    """Bisection returns what trying every width returns, for any non-decreasing count with ties (equal counts
    at neighbouring widths, targets exactly between two counts), and asks for few widths."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 30))
        widths = sorted(float(w) for w in rng.choice(np.arange(1, 100) / 100, n, replace=False))
        table = dict(zip(widths, (np.sort(rng.integers(0, 12, n)) * 100).tolist()))
        asked = []

        def macs_at(w, table=table, asked=asked):
            asked.append(w)
            return table[w]

        target = float(rng.integers(-2, 26) * 50)
        every = min(table.items(), key=lambda wm: (abs(wm[1] - target), wm[0]))
        assert stacked.width_for_macs(target, macs_at, rng.permutation(widths + widths[:2])) == every   # repeats too
        assert len(set(asked)) == len(asked) <= 2 * math.ceil(math.log2(n + 1)) + 1


def test_training_budget_counts_every_pass_of_the_stacked_history():
    own = [{"phase": "per-layer fine-tuning", "images": 36_000}, {"phase": "QAT", "images": 4000}]
    upstream = {"baseline": {"epochs": 10}, "open_images": {"init": "trained", "pool_multipliers": [1.0, 2.0],
                                                             "pretrain_epochs": 1, "finetune_epochs": 3}}
    b = stacked.training_budget("pretrained", upstream, 4000, 8000, own)
    assert b.images.tolist() == [40_000, 8000, 12_000, 36_000, 4000] and b.images.sum() == 25 * 4000
    upstream["open_images"]["init"] = "fresh"                              # a fresh start owes nothing to the baseline
    assert stacked.training_budget("pretrained", upstream, 4000, 6000, own).images.tolist() == [6000, 12_000, 36_000, 4000]
    distilled = {"baseline": {"epochs": 10}, "distillation": {"epochs": 3, "init": "trained"}}
    assert stacked.training_budget("distilled", distilled, 4000, 0, []).images.sum() == 13 * 4000
    assert stacked.training_budget("baseline", distilled, 4000, 0, own).images.sum() == 20 * 4000
    with pytest.raises(ValueError, match="unknown source"):
        stacked.training_budget("teacher", distilled, 4000, 0, own)


def test_paired_differences_fixed_reference():
    rows = [{"seed": s, "alpha": a, "v": 0.5 + (0.05 if a == 1.0 else 0.0) + 0.001 * s * (1 + a)}
            for s in range(5) for a in (0.0, 0.5, 1.0)]
    out = stats.paired_differences(pd.DataFrame(rows), "v", "alpha", 0.0)
    assert list(out.other) == [0.5, 1.0] and (out.reference == 0.0).all()
    big = out.set_index("other").loc[1.0]
    assert big.difference == pytest.approx(0.05 + 0.002) and big.ci_low < big.difference < big.ci_high
    assert big.ci_low > 0 and "p_value" not in out      # descriptive: the claims carry the tests


def test_projection_domain_and_prediction_interval():
    rng = np.random.default_rng(0)
    host = np.exp(rng.uniform(0, 3, 16))
    macs = host * 1e7 * np.exp(rng.normal(0, 0.2, 16))
    target = 5 * host ** 0.8 * np.exp(rng.normal(0, 0.05, 16))
    fit = projection.fit_projection(host, macs, target, "int8")
    inside = projection.project(fit, float(np.median(host)), float(np.median(macs)), "int8")
    assert inside["ci95"][0] < inside["pixel2_ms"] < inside["ci95"][1]
    with pytest.raises(projection.OutsideDomain, match="outside the projection's domain"):
        projection.project(fit, float(host.max() * 2), float(np.median(macs)), "int8")
    with pytest.raises(projection.OutsideDomain):
        projection.project(fit, float(np.median(host)), float(np.median(macs)), "float32")
    with pytest.raises(projection.OutsideDomain):
        projection.project(fit, float(np.median(host)), float(np.median(macs)), "int8", family="MobileNet v1, factorized")
    rt = projection.ratio_transfer(43.0, 0.8, (0.78, 0.83))
    assert rt["pixel2_ms"] == pytest.approx(34.4) and rt["ci95"] == pytest.approx((33.54, 35.69))

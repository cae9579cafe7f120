"""The stacked model: every technique at once, as the entry submitted it, evaluated after each stage.

Starting from a student of an earlier chapter (distilled or pretrained), the last K pointwise layers
are factorized and fine-tuned one at a time (lpirc.factorize), then quantization-aware training
fine-tunes the whole network (lpirc.quantize) and it is converted to int8. Each stage is evaluated, so
a loss can be attributed to the stage that caused it rather than to "stacking".
"""
from __future__ import annotations

from pathlib import Path


def build(start_path, data_dir, out_dir, *, factorize_layers: int, rank_fraction: float, epochs_per_layer: int,
          finetune_size: int, finetune_learning_rate: float, qat_epochs: int, qat_learning_rate: float,
          batch_size: int, representative_size: int, seed: int):
    """Run the recipe on the student at ``start_path``; returns (stages, info). ``stages`` is a DataFrame
    with one row per stage (stage, form, val/holdout top-1, MMACs, file for int8 stages) in order:
    start (float, int8 PTQ), truncated (float), fine-tuned (float, int8 PTQ), QAT (fake-quantized float
    graph), stacked (QAT -> int8). ``info`` holds the factorized layers and the per-layer log."""
    import pandas as pd

    from lpirc import data, evaluate, factorize as F, models, quantize

    out_dir = Path(out_dir)
    splits, classes = data.load_splits(Path(data_dir))
    x_train, y_train = splits.pop("train")
    rep = quantize.representative_dataset(x_train, representative_size, seed)
    start = models.load_model(start_path)
    order = F.pointwise_layers(start)[::-1][:factorize_layers]
    spec = F.RankSpec(fraction=rank_fraction)
    rows = []

    def keras_row(stage, model):
        acc = {f"{s}_top1": models.evaluate_keras(model, x, y)["top1"] for s, (x, y) in splits.items()}
        rows.append({"stage": stage, "form": "float (Keras)", **acc, "MMACs": models.count_macs(model) / 1e6, "file": None})

    def int8_row(stage, model, name, form="int8 PTQ"):
        acc = evaluate.int8_top1(model, out_dir / name, rep, splits, len(classes))
        rows.append({"stage": stage, "form": form, **acc, "MMACs": models.count_macs(model) / 1e6,
                     "file": str(out_dir / name)})

    keras_row("1. start", start)
    int8_row("1. start", start, "start_int8_ptq.tflite")
    keras_row("2. factorized, truncated (no FT)", F.factorize(start, {n: spec for n in order})[0])
    fact, _, log = F.finetune_layerwise(start, order, spec, *F.finetune_subset(x_train, y_train, finetune_size, seed),
                                        *splits["val"], epochs_per_layer=epochs_per_layer,
                                        learning_rate=finetune_learning_rate, batch_size=batch_size, verbose=0)
    keras_row("3. factorized + per-layer FT", fact)
    int8_row("3. factorized + per-layer FT", fact, "factorized_int8_ptq.tflite")
    qat_model, _ = quantize.train_qat(fact, x_train, y_train, *splits["val"], epochs=qat_epochs,
                                      learning_rate=qat_learning_rate, batch_size=batch_size, verbose=0)
    keras_row("4. + QAT (fake-quantized graph)", qat_model)
    rows[-1]["MMACs"] = rows[-2]["MMACs"]             # the QAT wrapper's layers are not counted by count_macs
    int8_row("5. stacked: QAT -> int8", qat_model, "stacked_int8.tflite", form="int8 (QAT)")
    rows[-1]["MMACs"] = rows[-2]["MMACs"]
    return pd.DataFrame(rows), {"factorized_layers": order, "layer_log": log}


def on_architecture(arch_spec: dict, factorize_layers: int, rank_fraction: float, out_dir, *, runs: int, seed: int):
    """The stacked model's factorization applied to the challenge architecture (random weights), int8, timed
    interleaved with the unfactorized int8 architecture; its Pixel 2 latency by ratio transfer from Google's
    published figure. Returns (the timing table, the projection)."""
    from lpirc import factorize as F
    from lpirc import models, projection, reference

    layers = F.pointwise_layers(models.mobilenet_v1(**arch_spec))
    table = F.time_configs(arch_spec, {"unfactorized": {}, "stacked": F.last_k(layers, factorize_layers, rank_fraction)},
                           out_dir, runs=runs, seed=seed)
    r = table.iloc[1]
    published = reference.pixel2_ms(arch_spec["width_multiplier"], arch_spec["resolution"], "int8")
    return table, projection.ratio_transfer(published, r.latency_ratio, (r.ratio_ci_low, r.ratio_ci_high))

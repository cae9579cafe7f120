"""Low-rank factorization of 1x1 convolutions by truncated SVD, and per-layer fine-tuning.

A pointwise convolution with kernel W (N inputs x M outputs) computes y = x W. Its truncated SVD
W ~ U_r S_r V_r^T becomes two 1x1 convolutions, N -> r (kernel U_r sqrt(S_r)) and r -> M (kernel
sqrt(S_r) V_r^T); batch norm and activation stay after the pair. Per pixel the pair costs
r (N + M) multiply-accumulates instead of N M, so it is cheaper only when r < N M / (N + M) — for a
square layer, below half the rank (the entry's rule).

The entry fine-tuned after factorizing each layer with every other parameter frozen
{cite}`hyperconnect2018lpirc`; ``finetune_layerwise`` does exactly that, one layer at a time.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lpirc import bench, claims, data, evaluate, models, reference
from lpirc.conversion import convert_architectures, convert_untrained, representative_dataset
from lpirc.grid import run_grid
from lpirc.models import keras
from lpirc.runtime import set_seed


@dataclasses.dataclass(frozen=True)
class RankSpec:
    """How to choose a rank: exactly one of an absolute rank, a fraction of min(N, M), or the
    smallest rank keeping a fraction of the squared singular values ("energy")."""
    rank: int | None = None
    fraction: float | None = None
    energy: float | None = None

    def __post_init__(self):
        given = [v for v in (self.rank, self.fraction, self.energy) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of rank, fraction, energy")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ValueError(f"rank fraction must be in (0, 1], got {self.fraction}")
        if self.energy is not None and not 0 < self.energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {self.energy}")
        if self.rank is not None and self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")

    def resolve(self, n_in: int, n_out: int, singular_values: np.ndarray | None = None) -> int:
        full = min(n_in, n_out)
        if self.rank is not None:
            return min(self.rank, full)
        if self.fraction is not None:
            return max(1, min(full, int(round(self.fraction * full))))
        s2 = np.asarray(singular_values, dtype=np.float64) ** 2
        kept = np.cumsum(s2) / s2.sum()
        return int(min(full, np.searchsorted(kept, self.energy - 1e-12) + 1))


def break_even_rank(n_in: int, n_out: int) -> float:
    """Ranks below this make the factorized pair cheaper than the original layer."""
    return n_in * n_out / (n_in + n_out)


def pointwise_macs(h: int, w: int, n_in: int, n_out: int, rank: int | None = None) -> int:
    return h * w * (n_in * n_out if rank is None else rank * (n_in + n_out))


def svd_factors(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first kernel (1,1,N,r), second kernel (1,1,r,M), singular values) of a (1,1,N,M) kernel."""
    if kernel.ndim != 4 or kernel.shape[:2] != (1, 1):
        raise ValueError(f"expected a 1x1 convolution kernel (1, 1, N, M), got {kernel.shape}")
    w = kernel[0, 0].astype(np.float64)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    root = np.sqrt(s[:rank])
    first = (u[:, :rank] * root)[None, None].astype(np.float32)
    second = (root[:, None] * vt[:rank])[None, None].astype(np.float32)
    return first, second, s


def singular_value_energy(model, layers: list[str] | None = None):
    """For each pointwise layer of ``model`` (all by default) and each rank r = 1..min(N, M): the share of
    the kernel's squared singular values the top r keep ("energy"), i.e. how much of the layer a rank-r
    factorization keeps before any fine-tuning. One row per layer x rank: layer, n_in, n_out, rank,
    rank_fraction (r / min(N, M)), energy."""
    rows = []
    for name in layers or pointwise_layers(model):
        kernel = model.get_layer(name).get_weights()[0]
        s2 = np.linalg.svd(kernel[0, 0].astype(np.float64), compute_uv=False) ** 2
        kept = np.cumsum(s2) / s2.sum()
        rows += [{"layer": name, "n_in": int(kernel.shape[2]), "n_out": int(kernel.shape[3]), "rank": r + 1,
                  "rank_fraction": (r + 1) / len(s2), "energy": float(e)} for r, e in enumerate(kept)]
    return pd.DataFrame(rows)


def pointwise_layers(model) -> list[str]:
    """Names of the 1x1 convolutions addressable for factorization (conv_pw_N), in network order."""
    return [layer.name for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1)
            and layer.name.startswith("conv_pw_") and not layer.name.endswith(("_a", "_b"))]


def _check_chain(model) -> None:
    for layer in model.layers[1:]:
        inbound = layer._inbound_nodes[0].inbound_layers
        if isinstance(inbound, list) and len(inbound) != 1:
            raise ValueError(f"factorize supports chain models such as MobileNet v1; "
                             f"layer {layer.name} has {len(inbound)} inputs")


def factorize(model, spec: dict[str, RankSpec | int]) -> tuple[keras.Model, dict]:
    """A new model with the named 1x1 convolutions replaced by SVD-initialised pairs.

    ``spec`` maps layer name -> RankSpec (or an int rank). Returns (model, info) where info maps
    layer name -> {n_in, n_out, rank, break_even, macs_before, macs_after}. All other weights are
    copied; the original model is not modified.
    """
    _check_chain(model)
    spec = {k: (v if isinstance(v, RankSpec) else RankSpec(rank=int(v))) for k, v in spec.items()}
    unknown = set(spec) - set(pointwise_layers(model))
    if unknown:
        raise ValueError(f"not factorizable 1x1 layers: {sorted(unknown)}; "
                         f"choose from {pointwise_layers(model)}")
    info, factors = {}, {}
    inputs = keras.Input(model.input_shape[1:], name=model.layers[0].name)
    x = inputs
    for layer in model.layers[1:]:
        if layer.name in spec:
            kernel = layer.get_weights()[0]
            n_in, n_out = kernel.shape[2], kernel.shape[3]
            _, _, s = svd_factors(kernel, 1)
            rank = spec[layer.name].resolve(n_in, n_out, s)
            first, second, _ = svd_factors(kernel, rank)
            h, w = layer.output.shape[1:3]
            info[layer.name] = {"n_in": int(n_in), "n_out": int(n_out), "rank": int(rank),
                                "break_even": break_even_rank(n_in, n_out),
                                "macs_before": pointwise_macs(h, w, n_in, n_out),
                                "macs_after": pointwise_macs(h, w, n_in, n_out, rank)}
            a = keras.layers.Conv2D(rank, 1, use_bias=False, name=f"{layer.name}_a")
            b = keras.layers.Conv2D(n_out, 1, use_bias=layer.use_bias, name=f"{layer.name}_b")
            x = b(a(x))
            factors[layer.name] = (first, second, layer.get_weights()[1:] if layer.use_bias else [])
        else:
            clone = layer.__class__.from_config(layer.get_config())
            x = clone(x)
    new = keras.Model(inputs, x, name=f"{model.name}_factorized")
    for layer in model.layers[1:]:
        if layer.name in factors:
            first, second, bias = factors[layer.name]
            new.get_layer(f"{layer.name}_a").set_weights([first])
            new.get_layer(f"{layer.name}_b").set_weights([second, *bias])
        elif layer.weights:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new, info


def finetune_layerwise(model, order: list[str], rank: RankSpec | dict, x_train, y_train, x_val, y_val, *,
                       epochs_per_layer: int = 1, learning_rate: float = 1e-3, batch_size: int = 128,
                       snapshot_at: list[int] | None = None, verbose: int = 2, on_snapshot=None):
    """Factorize the layers in ``order`` one at a time; after each, train only its two new kernels.

    Everything else is frozen, batch-norm statistics included (frozen BatchNormalization layers
    run in inference mode). ``on_snapshot(k, model, info, log)`` is called after k layers for each
    k in ``snapshot_at``, so one pass yields every "last K layers" configuration. Each layer trains
    on every device of the runtime's strategy (lpirc.models.compile_and_fit); the log records the
    gradient steps each layer took (read from its optimizer), the budget a control must match.
    Returns (model, info, log).
    """
    snapshot_at = set(snapshot_at or [])
    current, info, log = model, {}, []
    if 0 in snapshot_at and on_snapshot:
        on_snapshot(0, current, {}, [])
    for k, name in enumerate(order, start=1):
        current, new_info = factorize(current, {name: rank[name] if isinstance(rank, dict) else rank})
        info.update(new_info)
        for layer in current.layers:
            layer.trainable = layer.name in (f"{name}_a", f"{name}_b")
        # top-1 from predictions (a forward graph), not Keras' evaluate, whose test graph (forward, loss and
        # metric) costs more to trace; either is traced again after the fit's compile
        before = models.evaluate_keras(current, x_val, y_val)["top1"]
        t0, steps = time.perf_counter(), 0
        if epochs_per_layer > 0:
            history, _ = models.compile_and_fit(current, **_finetune_compile(learning_rate), epochs=epochs_per_layer,
                                                verbose=verbose, **models.fit_inputs(x_train, y_train,
                                                                                     batch_size=batch_size))
            steps = int(history.model.optimizer.iterations.numpy())
        after = models.evaluate_keras(current, x_val, y_val)["top1"]
        log.append({"k": k, "layer": name, "rank": new_info[name]["rank"], "val_top1_before_ft": float(before),
                    "val_top1_after_ft": float(after), "steps": steps, "finetune_s": time.perf_counter() - t0})
        for layer in current.layers:
            layer.trainable = True
        if k in snapshot_at and on_snapshot:
            on_snapshot(k, current, dict(info), list(log))
    return current, info, log


def _finetune_compile(learning_rate: float) -> dict:
    """Per-layer fine-tuning's optimizer (Adam at a constant rate), loss and metric."""
    return {"optimizer": keras.optimizers.Adam(learning_rate),
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": [keras.metrics.SparseCategoricalAccuracy(name="top1")]}


def greedy_select(candidates: list[dict], latency_target: float, accuracy_floor: float = 0.005,
                  max_relative_cost: float = 0.055) -> tuple[dict, float]:
    """NetAdapt-style choice of (layer, rank) pairs under a latency target.

    Each candidate has ``layer``, ``rank_fraction``, ``latency_saving`` (1 - measured latency ratio
    with only that layer factorized) and ``accuracy_cost`` (top-1 lost with only that layer
    factorized, no fine-tuning), and may have ``student_val_top1_no_ft``. A candidate that alone costs
    more than ``max_relative_cost`` of the unfactorized top-1 (the entry's whole budget, a 5.5% relative
    loss) is never taken: one layer may not spend it all. The others are taken in order of saving per
    unit of cost (the cost floored at ``accuracy_floor`` so free candidates do not divide by zero), one
    rank per layer, until the predicted ratio 1 - sum(savings) reaches ``latency_target`` or no
    candidate is left. Returns ({layer: rank_fraction}, predicted ratio)."""
    chosen: dict[str, float] = {}
    predicted = 1.0
    ranked = sorted(candidates, key=lambda c: -c["latency_saving"] / (max(c["accuracy_cost"], 0.0) + accuracy_floor))
    for c in ranked:
        if predicted <= latency_target:
            break
        base = c.get("student_val_top1_no_ft", float("nan")) + c["accuracy_cost"]
        too_costly = c["accuracy_cost"] > max_relative_cost * base if base == base else False
        if c["layer"] in chosen or c["latency_saving"] <= 0 or too_costly:
            continue
        chosen[c["layer"]] = c["rank_fraction"]
        predicted -= c["latency_saving"]
    return chosen, predicted


# --------------------------------------------------------------------------------------------------
# the chapter's experiments, as functions (notebooks/20_factorization.ipynb calls these)
def finetune_subset(x, y, size: int, seed: int):
    """The ``size`` training images per-layer fine-tuning sees: a seeded sample, in index order."""
    idx = np.sort(np.random.default_rng(seed).choice(len(x), size=min(size, len(x)), replace=False))
    return x[idx], y[idx]


def last_k_point(*, out_dir: str, data_dir: str, student_path: str, rank_fraction: float, k_values: list,
                 finetune_size: int, seed: int, epochs_per_layer: int, learning_rate: float, batch_size: int,
                 representative_size: int) -> dict:
    """One rank fraction of the sweep, a pure task: factorize the student's last max(K) pointwise layers
    one at a time from the end (``conv_pw_13`` first), fine-tuning each new pair with everything else
    frozen. At each K of ``k_values`` the int8 file of the state reached ("after fine-tuning") and of the
    same K layers truncated at once with no training ("no FT") are written to ``out_dir`` and evaluated."""
    set_seed(seed)
    splits, classes = data.load_splits(Path(data_dir))
    x_train, y_train = splits.pop("train")
    x_ft, y_ft = finetune_subset(x_train, y_train, finetune_size, seed)
    rep = representative_dataset(x_train, representative_size, seed)
    student = models.load_model(student_path)
    order = pointwise_layers(student)[::-1]
    out, rows = Path(out_dir), []

    def snapshot(k, model, info, log):
        truncated, _ = factorize(student, {n: RankSpec(fraction=rank_fraction) for n in order[:k]})
        before = evaluate.int8_top1(truncated, out / f"last{k}_no_ft.tflite", rep, splits, len(classes))
        after = evaluate.int8_top1(model, out / f"last{k}.tflite", rep, splits, len(classes))
        rows.append({"config": f"last{k}_r{rank_fraction:g}", "K": k, "rank_fraction": rank_fraction,
                     "MMACs": models.count_macs(model) / 1e6, "params": model.count_params(),
                     "val_top1_before_ft": before["val_top1"], "holdout_top1_before_ft": before["holdout_top1"],
                     "val_top1": after["val_top1"], "holdout_top1": after["holdout_top1"],
                     "finetune_s": sum(r["finetune_s"] for r in log), "file": str(out / f"last{k}.tflite")})

    ks = [k for k in k_values if k > 0]
    _, _, log = finetune_layerwise(student, order[:max(ks, default=0)], RankSpec(fraction=rank_fraction), x_ft, y_ft,
                                   *splits["val"], epochs_per_layer=epochs_per_layer, learning_rate=learning_rate,
                                   batch_size=batch_size, snapshot_at=ks, on_snapshot=snapshot, verbose=0)
    return {"rank_fraction": rank_fraction, "rows": rows, "log": [{**r, "rank_fraction": rank_fraction} for r in log]}


def sweep_last_k(out_dir, data_dir, student_path, *, k_values, rank_fractions, finetune_size: int, seed: int,
                 epochs_per_layer: int, learning_rate: float, batch_size: int, representative_size: int,
                 scheduler: str | None = None):
    """"The last K pointwise layers at rank fraction f" for every K and f: one grid task per f
    (:func:`last_k_point`), plus the unfactorized student's int8 row. Returns (sweep, per-layer log) DataFrames;
    the ``file`` column holds each configuration's int8 file."""
    out_dir = Path(out_dir)
    splits, classes = data.load_splits(Path(data_dir))
    x_train, _ = splits.pop("train")
    student = models.load_model(student_path)
    base_file = out_dir / "unfactorized.tflite"
    base = evaluate.int8_top1(student, base_file, representative_dataset(x_train, representative_size, seed),
                              splits, len(classes))
    rows = [{"config": "unfactorized", "K": 0, "rank_fraction": 1.0, "MMACs": models.count_macs(student) / 1e6,
             "params": student.count_params(), "val_top1_before_ft": base["val_top1"],
             "holdout_top1_before_ft": base["holdout_top1"], **base, "finetune_s": 0.0, "file": str(base_file)}]
    points = [dict(out_dir=str(out_dir / f"r{f:g}"), data_dir=str(data_dir), student_path=str(student_path),
                   rank_fraction=float(f), k_values=list(k_values), finetune_size=finetune_size, seed=seed,
                   epochs_per_layer=epochs_per_layer, learning_rate=learning_rate, batch_size=batch_size,
                   representative_size=representative_size) for f in rank_fractions]
    results = run_grid(last_k_point, points, label="factorization sweep", scheduler=scheduler)
    rows += [r for res in results for r in res["rows"]]
    return pd.DataFrame(rows), pd.DataFrame([r for res in results for r in res["log"]])


def last_k(layers: list[str], k: int, fraction: float) -> dict[str, float]:
    """{layer: rank fraction} for the last ``k`` of ``layers`` (in network order)."""
    return {n: float(fraction) for n in layers[len(layers) - k:]} if k > 0 else {}


def latency_candidates(arch_spec: dict, student_path, data_dir, out_dir, *, layers: list[str],
                       rank_fractions, runs: int, seed: int, scheduler: str | None = None):
    """Every (layer, rank fraction) of ``layers`` x ``rank_fractions`` factorized alone: its latency saving on
    the architecture (int8, timed interleaved with the unfactorized file) and its accuracy cost on the
    student (float, no fine-tuning). The input of :func:`greedy_select`."""
    out_dir = Path(out_dir)
    jobs = [{**arch_spec, "precision": "int8", "seed": seed, "factorized": {}, "config": "unfactorized",
             "path": str(out_dir / "unfactorized.tflite")}]
    jobs += [{**arch_spec, "precision": "int8", "seed": seed, "factorized": {n: float(f)}, "config": f"{n}_r{f:g}",
              "path": str(out_dir / f"{n}_r{f:g}.tflite")} for n in layers for f in rank_fractions]
    converted = convert_architectures(jobs, label="candidates", scheduler=scheduler, task=convert_config)
    timed = bench.interleaved([j["path"] for j in converted], runs=runs, warmup=5)
    student = models.load_model(student_path)
    x_val, y_val = data.load_split(Path(data_dir), "val")
    base = models.evaluate_keras(student, x_val, y_val)["top1"]
    rows = []
    for job, t in zip(converted[1:], timed[1:]):
        (name, frac), = job["factorized"].items()
        acc = models.evaluate_keras(factorize(student, {name: RankSpec(fraction=frac)})[0], x_val, y_val)["top1"]
        rows.append({"layer": name, "rank_fraction": frac, "latency_saving": 1.0 - t["ratio_to_first"],
                     "student_val_top1_no_ft": acc, "accuracy_cost": max(base - acc, 0.0)})
    return pd.DataFrame(rows)


def finetune_choice(*, out_path: str, data_dir: str, student_path: str, choice: dict, finetune_size: int, seed: int,
                    epochs_per_layer: int, learning_rate: float, batch_size: int, representative_size: int) -> dict:
    """A pure task: the student with ``choice`` ({layer: rank fraction}) factorized and fine-tuned layer by
    layer from the network's end, as :func:`last_k_point` does; its int8 top-1 and file."""
    set_seed(seed)
    splits, classes = data.load_splits(Path(data_dir))
    x_train, y_train = splits.pop("train")
    student = models.load_model(student_path)
    order = [n for n in pointwise_layers(student)[::-1] if n in choice]
    model, _, log = finetune_layerwise(student, order, {n: RankSpec(fraction=f) for n, f in choice.items()},
                                       *finetune_subset(x_train, y_train, finetune_size, seed), *splits["val"],
                                       epochs_per_layer=epochs_per_layer, learning_rate=learning_rate,
                                       batch_size=batch_size, verbose=0)
    acc = evaluate.int8_top1(model, out_path, representative_dataset(x_train, representative_size, seed),
                             splits, len(classes))
    return {**acc, "MMACs": models.count_macs(model) / 1e6, "finetune_s": sum(r["finetune_s"] for r in log),
            "file": str(out_path)}


def finetune_whole(model, x_train, y_train, *, epochs: int, learning_rate: float = 1e-3, batch_size: int = 128,
                   verbose: int = 2) -> dict:
    """Ordinary fine-tuning of ``model`` in place: every weight trainable (batch-norm statistics updated), with
    per-layer fine-tuning's optimizer (Adam at a constant ``learning_rate``) and batch size, for ``epochs``
    epochs of ``x_train``. Returns the epochs, the gradient steps taken (read from the optimizer, as
    :func:`finetune_layerwise` logs them) and the wall time."""
    for layer in model.layers:
        layer.trainable = True
    t0, steps = time.perf_counter(), 0
    if epochs > 0:
        history, _ = models.compile_and_fit(model, **_finetune_compile(learning_rate), epochs=epochs, verbose=verbose,
                                            **models.fit_inputs(x_train, y_train, batch_size=batch_size))
        steps = int(history.model.optimizer.iterations.numpy())
    return {"epochs": int(epochs), "steps": steps, "finetune_s": time.perf_counter() - t0}


def finetune_control(*, out_path: str, data_dir: str, student_path: str, layers: int, finetune_size: int, seed: int,
                     epochs_per_layer: int, learning_rate: float, batch_size: int, representative_size: int) -> dict:
    """A pure task: the unfactorized control of the accuracy claim, given the budget of the factorized model.

    Per-layer fine-tuning of the deepest configuration (:func:`last_k_point`) trains ``layers`` new pairs,
    each for ``epochs_per_layer`` epochs of the seeded fine-tuning subset (:func:`finetune_subset`), so it
    takes layers x epochs_per_layer x ceil(finetune_size / batch_size) gradient steps. The control is the
    same student, not factorized, fine-tuned as a whole (:func:`finetune_whole`) for layers x
    epochs_per_layer epochs of the same subset, with the same seed, optimizer, learning rate and batch
    size: the same number of gradient steps on the same images. What is matched is the number of steps
    (so of images seen), not the weights trained: the factorized model trains one pair at a time with
    everything else frozen, the control every weight, the most the unfactorized network can make of
    that budget. Whether the extra training helps or hurts it, the claim then compares two models that
    had the same training. Evaluated as the configurations are: int8 file, validation and holdout top-1."""
    set_seed(seed)
    splits, classes = data.load_splits(Path(data_dir))
    x_train, y_train = splits.pop("train")
    model = models.load_model(student_path)
    run = finetune_whole(model, *finetune_subset(x_train, y_train, finetune_size, seed),
                         epochs=layers * epochs_per_layer, learning_rate=learning_rate, batch_size=batch_size, verbose=0)
    acc = evaluate.int8_top1(model, out_path, representative_dataset(x_train, representative_size, seed),
                             splits, len(classes))
    return {"config": "control", **acc, **run, "layers": int(layers), "epochs_per_layer": int(epochs_per_layer),
            "MMACs": models.count_macs(model) / 1e6, "file": str(out_path)}


def accuracy_claim(deep, control: dict, layer_log, data_dir, root=".", untuned_top1: float | None = None):
    """The factorization-accuracy claim (:func:`lpirc.claims.factorization_accuracy`) from per-image outcomes:
    the deepest configuration ``deep`` (a sweep row: K, rank_fraction, file) against the same-budget control
    (:func:`finetune_control`'s row), both int8 files scored on every validation image. ``layer_log`` (the
    sweep's per-layer log) gives the gradient steps the factorized model's fine-tuning took; a control
    that took a different number is refused. Relative file paths are read under ``root``."""
    log = layer_log[(layer_log.rank_fraction == deep.rank_fraction) & (layer_log.k <= deep.K)]
    steps = int(log.steps.sum())
    if steps != control["steps"]:
        raise ValueError(f"the control took {control['steps']} gradient steps, the factorized model's per-layer "
                         f"fine-tuning {steps}: the budgets are not matched")
    splits, classes = data.load_splits(Path(data_dir), ("val",))
    f, c = (evaluate.correct_on(Path(root) / p, *splits["val"], len(classes)) for p in (deep.file, control["file"]))
    return claims.factorization_accuracy(c, f, untuned_top1=untuned_top1, budget={
        "layers": int(deep.K), "epochs_per_layer": control["epochs_per_layer"], "factorized_steps": steps,
        "control_epochs": control["epochs"], "control_steps": control["steps"]})


def convert_config(*, width_multiplier: float, resolution: int, classes: int, precision: str, path: str,
                   factorized: dict, config: str, seed: int = 0) -> dict:
    """A pure task: MobileNet v1 with random weights, ``factorized`` ({layer: rank fraction}) applied,
    converted to ``precision`` at ``path``."""
    model, _ = factorize(models.mobilenet_v1(width_multiplier, resolution, classes),
                         {n: RankSpec(fraction=f) for n, f in factorized.items()})
    return {"config": config, "factorized": factorized, **convert_untrained(model, precision, path, seed)}


def time_configs(arch_spec: dict, configs: dict, out_dir, *, runs: int, seed: int, scheduler: str | None = None):
    """Each of ``configs`` ({name: {layer: rank fraction}}, the first normally ``{}`` = unfactorized) applied
    to the architecture ``arch_spec`` (width_multiplier, resolution, classes; random weights), converted to
    int8 and timed interleaved. One row per name: MMACs, MAC and latency ratios to the first, the
    latency ratio's 95% interval, the file."""
    jobs = [{**arch_spec, "precision": "int8", "seed": seed, "factorized": c, "config": name,
             "path": str(Path(out_dir) / f"{name}_int8.tflite")} for name, c in configs.items()]
    converted = convert_architectures(jobs, label="architecture configurations", scheduler=scheduler,
                                               task=convert_config)
    table = bench.timing_table({j["config"]: j["path"] for j in converted}, runs=runs)
    table.insert(1, "MMACs", [j["macs"] / 1e6 for j in converted])
    table.insert(2, "MAC ratio", table.MMACs / table.MMACs.iloc[0])
    table["file"] = [j["path"] for j in converted]
    return table


def rival_at_latency(configs, choice):
    """The configuration of ``configs`` (rows with config, val_top1, latency_ratio) most accurate on validation
    among those that run at most as slow as ``choice`` on the architecture; None when every one is slower."""
    fair = configs[configs.latency_ratio <= choice["latency_ratio"]]
    return fair.loc[fair.val_top1.idxmax()] if len(fair) else None


def dominating(configs, choice) -> list[str]:
    """The configurations of ``configs`` that leave ``choice`` nothing: at most as slow on the architecture and
    at least as accurate on the holdout split (point estimates of both)."""
    return list(configs[(configs.latency_ratio <= choice["latency_ratio"])
                        & (configs.holdout_top1 >= choice["holdout_top1"])].config)


def compare_at_latency(configs, choice, data_dir, root=".") -> dict | None:
    """The latency-aware ``choice`` (a row with val_top1, holdout_top1, latency_ratio and its int8 ``file``)
    against the simpler configurations ``configs`` (the uniform "last K" rows and the unfactorized student,
    same columns). Its rival is the most accurate on validation at most as slow (:func:`rival_at_latency`).
    The rival was picked on the validation split and so was the choice (its candidates were scored there),
    so the two are compared on the holdout split, image by image: both int8 files scored on the same
    holdout images, the difference choice − rival in points with its paired 95% interval and McNemar's
    p-value (:func:`lpirc.evaluate.paired_change`; one seed each, so seed-to-seed variation is not in it).
    ``dominated_by`` lists every configuration at most as slow and at least as accurate on holdout
    (:func:`dominating`). None when every configuration is slower. Relative paths are read under ``root``."""
    best = rival_at_latency(configs, choice)
    if best is None:
        return None
    splits, classes = data.load_splits(Path(data_dir), ("holdout",))
    pc = evaluate.paired_change(Path(root) / best.file, Path(root) / choice["file"], *splits["holdout"], len(classes))
    return {"uniform": best.config, "uniform_val_top1": float(best.val_top1),
            "uniform_latency_ratio": float(best.latency_ratio), "split": "holdout", "n": pc["n"],
            "uniform_holdout_top1": pc["top1_a"], "choice_holdout_top1": pc["top1_b"], "only_uniform": pc["only_a"],
            "only_choice": pc["only_b"], "difference_points": pc["change_points"], "ci95": tuple(pc["ci95"]),
            "p_mcnemar": pc["p_mcnemar"], "dominated_by": dominating(configs, choice)}


def describe_choice(chosen: dict, predicted: float, measured, versus: dict | None) -> str:
    """The sentences the chapter prints about the latency-aware choice: what it chose, its measured latency
    ratio (``measured``: a row with latency_ratio, ratio_ci_low/high, val_top1, holdout_top1), how it compares
    on the holdout split with the best simpler configuration at most as slow (:func:`compare_at_latency`),
    and, when a simpler configuration is at most as slow and at least as accurate on holdout, that the
    choice loses to it."""
    choice = ", ".join(f"{n}@{f:g}" for n, f in chosen.items()) or "no candidate saved latency: nothing factorized"
    text = (f"The latency-aware choice ({choice}; predicted ratio {predicted:.3f}) runs at {measured.latency_ratio:.3f}x "
            f"[{measured.ratio_ci_low:.3f}, {measured.ratio_ci_high:.3f}] the unfactorized latency on the architecture and "
            f"reaches {100 * measured.val_top1:.1f}% validation and {100 * measured.holdout_top1:.1f}% holdout top-1 on "
            "the student. ")
    if measured.ratio_ci_low > predicted or measured.ratio_ci_high < predicted:
        text += (f"The prediction, which adds up each layer's saving measured alone, lies outside the measured interval: "
                 "the layers' savings do not add up when they are factorized together, so a greedy search that "
                 "assumes they do misjudges where it stops. ")
    if versus is None:
        return text + "Every other configuration measured is slower: no simpler choice runs at its speed."
    lo, hi = versus["ci95"]
    text += (f"Its layers and ranks were chosen on validation images, and so is its rival, the configuration most "
             f"accurate on validation among those at most as slow: {versus['uniform']} ({versus['uniform_latency_ratio']:.3f}x, "
             f"{100 * versus['uniform_val_top1']:.1f}% validation). On the {versus['n']} holdout images, which "
             f"neither choice saw, the rival reaches {100 * versus['uniform_holdout_top1']:.1f}% and the latency-aware "
             f"choice {100 * versus['choice_holdout_top1']:.1f}%: a difference of {versus['difference_points']:+.2f} "
             f"points [{lo:+.2f}, {hi:+.2f}] (95% interval, paired image by image: {versus['only_choice']} images only "
             f"the choice gets right, {versus['only_uniform']} only the rival; one seed each). ")
    dom = versus.get("dominated_by") or []
    if dom:
        names = ", ".join(dom)
        return text + (f"**The latency-aware choice is matched or beaten by a simpler choice:** {names} "
                       f"{'runs' if len(dom) == 1 else 'run'} at most as slow on the architecture and "
                       f"{'is' if len(dom) == 1 else 'are'} at least as accurate on holdout (point estimates), so "
                       "choosing layers by measured latency bought nothing measurable here"
                       + ("; against its rival the paired interval lies wholly below zero, a real loss." if hi < 0 else
                          "; against its rival it is more accurate beyond the noise, so the simpler configuration that "
                          "matches it is not the rival." if lo > 0 else
                          "; against its rival the holdout difference is within the noise (one seed each)."))
    return text + ("On holdout the latency-aware choice is more accurate than every simpler configuration at most "
                   "as slow (point estimates), and than its rival beyond the noise (the paired interval is wholly "
                   "above zero): choosing by measured latency paid off." if lo > 0 else
                   "No simpler configuration at most as slow is as accurate on holdout (point estimates), but on "
                   "one seed each its difference from the rival cannot be told from zero.")


def energy_kept(energy, fraction: float, layers: list[str] | None = None):
    """The energy (share of squared singular values) each layer keeps at ``fraction`` of its full rank,
    from :func:`singular_value_energy`'s table, resolving the rank as :class:`RankSpec` does."""
    g = energy if layers is None else energy[energy.layer.isin(layers)]
    rows = {}
    for layer, rows_l in g.groupby("layer", sort=False):
        r = RankSpec(fraction=fraction).resolve(int(rows_l.n_in.iloc[0]), int(rows_l.n_out.iloc[0]))
        rows[layer] = float(rows_l.loc[rows_l["rank"] == r, "energy"].iloc[0])
    return pd.Series(rows, name=f"energy at rank fraction {fraction:g}")


def describe_break_even(arch) -> str:
    """Where factorizing stops saving MACs, measured: the factorized configuration of ``arch`` (rows of the
    architecture's timing table, :func:`time_configs`) whose MAC ratio is nearest 1 (rank fraction 0.5 on square layers), and whether its
    latency ratio's 95% interval lies above 1, below 1, or includes it."""
    fact = arch[(arch.config != "unfactorized") & arch["MAC ratio"].notna()]
    if not len(fact):
        return "No factorized configuration was timed in this run."
    r = fact.iloc[int((fact["MAC ratio"] - 1).abs().to_numpy().argmin())]
    lo, hi = r.ratio_ci_low, r.ratio_ci_high
    where = ("above 1: at equal MACs the pair costs more time than the layer it replaced" if lo > 1 else
             "below 1: even at nearly equal MACs the pair runs faster on this host" if hi < 1 else
             "and its interval includes 1: at nearly equal MACs no difference in time can be told")
    return (f"In this run, {r.config} has {r['MAC ratio']:.3f}x the MACs of the unfactorized model and runs at "
            f"{r.latency_ratio:.3f}x [{lo:.3f}, {hi:.3f}] its latency (95% interval across timing sessions), {where}. "
            "MACs alone do not predict latency, which is why every configuration is timed.")


def knee_ratio(arch_spec: dict, knee_ms: float = 30.0) -> float | None:
    """The latency ratio at which the architecture, projected by ratio transfer from Google's published int8
    Pixel 2 latency, reaches the challenge's ``knee_ms``; None without a published figure."""
    published = reference.pixel2_ms(arch_spec["width_multiplier"], arch_spec["resolution"], "int8")
    return knee_ms / published if published == published and published > 0 else None

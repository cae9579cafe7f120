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

from lpirc import bench, data, evaluate, models, reference
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
    on every device of the runtime's strategy (lpirc.models.compile_and_fit).
    Returns (model, info, log).
    """
    snapshot_at = set(snapshot_at or [])
    current, info, log = model, {}, []
    if 0 in snapshot_at and on_snapshot:
        on_snapshot(0, current, {}, [])
    val = models.fit_inputs(x_val, y_val, batch_size=512, train=False)
    for k, name in enumerate(order, start=1):
        current, new_info = factorize(current, {name: rank[name] if isinstance(rank, dict) else rank})
        info.update(new_info)
        for layer in current.layers:
            layer.trainable = layer.name in (f"{name}_a", f"{name}_b")
        current.compile(**_finetune_compile(learning_rate))
        before = current.evaluate(**val, verbose=0)[1]
        t0 = time.perf_counter()
        if epochs_per_layer > 0:
            models.compile_and_fit(current, **_finetune_compile(learning_rate), epochs=epochs_per_layer,
                                   verbose=verbose, **models.fit_inputs(x_train, y_train, batch_size=batch_size,
                                                                        train=True))
        after = current.evaluate(**val, verbose=0)[1]
        log.append({"k": k, "layer": name, "rank": new_info[name]["rank"], "val_top1_before_ft": float(before),
                    "val_top1_after_ft": float(after), "finetune_s": time.perf_counter() - t0})
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


def compare_at_latency(uniform, choice: dict, n_val: int) -> dict | None:
    """The latency-aware ``choice`` (val_top1, latency_ratio) against the most accurate uniform configuration
    (rows with config, val_top1, latency_ratio) that runs at most as slow on the architecture. The
    difference in validation top-1 carries a 95% interval (normal approximation, two independent
    proportions of ``n_val`` images; one seed each, so seed-to-seed variation is not in it). None when
    every uniform configuration is slower."""
    fair = uniform[uniform.latency_ratio <= choice["latency_ratio"]]
    if not len(fair):
        return None
    best = fair.loc[fair.val_top1.idxmax()]
    p1, p2 = float(choice["val_top1"]), float(best.val_top1)
    se = np.sqrt(p1 * (1 - p1) / n_val + p2 * (1 - p2) / n_val)
    d = 100 * (p1 - p2)
    return {"uniform": best.config, "uniform_val_top1": p2, "uniform_latency_ratio": float(best.latency_ratio),
            "difference_points": d, "ci95": (d - 196 * se, d + 196 * se)}


def describe_choice(chosen: dict, predicted: float, measured, versus: dict | None) -> str:
    """The sentence the chapter prints about the latency-aware choice: what it chose, its measured latency
    ratio (``measured``: a row with latency_ratio, ratio_ci_low/high, val_top1) and how it compares with the
    best uniform configuration at most as slow (:func:`compare_at_latency`)."""
    choice = ", ".join(f"{n}@{f:g}" for n, f in chosen.items()) or "no candidate saved latency: nothing factorized"
    text = (f"The latency-aware choice ({choice}; predicted ratio {predicted:.3f}) runs at {measured.latency_ratio:.3f}x "
            f"[{measured.ratio_ci_low:.3f}, {measured.ratio_ci_high:.3f}] the unfactorized latency on the architecture and "
            f"reaches {100 * measured.val_top1:.1f}% validation top-1 on the student. ")
    if versus is None:
        return text + "Every uniform configuration measured is slower."
    lo, hi = versus["ci95"]
    return text + (f"The most accurate uniform configuration at most as slow, {versus['uniform']} "
                   f"({versus['uniform_latency_ratio']:.3f}x), reaches {100 * versus['uniform_val_top1']:.1f}%: a difference "
                   f"of {versus['difference_points']:+.2f} points [{lo:+.2f}, {hi:+.2f}] (95% interval, one seed each).")


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

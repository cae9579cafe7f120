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

import numpy as np

from lpirc.models import keras


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
    k in ``snapshot_at``, so one pass yields every "last K layers" configuration.
    Returns (model, info, log).
    """
    from lpirc.data import to_model_input

    snapshot_at = set(snapshot_at or [])
    current, info, log = model, {}, []
    if 0 in snapshot_at and on_snapshot:
        on_snapshot(0, current, {}, [])
    xt, xv = to_model_input(x_train), to_model_input(x_val)
    for k, name in enumerate(order, start=1):
        current, new_info = factorize(current, {name: rank[name] if isinstance(rank, dict) else rank})
        info.update(new_info)
        for layer in current.layers:
            layer.trainable = layer.name in (f"{name}_a", f"{name}_b")
        current.compile(optimizer=keras.optimizers.Adam(learning_rate),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")])
        before = current.evaluate(xv, y_val, verbose=0, batch_size=512)[1]
        t0 = time.perf_counter()
        if epochs_per_layer > 0:
            current.fit(xt, y_train, epochs=epochs_per_layer, batch_size=batch_size, verbose=verbose,
                        shuffle=True)
        after = current.evaluate(xv, y_val, verbose=0, batch_size=512)[1]
        log.append({"k": k, "layer": name, "rank": new_info[name]["rank"], "val_top1_before_ft": float(before),
                    "val_top1_after_ft": float(after), "finetune_s": time.perf_counter() - t0})
        for layer in current.layers:
            layer.trainable = True
        if k in snapshot_at and on_snapshot:
            on_snapshot(k, current, dict(info), list(log))
    return current, info, log


def model_weights_snapshot(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers if layer.weights}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))



def greedy_select(candidates: list[dict], latency_target: float, accuracy_floor: float = 0.005) -> tuple[dict, float]:
    """NetAdapt-style choice of (layer, rank) pairs under a latency target.

    Each candidate has ``layer``, ``rank_fraction``, ``latency_saving`` (1 - measured latency ratio
    with only that layer factorized) and ``accuracy_cost`` (top-1 lost with only that layer
    factorized). Candidates are taken in order of saving per unit of cost (the cost floored at
    ``accuracy_floor`` so free candidates do not divide by zero), one rank per layer, until the
    predicted ratio 1 - sum(savings) reaches ``latency_target``. Returns ({layer: rank_fraction},
    predicted ratio)."""
    chosen: dict[str, float] = {}
    predicted = 1.0
    ranked = sorted(candidates, key=lambda c: -c["latency_saving"] / (max(c["accuracy_cost"], 0.0) + accuracy_floor))
    for c in ranked:
        if predicted <= latency_target:
            break
        if c["layer"] in chosen or c["latency_saving"] <= 0:
            continue
        chosen[c["layer"]] = c["rank_fraction"]
        predicted -= c["latency_saving"]
    return chosen, predicted

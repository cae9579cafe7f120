"""Figures shared by the chapters. Every function returns a matplotlib Figure; the notebook saves it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def examples_grid(images: np.ndarray, labels: np.ndarray, classes, per_class: int = 8, max_classes: int = 10):
    """``per_class`` images of each of the first ``max_classes`` classes that have any (ImageNet has 1000)."""
    shown = [c for c in range(len(classes)) if (labels == c).any()][:max_classes]
    fig, axes = plt.subplots(len(shown), per_class, figsize=(per_class * 0.9, len(shown) * 0.95), squeeze=False)
    for row, c in enumerate(shown):
        name = classes[c]
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[row, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[int(idx[j])], interpolation="nearest")
        axes[row, 0].set_title(name, fontsize=8, loc="left", x=-0.05)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig


def image_rows(rows: dict[str, np.ndarray], n: int = 16):
    """One row of ``n`` images per entry of ``rows`` ({title: uint8 images}), titled on the left."""
    fig, axes = plt.subplots(len(rows), n, figsize=(13, 1.0 * len(rows)), squeeze=False)
    for row, (title, images) in enumerate(rows.items()):
        for j, ax in enumerate(axes[row]):
            ax.axis("off")
            if j < len(images):
                ax.imshow(images[j], interpolation="nearest")
        axes[row, 0].set_title(title, fontsize=9, loc="left")
    return fig


def training_curves(histories: dict[str, dict]):
    """Validation top-1 per epoch for several models (history dicts from Keras' fit)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, hist in histories.items():
        val = hist.get("val_top1", [])
        ax.plot(np.arange(1, len(val) + 1), np.asarray(val) * 100, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def accuracy_vs_latency(frame, x: str, y: str, label: str, xlabel: str, ylabel: str, highlight=None):
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(frame[x], frame[y], s=30)
    for _, row in frame.iterrows():
        ax.annotate(str(row[label]), (row[x], row[y]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if highlight is not None:
        sel = frame[frame[label] == highlight]
        ax.scatter(sel[x], sel[y], s=120, facecolors="none", edgecolors="crimson", linewidths=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig


def per_layer(ops):
    """Per-operator latency by both methods (lpirc.profiler.attribute), one bar pair per operator."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    xs = np.arange(len(ops))
    ax.bar(xs - 0.2, ops.single_ms * 1000, 0.4, label="single-operator sub-model")
    ax.bar(xs + 0.2, ops.prefix_ms * 1000, 0.4, label="prefix differencing")
    ax.set_xticks(xs)
    ax.set_xticklabels(ops.unit, rotation=90, fontsize=7)
    ax.set_ylabel("latency (µs)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def projection(grid):
    """Published Pixel 2 latency against host latency per precision, with the fit and its 95% prediction band."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for p, marker in (("int8", "o"), ("float32", "s")):
        g = grid[grid.precision == p].sort_values("host_ms")
        ax.scatter(g.host_ms, g.pixel2_ms_published, marker=marker, label=f"{p}: published Pixel 2")
        ax.plot(g.host_ms, g.pixel2_ms_projected, lw=1, label=f"{p}: fit (in-sample), 95% prediction band")
        ax.fill_between(g.host_ms, g.pi_low, g.pi_high, alpha=0.15)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("host single-thread latency (ms)")
    ax.set_ylabel("Pixel 2 big-core latency (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def break_even(uniform, entry_ratio: float, entry_label: str):
    """Measured latency ratio (with its interval) and MAC ratio against the rank fraction."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(uniform.rank_fraction, uniform.latency_ratio, yerr=[uniform.latency_ratio - uniform.ratio_ci_low,
                uniform.ratio_ci_high - uniform.latency_ratio], fmt="o", label="measured int8 latency ratio (95% interval)")
    ax.plot(uniform.rank_fraction, uniform["MAC ratio"], "-", label="MAC ratio (predicted)")
    ax.axhline(1.0, ls=":", c="k")
    ax.axhline(entry_ratio, ls="--", c="crimson", lw=1, label=entry_label)
    ax.set_xlabel("rank fraction r / min(N, M) (dimensionless)")
    ax.set_ylabel("latency ratio to unfactorized (x)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def mean_ci_lines(agg, x: str, group: str, xlabel: str, ylabel: str = "validation top-1 (%)"):
    """Mean validation top-1 with its 95% t-interval (lpirc.stats.aggregate) against ``x``, one line per ``group``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, g in agg.groupby(group):
        g = g.sort_values(x)
        ax.errorbar(g[x], g.val_top1 * 100, yerr=np.nan_to_num(g.val_top1_ci95 * 100), marker="o", capsize=3,
                    label=f"{group} {name}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def arms(agg):
    """Validation and holdout top-1 per arm, mean with its 95% t-interval."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    xs = np.arange(len(agg))
    for off, col, label in ((-0.1, "val_top1", "validation"), (0.1, "holdout_top1", "holdout")):
        ax.errorbar(xs + off, agg[col] * 100, yerr=np.nan_to_num(agg[col + "_ci95"] * 100), fmt="o", capsize=3, label=label)
    ax.set_xticks(xs)
    ax.set_xticklabels(agg.arm, rotation=15, fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig

"""Figures shared by the chapters. Every function returns a matplotlib Figure; the notebook saves it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def examples_grid(images: np.ndarray, labels: np.ndarray, classes, per_class: int = 8):
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95))
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j]], interpolation="nearest")
        axes[c, 0].set_title(name, fontsize=8, loc="left", x=-0.05)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return fig


def image_row(images: np.ndarray, title: str, n: int = 16):
    fig, axes = plt.subplots(1, n, figsize=(n * 0.8, 1.1))
    for j, ax in enumerate(axes):
        ax.axis("off")
        if j < len(images):
            ax.imshow(images[j], interpolation="nearest")
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
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

"""Figures shared by the chapters. Every function returns a matplotlib Figure; the notebook saves it."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np


def plain_log_axis(axis) -> None:
    """A logarithmic axis (``ax.xaxis`` or ``ax.yaxis``) ticked at 1, 2, 3, 5 x powers of ten and labelled
    in plain numbers (5, 10, 20, 30) rather than matplotlib's 6 x 10^0."""
    axis.set_major_locator(mticker.LogLocator(base=10, subs=(1, 2, 3, 5)))
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(mticker.NullFormatter())


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


def _place_labels(ax, xs, ys, labels, fontsize: float = 7.5):
    """Label each point where its text overlaps no other label, no point and stays inside the axes
    (the first free position of a ring of candidates around the point, else the least crowded one);
    a label set away from its point gets a thin leader line."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    points = [tuple(ax.transData.transform((x, y))) for x, y in zip(xs, ys)]
    ring = [(6, 4), (6, -11), (-6, 4), (-6, -11), (0, 9), (0, -15), (12, 16), (12, -22), (-12, 16), (-12, -22),
            (24, 4), (-24, 4), (0, 24), (0, -30), (30, 26), (-30, 26), (30, -32), (-30, -32)]
    placed = []
    for (x, y), text in zip(zip(xs, ys), labels):
        best = None
        for dx, dy in ring:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha)
            box = ann.get_window_extent(renderer).expanded(1.04, 1.15)
            ann.remove()
            crowd = (sum(box.overlaps(b) for b in placed) + sum(box.contains(px, py) for px, py in points)
                     + (0 if frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1) else 2))
            if best is None or crowd < best[0]:
                best = (crowd, dx, dy, ha, box)
            if crowd == 0:
                break
        _, dx, dy, ha, box = best
        far = abs(dx) > 8 or abs(dy) > 12
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "gray"} if far else None)
        placed.append(box)


def _iso_score(ax, levels, knee_ms: float, x_range, top: float | None = None):
    """Iso-score lines of the challenge rule (score = top-1 x knee / max(knee, latency)): the top-1 a
    model needs at each latency to score ``level``, flat up to the knee and rising in proportion beyond."""
    xs = np.geomspace(*x_range, 300) if x_range[0] > 0 else np.linspace(*x_range, 300)
    for level, label, style in levels:
        y = level * np.maximum(knee_ms, xs) / knee_ms
        keep = y <= (top if top is not None else np.inf)
        ax.plot(xs[keep], y[keep], style, c="k", lw=0.8, label=label)


def accuracy_vs_latency(frame, x: str, y: str, label: str, xlabel: str, ylabel: str, highlight=None,
                        xerr: tuple[str, str] | None = None, yerr: tuple[str, str] | None = None,
                        knee: float | None = None, knee_label: str | None = None, iso: list | None = None,
                        reference_x: float | None = None, reference_label: str | None = None):
    """Accuracy against latency, one labelled point per row of ``frame``, labels placed clear of each other.

    ``xerr`` / ``yerr``: the columns of each point's interval (low, high), drawn as error bars wherever a
    difference is read off the figure. ``knee``: a vertical line at the latency where the challenge's score
    stops rewarding speed (``knee_label`` says what it is in the x axis' unit). ``iso``: iso-score lines,
    [(score, label, line style)] in the units of ``y`` (top-1 %) and ``x`` (ms); they need ``knee``.
    ``reference_x``: a dotted vertical line (e.g. a latency ratio of 1)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xe = None if xerr is None else np.abs(np.vstack([frame[x] - frame[xerr[0]], frame[xerr[1]] - frame[x]]))
    ye = None if yerr is None else np.abs(np.vstack([frame[y] - frame[yerr[0]], frame[yerr[1]] - frame[y]]))
    ax.errorbar(frame[x], frame[y], xerr=xe, yerr=ye, fmt="o", ms=5, lw=0.9, capsize=2.5, color="tab:blue",
                ecolor="tab:gray", label="95% intervals" if xerr is not None or yerr is not None else None)
    if highlight is not None:
        sel = frame[frame[label] == highlight]
        ax.scatter(sel[x], sel[y], s=140, facecolors="none", edgecolors="crimson", linewidths=2, zorder=3,
                   label=str(highlight))
    lows = [frame[x].min()] + ([frame[xerr[0]].min()] if xerr else [])
    highs = [frame[x].max()] + ([frame[xerr[1]].max()] if xerr else [])
    if knee is not None:
        lo, hi = min(min(lows), knee) * 0.9, max(max(highs), knee) * 1.1
        if iso:
            _iso_score(ax, iso, knee, (lo, hi), top=None)
        ax.axvline(knee, ls="--", c="crimson", lw=1.2, label=knee_label or f"knee ({knee:g})")
        ax.set_xlim(lo, hi)
    if reference_x is not None:
        ax.axvline(reference_x, ls=":", c="k", lw=1, label=reference_label)
    y_lo = min([frame[y].min()] + ([frame[yerr[0]].min()] if yerr else []))
    y_hi = max([frame[y].max()] + ([frame[yerr[1]].max()] if yerr else []))
    pad = 0.12 * (y_hi - y_lo or 1)
    ax.set_ylim(y_lo - pad, y_hi + pad)          # iso-score lines leave the plot rather than stretch it
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="best")
    fig.tight_layout()
    _place_labels(ax, frame[x].to_numpy(float), frame[y].to_numpy(float), [str(v) for v in frame[label]])
    return fig


def per_layer(ops):
    """Per-layer latency by both methods (lpirc.profiler.attribute), one bar pair per operator, operators
    down the page in network order (legible on a narrow screen). Prefix differencing subtracts two noisy
    medians, so a cheap operator's estimate can fall below zero: the bars are drawn as they are."""
    n = len(ops)
    fig, ax = plt.subplots(figsize=(6.2, 1.0 + 0.19 * n))
    ys = np.arange(n)
    ax.barh(ys - 0.2, ops.single_ms * 1000, 0.4, label="single-operator sub-model")
    ax.barh(ys + 0.2, ops.prefix_ms * 1000, 0.4, label="prefix differencing")
    ax.axvline(0, c="k", lw=0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels(ops.unit, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel("latency (µs)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def projection(grid):
    """Published Pixel 2 latency against the fit's projection (in-sample) per precision, each with its 95%
    prediction interval, around the line of exact projection. The fit uses MACs as well as host latency, so
    it is shown as projected-against-published: a line over host latency alone would zig-zag."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for p, marker in (("int8", "o"), ("float32", "s")):
        g = grid[grid.precision == p]
        ax.errorbar(g.pixel2_ms_projected, g.pixel2_ms_published, xerr=[g.pixel2_ms_projected - g.pi_low,
                    g.pi_high - g.pixel2_ms_projected], fmt=marker, ms=5, lw=0.8, capsize=2,
                    label=f"{p}: projected (95% prediction interval) vs published")
    lo = min(grid.pi_low.min(), grid.pixel2_ms_published.min()) * 0.9
    hi = max(grid.pi_high.max(), grid.pixel2_ms_published.max()) * 1.1
    ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="projection = published")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("Pixel 2 latency projected from this host (ms, fit in-sample)")
    ax.set_ylabel("Pixel 2 big-core latency, published (ms)")
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


def mean_ci_lines(agg, x: str, group: str, xlabel: str, ylabel: str = "validation top-1 (%)", runs=None,
                  value: str = "val_top1", seed: str = "seed"):
    """Mean ``value`` with its 95% t-interval (lpirc.stats.aggregate) against ``x``, one line per ``group``;
    with ``runs`` (one row per group x x x seed) every seed is drawn too, a thin line joining its points,
    since the arms are paired by seed and the seeds are the unit the verdicts count."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups = list(dict.fromkeys(agg[group]))
    step = 0.012 * (agg[x].max() - agg[x].min() or 1)
    for k, name in enumerate(groups):
        colour, off = f"C{k}", (k - (len(groups) - 1) / 2) * step
        g = agg[agg[group] == name].sort_values(x)
        if runs is not None:
            wide = runs[runs[group] == name].pivot_table(index=seed, columns=x, values=value).reindex(columns=g[x])
            ax.plot(wide.columns.to_numpy(float) + off, wide.to_numpy(float).T * 100, color=colour, lw=0.6, alpha=0.5,
                    marker=".", ms=5)
        ax.errorbar(g[x] + off, g[value] * 100, yerr=np.nan_to_num(g[f"{value}_ci95"] * 100), marker="s", ms=5, lw=1.8,
                    capsize=4, color=colour, label=f"{group} {name}: mean, 95% interval" + (" (thin: seeds)" if runs is not None else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)
    fig.tight_layout()
    return fig


def arms(agg, runs=None):
    """Validation and holdout top-1 per arm: mean with its 95% t-interval, and each seed as a dot
    (``runs``: one row per arm x seed) joined across arms, since arms are paired by seed."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    xs = np.arange(len(agg))
    for off, col, label, colour in ((-0.12, "val_top1", "validation", "C0"), (0.12, "holdout_top1", "holdout", "C1")):
        if runs is not None:
            wide = runs.pivot_table(index="seed", columns="arm", values=col)[list(agg.arm)]
            for _, seed_row in wide.iterrows():
                ax.plot(xs + off, seed_row.to_numpy() * 100, color=colour, lw=0.5, alpha=0.35, marker=".", ms=4)
        ax.errorbar(xs + off, agg[col] * 100, yerr=np.nan_to_num(agg[col + "_ci95"] * 100), fmt="s", ms=6, capsize=4,
                    color=colour, label=f"{label}: mean, 95% interval" + (" (dots: seeds)" if runs is not None else ""))
    ax.set_xticks(xs)
    ax.set_xticklabels(agg.arm, rotation=15, fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def learning_curves(runs):
    """Validation top-1 after each epoch (``val_curve`` of each run): one panel per teacher, one colour
    per α; every seed a thin line, their mean a thick one. α = 0 (no teacher) appears in every panel."""
    teachers = [t for t in dict.fromkeys(runs.teacher) if t != "none"] or ["none"]
    alphas = sorted(runs.alpha.unique())
    colours = dict(zip(alphas, plt.cm.viridis(np.linspace(0, 0.85, len(alphas)))))
    fig, axes = plt.subplots(1, len(teachers), figsize=(4.2 * len(teachers), 3.4), sharey=True, squeeze=False)
    for ax, teacher in zip(axes[0], teachers):
        sel = runs[(runs.teacher == teacher) | (runs.teacher == "none")]
        for a in alphas:
            curves = [np.asarray(c) * 100 for c in sel[sel.alpha == a].val_curve if len(c)]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            epochs = np.arange(1, n + 1)
            for c in curves:
                ax.plot(epochs, c[:n], color=colours[a], lw=0.6, alpha=0.45)
            ax.plot(epochs, np.mean([c[:n] for c in curves], axis=0), color=colours[a], lw=2.2, marker="o", ms=3,
                    label=f"α = {a:g} ({len(curves)} seeds)")
        ax.set_title(f"teacher {teacher}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("validation top-1 (%)")
    fig.tight_layout()
    return fig


def layerwise_trajectory(log, reference: tuple[float, float, float] | None = None):
    """Per-layer fine-tuning, layer by layer (``log``: lpirc.factorize's per-layer log, one row per rank
    fraction x layer, float validation top-1 before and after that layer's fine-tuning): for each rank
    fraction, a hollow marker after truncating the k-th layer, a filled one after fine-tuning it, joined by
    a segment (what fine-tuning recovered) and a line through the fine-tuned states. ``reference``: the
    unfactorized student's top-1 with its 95% interval (low, high), a dashed line and a grey band."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fractions = sorted(log.rank_fraction.unique(), reverse=True)
    width = 0.12 * (len(fractions) > 1)
    for i, f in enumerate(fractions):
        g = log[log.rank_fraction == f].sort_values("k")
        k = g.k.to_numpy(float) + (i - (len(fractions) - 1) / 2) * width
        before, after = g.val_top1_before_ft.to_numpy() * 100, g.val_top1_after_ft.to_numpy() * 100
        colour = f"C{i}"
        ax.vlines(k, before, after, color=colour, lw=1, alpha=0.7)
        ax.scatter(k, before, facecolors="none", edgecolors=colour, s=28)
        ax.plot(k, after, "-o", color=colour, ms=5, label=f"rank fraction {f:g}: after fine-tuning (hollow: truncated)")
    if reference is not None:
        top1, low, high = (100 * v for v in reference)
        ax.axhline(top1, ls="--", c="k", lw=1, label="unfactorized student (band: 95% interval)")
        ax.axhspan(low, high, color="gray", alpha=0.15)
    first = log[log.rank_fraction == fractions[0]].sort_values("k")
    ax.set_xticks(first.k)
    ax.set_xticklabels([f"{int(k)}\n{name.replace('conv_pw_', 'pw ')}" for k, name in zip(first.k, first.layer)], fontsize=7.5)
    ax.set_xlabel("layers factorized so far (and the layer just factorized)")
    ax.set_ylabel("validation top-1, float (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left")
    fig.tight_layout()
    return fig


def singular_energy(energy, fractions=(), break_even: float | None = 0.5):
    """Energy kept (cumulative share of the squared singular values) against the rank fraction, one line
    per pointwise layer (``energy``: lpirc.factorize.singular_value_energy), darker deeper in the
    network; dotted lines at the rank fractions the chapter uses, a dashed one where a square layer's
    pair stops saving MACs."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    layers = list(dict.fromkeys(energy.layer))
    colours = plt.cm.viridis(np.linspace(0.9, 0.05, len(layers)))
    for colour, layer in zip(colours, layers):
        g = energy[energy.layer == layer]
        shape = f"{int(g.n_in.iloc[0])}x{int(g.n_out.iloc[0])}"
        ax.plot(g.rank_fraction, g.energy * 100, color=colour, lw=1.2, label=f"{layer.replace('conv_pw_', 'pw ')} ({shape})")
    for f in fractions:
        ax.axvline(f, ls=":", c="k", lw=1)
    if break_even is not None:
        ax.axvline(break_even, ls="--", c="crimson", lw=1, label="square layer: no MAC saving from here")
    ax.set_xlabel("rank r / min(N, M)")
    ax.set_ylabel("energy kept (% of the squared singular values)")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def _as_list(v):
    if isinstance(v, str):
        return json.loads(v)
    return list(v)


def session_ratios(frame, label: str, relative: bool = False, reference: float | None = 1.0,
                   reference_label: str | None = None):
    """Repeatability across timing sessions (fresh processes): one row per file of a timing table
    (lpirc.bench.timing_table, which stores each session's ratio to the first file), every session a dot,
    and the estimate with its 95% interval across sessions. ``relative``: each session's ratio as a
    deviation (%) from that file's estimate, for tables whose first file is arbitrary."""
    timed = frame.session_ratios.map(lambda v: len(_as_list(v)) > 1 and not all(r == 1.0 for r in _as_list(v)))
    rows = frame[timed].reset_index(drop=True)           # the reference file itself is 1.0 in every session
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.26 * max(len(rows), 2)))
    for i, r in rows.iterrows():
        sess = np.asarray(_as_list(r.session_ratios), float)
        est, lo, hi = r.latency_ratio, r.ratio_ci_low, r.ratio_ci_high
        if relative:
            scale = 100 / est
            sess, lo, hi, est = scale * sess - 100, scale * lo - 100, scale * hi - 100, 0.0
        ax.plot(sess, np.full(len(sess), i), "o", ms=4, color="tab:blue", alpha=0.6,
                label="one session" if i == 0 else None)
        ax.errorbar([est], [i], xerr=[[est - lo], [hi - est]], fmt="|", ms=12, color="k", capsize=3, lw=1.2,
                    label="estimate, 95% interval across sessions" if i == 0 else None)
    if relative:
        ax.axvline(0, c="k", lw=0.6)
    else:
        ax.axvline(1.0, c="k", lw=0.6)
        if reference is not None and reference != 1.0:
            ax.axvline(reference, ls=":", c="crimson", lw=1.2, label=reference_label)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows[label], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel("session's ratio: deviation from the file's estimate (%)" if relative else
                  f"latency ratio to {frame[label].iloc[0]} (x)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=3, frameon=False)   # above, clear of the rows
    fig.tight_layout()
    return fig

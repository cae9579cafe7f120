"""The stacked model: every technique at once, as the entry submitted it, evaluated after each stage.

Starting from a student of an earlier chapter (distilled, pretrained or the baseline; one run, one seed:
:func:`start_note` places it among its arm's seeds), the last K pointwise layers are factorized and
fine-tuned one at a time (lpirc.factorize), then quantization-aware training fine-tunes the whole
network (lpirc.quantize) and it is converted to int8. Each stage is evaluated, so a loss can be
attributed to the stage that caused it rather than to "stacking".

The claim is judged against a plain control at the same cost (:func:`width_control`): the same student
made faster by width alone, to the stacked model's MACs, trained for as many images as the stacked
model's whole history holds (:func:`training_budget`).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lpirc import data, evaluate, flatbuffer, models, projection, quantize, reference
from lpirc import factorize as F
from lpirc.report import fmt_interval, mean_ci, plural
from lpirc.results import read_json
from lpirc.runtime import set_seed

CONTROL_FILE = "width_control_int8.tflite"   # the plain width control's int8 file, beside stacked_int8.tflite
WIDTH_STEP = 0.01                             # the width control's search grid


def build(start_path, data_dir, out_dir, *, factorize_layers: int, rank_fraction: float, epochs_per_layer: int,
          finetune_size: int, finetune_learning_rate: float, qat_epochs: int, qat_learning_rate: float,
          batch_size: int, representative_size: int, seed: int):
    """Run the recipe on the student at ``start_path``; returns (stages, info). ``stages`` is a DataFrame
    with one row per stage (stage, form, val/holdout top-1, MMACs, file for int8 stages) in order:
    start (float, int8 PTQ), truncated (float), fine-tuned (float, int8 PTQ), QAT (fake-quantized float
    graph), stacked (QAT -> int8). ``info`` holds the factorized layers, the per-layer log and the
    training passes of the recipe (``training``: phase, images), which the width control's budget counts."""
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
    n_ft = min(finetune_size, len(x_train))
    training = [{"phase": f"per-layer fine-tuning ({plural(len(order), 'layer')} x {plural(epochs_per_layer, 'epoch')} x "
                          f"{n_ft} images)", "images": len(order) * epochs_per_layer * n_ft},
                {"phase": f"QAT ({plural(qat_epochs, 'epoch')})", "images": qat_epochs * len(x_train)}]
    return pd.DataFrame(rows), {"factorized_layers": order, "layer_log": log, "training": training}


def on_architecture(arch_spec: dict, factorize_layers: int, rank_fraction: float, out_dir, *, runs: int, seed: int,
                    timed=None):
    """The stacked model's factorization applied to the challenge architecture (random weights), int8, against
    the unfactorized int8 architecture; its Pixel 2 latency by ratio transfer from Google's published figure.
    ``timed``: the factorization chapter's timing table of the same architecture (files as absolute paths), or
    None. When it holds this configuration (the same layers at the same rank of an architecture with the same
    MACs), its rows are reused as they are,
    so one architecture has one ratio in the book; otherwise both files are built and timed interleaved here.
    Returns (the timing table, the projection)."""
    model = models.mobilenet_v1(**arch_spec)
    layers = F.pointwise_layers(model)
    same = f"last{factorize_layers}_r{rank_fraction:g}"
    # the same configuration of the same architecture: the names match and so do the unfactorized MACs
    if (timed is not None and {"unfactorized", same} <= set(timed.config) and
            np.isclose(timed.set_index("config").MMACs["unfactorized"], models.count_macs(model) / 1e6)):
        table = timed.set_index("config").loc[["unfactorized", same]].reset_index()
        table["config"] = ["unfactorized", "stacked"]
    else:
        table = F.time_configs(arch_spec, {"unfactorized": {}, "stacked": F.last_k(layers, factorize_layers, rank_fraction)},
                               out_dir, runs=runs, seed=seed)
    r = table.iloc[1]
    published = reference.pixel2_ms(arch_spec["width_multiplier"], arch_spec["resolution"], "int8")
    return table, projection.ratio_transfer(published, r.latency_ratio, (r.ratio_ci_low, r.ratio_ci_high))


# --------------------------------------------------------------------------------------------------
# the plain control at the same MACs and the same training budget, and the arm the start came from
def candidate_widths(most: float, step: float = WIDTH_STEP) -> list[float]:
    """Width multipliers ``step`` apart up to ``most`` (included), from the narrowest that leaves every
    MobileNet v1 layer a channel: the builder gives a layer ``int(filters x width)`` channels and the
    narrowest layer has 32 filters at width 1 (conv1), so the width must be at least 1/32."""
    narrowest = min(32, *(f for _, f in models.MOBILENET_V1_BLOCKS))
    first = math.ceil(round(1 / narrowest / step, 9))
    widths = [round(k * step, 6) for k in range(first, int(math.floor(round(most / step, 9))) + 1)]
    return sorted(set(widths) | {float(most)})


def width_for_macs(target_macs: float, macs_at, widths) -> tuple[float, int]:
    """The width of ``widths`` whose MAC count ``macs_at(width)`` is nearest ``target_macs`` (the narrower
    of two equally near), with that count.

    ``macs_at`` must not decrease as the width grows, as a MobileNet v1's MACs do not (every layer has
    ``int(filters x width)`` channels). The nearest count is then the last one below the target or the
    first one at or above it, so bisection finds them, asking ``macs_at`` for about 2 log2(len(widths))
    widths instead of every one (building a network to count its MACs takes about a second)."""
    widths = sorted({float(w) for w in widths})
    if not widths:
        raise ValueError("no width to choose from")
    counted: dict[int, int] = {}

    def macs(i: int) -> int:
        if i not in counted:
            counted[i] = int(macs_at(widths[i]))
        return counted[i]

    def first_reaching(value: float, end: int) -> int:
        """The first index below ``end`` whose count is at least ``value`` (``end`` if none is)."""
        lo, hi = 0, end
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if macs(mid) < value else (lo, mid)
        return lo

    above = first_reaching(target_macs, len(widths))                 # the narrowest at or above the target
    nearest = [above] if above < len(widths) else []
    if above > 0:
        nearest.append(first_reaching(macs(above - 1), above - 1))   # the narrowest of the largest count below
    best = min(nearest, key=lambda i: (abs(macs(i) - target_macs), widths[i]))
    return widths[best], macs(best)


def upstream_parameters(results, steps) -> dict:
    """The parameters each of ``steps`` ran with: its stamp (``results/<step>/stamp.json``, written by the
    runner beside the step's results), so a budget counts what was run, not what a profile now says."""
    return {s: read_json(Path(results) / s / "stamp.json")["inputs"]["params"] for s in steps}


SOURCE_STEPS = {"distilled": "distillation", "pretrained": "open_images", "baseline": "baseline"}


def training_budget(source: str, upstream: dict, n_train: int, n_pool: int, own: list[dict]) -> pd.DataFrame:
    """Every pass over training images the stacked model's weights went through, from their random start
    to the stacked file: one row per phase (phase, images). ``upstream``: the parameters the baseline and
    the source's step ran with (:func:`upstream_parameters`); ``own``: the recipe's own passes (``build``'s
    ``info["training"]``). The baseline student's epochs count when the source started from it (``init``
    'trained'); pool images count like labelled ones (an optimizer step is a step, as the open-images
    chapter's same-steps control counts them). The teachers' own training is counted for neither model."""
    base = upstream["baseline"]
    extra, from_baseline = [], True
    if source == "distilled":
        d = upstream["distillation"]
        from_baseline = d.get("init", "trained") == "trained"
        extra = [{"phase": f"distillation ({plural(d['epochs'], 'epoch')})", "images": d["epochs"] * n_train}]
    elif source == "pretrained":
        o = upstream["open_images"]
        from_baseline = o.get("init", "trained") == "trained"
        pool = min(n_pool, int(round(max(o["pool_multipliers"]) * n_train)))
        extra = [{"phase": f"pretraining on the pool ({plural(o['pretrain_epochs'], 'epoch')} x {pool} images)",
                  "images": o["pretrain_epochs"] * pool},
                 {"phase": f"fine-tuning after pretraining ({plural(o['finetune_epochs'], 'epoch')})",
                  "images": o["finetune_epochs"] * n_train}]
    elif source != "baseline":
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCE_STEPS)}")
    start = [{"phase": f"baseline student ({plural(base['epochs'], 'epoch')})", "images": base["epochs"] * n_train}]
    return pd.DataFrame((start if from_baseline else []) + extra + list(own), columns=["phase", "images"])


def width_control(results, out_dir, source: str, stages, info: dict, *, representative_size: int, seed: int):
    """The plain control the stacked model is judged against: the same MobileNet v1 student made faster by
    width alone. Its width is the one of :func:`candidate_widths` (up to the student's) whose MACs are
    nearest the stacked model's; it is trained from scratch on labels with the baseline's recipe and
    parameters (lpirc.models.train_classifier, the baseline's learning rate and batch size) for as many
    epochs as the stacked model's whole history holds training images (:func:`training_budget`, rounded to
    whole epochs), converted to int8 PTQ and evaluated on val and holdout, and compared with the stacked int8
    file image by image (lpirc.evaluate.paired_change). ``results``: results/<profile>/; ``stages``, ``info``:
    what :func:`build` returned. Returns (a one-row stage table like ``build``'s, a dict of what was done)."""
    results, out_dir = Path(results), Path(out_dir)
    upstream = upstream_parameters(results, dict.fromkeys(["baseline", SOURCE_STEPS[source]]))
    spec = upstream["baseline"]["student"]
    if spec.get("arch") != "mobilenet_v1":
        raise ValueError(f"the width control narrows a MobileNet v1 student; the baseline student is {spec.get('arch')!r}")
    splits, classes = data.load_splits(results / "data")
    x_train, y_train = splits.pop("train")
    n_pool = read_json(results / "data" / "dataset.json")["splits"].get("extra", {}).get("n", 0)
    budget = training_budget(source, upstream, len(x_train), n_pool, info["training"])
    epochs = max(1, int(round(budget.images.sum() / len(x_train))))
    resolution, target = int(x_train.shape[1]), float(stages.MMACs.iloc[-1]) * 1e6
    widths = candidate_widths(float(spec.get("width_multiplier", 1.0)))
    width, macs = width_for_macs(target, lambda w: models.count_macs(models.mobilenet_v1(w, resolution, len(classes))), widths)
    set_seed(seed)
    model = models.mobilenet_v1(width, resolution, len(classes))
    fit = models.train_classifier(model, x_train, y_train, *splits["val"], epochs=epochs,
                                  batch_size=upstream["baseline"]["batch_size"],
                                  learning_rate=upstream["baseline"]["learning_rate"], verbose=0)
    rep = quantize.representative_dataset(x_train, representative_size, seed)
    acc = evaluate.int8_top1(model, out_dir / CONTROL_FILE, rep, splits, len(classes))
    row = {"stage": f"control: MobileNet v1 {width:g}, plain (same MACs, same training images)", "form": "int8 PTQ",
           **acc, "MMACs": macs / 1e6, "file": str(out_dir / CONTROL_FILE)}
    paired = {s: evaluate.paired_change(out_dir / CONTROL_FILE, out_dir / "stacked_int8.tflite", x, y, len(classes))
              for s, (x, y) in splits.items()}
    return pd.DataFrame([row]), {
        "width": width, "MMACs": macs / 1e6, "target_MMACs": target / 1e6, "widths_searched": [widths[0], widths[-1]],
        "width_step": WIDTH_STEP, "resolution": resolution, "epochs": epochs, "images": epochs * len(x_train),
        "stacked_images": int(budget.images.sum()), "budget": budget.to_dict(orient="records"),
        "learning_rate": upstream["baseline"]["learning_rate"], "batch_size": upstream["baseline"]["batch_size"],
        "keras_val_top1": models.evaluate_keras(model, *splits["val"])["top1"], "train_time_s": fit["train_time_s"],
        "stacked_minus_control": paired, "file": f"{out_dir.name}/{CONTROL_FILE}"}


def plain_baseline(results) -> pd.DataFrame:
    """The plain int8 baseline the stacked claim is also judged against, as a one-row stage table like
    :func:`build`'s: the quantization chapter's int8 PTQ file of the baseline student (its accuracy from that
    chapter's table, its MACs counted on the file). Timed in this chapter with the stacked model, so the pair
    has one ratio in the book."""
    results = Path(results)
    v = pd.read_csv(results / "quantization" / "tables" / "variants.csv").set_index("key").loc["int8_ptq"]
    path = results / "quantization" / v.file
    return pd.DataFrame([{"stage": "plain int8 baseline (the quantization chapter's file)", "form": "int8 PTQ",
                          "val_top1": v.val_top1, "holdout_top1": v.holdout_top1,
                          "MMACs": sum(op["macs"] for op in flatbuffer.operators(path)) / 1e6, "file": str(path)}])


def control_note(c: dict) -> str:
    """The width control in words, from :func:`width_control`'s record."""
    if not c:
        return "This run trained no width control (`width_control = False`): the stacked claim's control part is inconclusive."
    budget = "; ".join(f"{r['phase']}: {r['images']:,}" for r in c["budget"])
    v, h = c["stacked_minus_control"]["val"], c["stacked_minus_control"]["holdout"]

    def change(r):
        return f"{r['change_points']:+.2f} points [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] (McNemar p = {r['p_mcnemar']:.3g})"
    return (f"The width control is MobileNet v1 **{c['width']:g}** at {c['resolution']} px: {c['MMACs']:.3f} MMACs against the "
            f"stacked model's {c['target_MMACs']:.3f}, the nearest of the widths {c['widths_searched'][0]:g} to "
            f"{c['widths_searched'][1]:g} in steps of {c['width_step']:g}. It trained from scratch on labels with the baseline's "
            f"recipe (Adam, cosine decay from {c['learning_rate']:g}, batch {c['batch_size']}) for {plural(c['epochs'], 'epoch')}, "
            f"{c['images']:,} training images, against the {c['stacked_images']:,} of the stacked model's whole history "
            f"({budget}). Stacked int8 minus control int8, paired by image (95%): validation {change(v)}, holdout "
            f"{change(h)}. Both are single training runs. The claim is judged in the summary: its one-sided tests at 5% "
            "show the 90% interval of the same validation difference, and its latency ratio is this chapter's timing of the "
            "two files (the table above), which the benchmark chapter's table collects as it is.")


def start_note(results, source: str, start_path) -> str:
    """Which student the stacked model starts from, and where that one run sits in its arm: its seed, found
    by its weights' digest among the source chapter's runs (tables/runs.csv), and the arm's mean, 95%
    t half-width and SD over seeds (validation top-1, float), so a reader sees whether the start was a
    lucky seed. A baseline start is a single run: there is no arm to place it in."""
    results = Path(results)
    if source == "baseline":
        return ("The stacked model starts from the baseline student: one training run, with no other seeds of it "
                "in the book, so how far another seed would move it is not measured here.")
    step = SOURCE_STEPS[source]
    runs = pd.read_csv(results / step / "tables" / "runs.csv", dtype={"weights_sha256": str})
    m = read_json(results / step / "metrics.json")
    if source == "distilled":
        b = m["best"]
        arm = runs[(runs.budget == "equal epochs") & (runs.alpha == b["alpha"]) & runs.teacher.isin([b["teacher"], "none"])]
        name = f"α = {b['alpha']:g}, teacher {b['teacher']} ({step} chapter)"
    else:
        arm = runs[runs.arm == m["largest_pool_arm"]]
        name = f"arm {m['largest_pool_arm']} ({step} chapter)"
    digest = models.weights_digest(models.load_model(start_path))[:16]
    mine = arm[arm.weights_sha256 == digest]
    if mine.empty:
        return f"The stacked model starts from {start_path}; no run of {name} has its weights, so its seed is unknown."
    me, vals = mine.iloc[0], arm.val_top1.to_numpy(float)
    which = (", the lowest seed number, fixed in advance rather than chosen for its accuracy" if me.seed == arm.seed.min()
             else "")
    text = (f"The stacked model starts from one run, not from the arm: **seed {int(me.seed)}** of {name}{which}. Its float "
            f"validation top-1 is {100 * me.val_top1:.2f}%")
    if len(vals) < 2:
        return text + (" and the arm has no other seed in this run, so how far another seed would move it (and the width "
                       "control, also a single run) is not measured here.")
    mean, half = mean_ci(vals)
    rank = int((vals > me.val_top1).sum()) + 1
    return text + (f" against the arm's mean **{100 * mean:.2f}% ± {100 * half:.2f}** (95% t half-width; SD "
                   f"{100 * np.std(vals, ddof=1):.2f} points over {plural(len(vals), 'seed')}): "
                   f"{100 * (me.val_top1 - mean):+.2f} points from the mean, {rank} of {len(vals)} from the top. That spread is the scale by which another seed could "
                   "move the stacked model, and its width control, both single runs.")


def recipe_change(models_dir, data_dir) -> dict:
    """The whole recipe's change on validation, image by image: the start's int8 file against the stacked int8
    file (lpirc.evaluate.paired_change). One computation, which the stage sentence, the chapter's summary and
    its exercise all quote."""
    x, y = data.load_split(Path(data_dir), "val")
    classes = read_json(Path(data_dir) / "dataset.json")["classes"]
    return evaluate.paired_change(Path(models_dir) / "start_int8_ptq.tflite", Path(models_dir) / "stacked_int8.tflite",
                                  x, y, len(classes))


def stage_note(stages, change: dict) -> str:
    """The validation top-1 change of each stage of :func:`build`'s table, in words. Truncation and per-layer
    fine-tuning are read together: fine-tuning exists to undo truncation, so the factorization's cost is the
    net change from the float start to the fine-tuned float model, not the truncation's. ``change``: what
    :func:`recipe_change` returned (the start's int8 file to the stacked int8 file)."""
    v = 100 * stages.val_top1.to_numpy(float)
    cut, ft, net = v[2] - v[0], v[3] - v[2], v[3] - v[0]
    undone = f", undoing {100 * ft / -cut:.0f}% of it" if cut < 0 < ft else ""
    steps = {"factorizing (after fine-tuning)": net, "QAT": v[5] - v[3], "the int8 conversion": v[6] - v[5]}
    most = max(steps, key=lambda k: abs(steps[k]))
    lo, hi = change["ci95"]
    return (f"Validation top-1 change per stage: truncation {cut:+.2f} points, then per-layer fine-tuning {ft:+.2f}{undone}, "
            f"so factorizing changes it by **{net:+.2f} points** net (float start to fine-tuned float); QAT (fake-quantized "
            f"graph vs float) {steps['QAT']:+.2f}; the int8 conversion of the QAT model {steps['the int8 conversion']:+.2f}. "
            f"Of these net steps, {most} moves validation top-1 the most. Start (int8 PTQ) to stacked int8: "
            f"**{change['change_points']:+.2f} points** [{lo:+.2f}, {hi:+.2f}] (95%, paired by image on {change['n']} "
            "validation images; the second exercise reads it).")


def latency_note(stages, arch, data_dir) -> str:
    """A limitation of the stacked claim's latency, from the chapter's timing tables: the claim is judged on the
    embedded task's small files (``stages``, timed in this chapter), where a file's time is mostly each
    operator's fixed overhead, while a phone runs the challenge's architecture (``arch``: unfactorized, then
    the stacked factorization, with their latency ratio)."""
    size = read_json(Path(data_dir) / "dataset.json").get("image_size")
    int8 = stages[stages.file.notna()]
    start, last = int8.iloc[0], int8.iloc[-1]
    return (f"**A limitation of the stacked claim's latency.** The claim is judged on the embedded task's "
            f"{f'{size}x{size} ' if size else ''}files: there the stacked int8 file has {last.MMACs / start.MMACs:.2f}x "
            f"the start's MACs ({last.MMACs:.2f} against {start.MMACs:.2f} MMACs) and runs at "
            f"{fmt_interval(last.latency_ratio, last.ratio_ci_low, last.ratio_ci_high)}x its latency. Files this small "
            "spend their time mostly in each operator's fixed overhead, not in arithmetic, and factorizing adds operators, "
            "so fewer MACs need not mean less time there. On the challenge's architecture the same factorization runs at "
            f"{fmt_interval(arch.latency_ratio.iloc[1], arch.ratio_ci_low.iloc[1], arch.ratio_ci_high.iloc[1], 3)}x the "
            f"unfactorized latency with {arch.MMACs.iloc[1] / arch.MMACs.iloc[0]:.2f}x the MACs. That ratio, not the small "
            "files', is the one that matters on a phone; the claim's latency verdict speaks for the small files only.")

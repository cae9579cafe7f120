""""What to take away": three to five points per chapter, written from the chapter's own results.

Each chapter ends with :func:`show`, which reads what its step has just written (``claims.json``,
``metrics.json``, ``tables/*.csv`` in the step's folder, and the results of the steps it reads) and
states the verdicts and the numbers that carry them, with the reasoning in words. Nothing here is
typed by hand: a number in a takeaway is read from a results file, and a sentence that depends on the
outcome (rising or levelled, above or below) is chosen by the numbers.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from lpirc.claims import seeds_needed
from lpirc.report import say
from lpirc.stats import session_spread

MIN_POINTS, MAX_POINTS = 3, 5


# --------------------------------------------------------------------------------------------------
# reading a step's results
def _json(path: Path):
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def _csv(path: Path):
    return pd.read_csv(path) if Path(path).exists() else None


def _claims(folder: Path) -> dict:
    return {c["id"]: c for c in (_json(Path(folder) / "claims.json") or [])}


def _finite(*values) -> bool:
    return all(v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in values)


def wilson_half_width(p: float, n: int) -> float:
    """Half the width, in points, of the 95% Wilson interval of an accuracy ``p`` over ``n`` images."""
    lo, hi = proportion_confint(round(p * n), n, alpha=0.05, method="wilson")
    return 50 * (hi - lo)


# --------------------------------------------------------------------------------------------------
# a claim as a point: the verdict, the number it was read from, and why
_WHY = {
    "reproduced": "the whole interval lies on the claim's side of its criterion, so the entry's observation holds here",
    "not reproduced": ("the interval lies wholly on the other side of the criterion: the observation, in the strength "
                       "the criterion asks of it, does not hold here"),
    "inconclusive": "the interval straddles the criterion, so this run cannot tell either way",
}


def _score(est: float, low: float, high: float) -> str:
    """A score with its interval, or alone when the interval has no width (a published top-1 under the knee)."""
    return f"{est:.1f}" if low == high else f"{est:.1f} [{low:.1f}, {high:.1f}]"


def claim_point(claim: dict, label: str | None = None) -> str:
    """'**label: verdict.** estimate [interval] unit (confidence). Why.' from one claims.json entry."""
    label = label or claim["id"].replace("_", " ")
    est, (lo, hi) = claim.get("estimate"), claim.get("interval", (math.nan, math.nan))
    conf = 100 * claim.get("confidence", 0.95)
    sign = "+" if "point" in claim.get("unit", "") or "loss" in claim.get("unit", "") else ""   # a difference, not a ratio
    number = (f"{est:{sign}.2f} [{lo:{sign}.2f}, {hi:{sign}.2f}] {claim.get('unit', '')} ({conf:g}% interval)"
              if _finite(est, lo, hi) else f"estimate {est} ({claim.get('unit', '')})")
    detail = claim.get("detail") or ""
    if detail.startswith("accuracy:"):        # a claim of two parts (accuracy and latency), both of which must hold
        parts = [d for d in detail.split("; ") if d.startswith(("accuracy:", "latency", "against"))]
        parts[0] = f"{parts[0]} ({number})"
        return (f"**{label}: {claim['verdict']}.** Every part must hold, and the verdict combines them:\n"
                + "\n".join(f"  - {d[0].upper() + d[1:]}" for d in parts))
    text = f"**{label}: {claim['verdict']}.** {number}: {_WHY.get(claim['verdict'], '')}"
    md, design = claim.get("min_detectable"), claim.get("design") or {}
    if claim["verdict"] == "inconclusive" and _finite(md) and _finite(design.get("margin_points")):
        text += (f"; with {design.get('n', '?')} seeds the run could settle only {md:.2f} points against a margin of "
                 f"{design['margin_points']:g}, so more seeds, not a different answer, is what it lacks"
                 if md > design["margin_points"] else
                 f"; the run had the power for its margin ({design.get('n', '?')} seeds settle {md:.2f} points against "
                 f"{design['margin_points']:g}): it is inconclusive because "
                 + ("its interval reaches from no gain to the smallest gain that matters, so the gain, if any, is small"
                    if design.get("kind") == "superiority" else
                    "its interval reaches across the margin, so whether that difference lies within it is not settled"))
    return text + "."


def points(step: str, folder, results=None) -> list[str]:
    """The chapter's takeaway, 3 to 5 points. ``folder``: the step's own output folder (what it has just
    written); ``results``: results/<profile>/ (the steps it read)."""
    folder = Path(folder)
    results = Path(results) if results is not None else folder.parent
    found = [p for p in CHAPTERS[step](folder, results) if p]
    if not MIN_POINTS <= len(found) <= MAX_POINTS:
        raise ValueError(f"the {step} chapter's takeaway has {len(found)} points; it should have "
                         f"{MIN_POINTS} to {MAX_POINTS}: {found}")
    return found


def show(step: str, folder, results=None) -> None:
    """Display the chapter's takeaway as a bullet list (returns nothing, so a notebook cell ending with
    it shows the list and no value)."""
    say("\n".join(f"- {p}" for p in points(step, folder, results)))


# --------------------------------------------------------------------------------------------------
# the chapters
def data(folder: Path, results: Path) -> list[str]:
    m = _json(folder / "metrics.json")
    n = {s: v["n"] for s, v in m["splits"].items()}
    k = len(m["classes"])
    balance = _csv(folder / "tables" / "class_balance.csv")
    pts = [f"Models learn from {n['train']} labelled training images and are compared on {n['val']} validation images; "
           + (f"the {n['holdout']} holdout images are scored last, as the challenge's freshly collected test images were, "
              "so a choice made on validation is checked on images it was never tuned on." if n.get("holdout") else
              "there is no holdout split, so a choice made on validation is not checked on unseen images.")]
    if balance is not None and "train" in balance:
        lo, hi = int(balance.train.min()), int(balance.train.max())
        pts.append(f"The {k} classes are {'exactly ' if lo == hi else ''}balanced ({lo if lo == hi else f'{lo}–{hi}'} "
                   f"training images per class), so chance is {100 / k:.0f}% and no majority class inflates top-1.")
    if n.get("holdout") and m.get("source") == "embedded":
        pts.append("The holdout split is drawn from a shifted distribution (unseen backgrounds, smaller objects, looser "
                   "colours, more noise): a gap between a model's validation and holdout top-1 measures how well it "
                   "carries over to new conditions, not only how well it fits the validation images.")
    if m.get("source") == "embedded":
        pts.append(f"Generating every split took {m['generation_s']:.1f} s and the same seed reproduces each image array "
                   "byte for byte (digests in dataset.json), so every chapter's numbers start from the same images. "
                   "Top-1 here ranks techniques on one student; it is never compared with an ImageNet figure.")
    else:
        pts.append("The images are read from their folders as they are needed (streamed), never decoded into one "
                   "array, so memory does not grow with the number of images; a corrupt file is named by its path.")
    return pts


def point_of_top1(folder: Path) -> str:
    """The data chapter's first exercise, answered from this run: what one point of top-1 is on the
    validation split, and whether two single accuracies one point apart have disjoint Wilson intervals."""
    n = _json(Path(folder) / "metrics.json")["splits"]["val"]["n"]
    a, b = wilson_half_width(0.60, n), wilson_half_width(0.61, n)
    return (f"{n} validation images: one point of top-1 is {n / 100:g} images, and an accuracy of 60% is known to "
            f"±{a:.2f} points (95% Wilson). Two accuracies one point apart (60% and 61%) have intervals that "
            + (f"overlap, since their half-widths add up to {a + b:.2f} points: the two intervals cannot tell the models "
               "apart, though a paired test on the same images may." if a + b >= 1 else
               f"do not overlap (their half-widths add up to {a + b:.2f} points): even two separate intervals tell them apart."))


def baseline(folder: Path, results: Path) -> list[str]:
    t = _csv(folder / "tables" / "baseline.csv")
    n = {s: v["n"] for s, v in _json(results / "data" / "dataset.json")["splits"].items()}
    s = t[t.role == "student"].iloc[0]
    hw_v, hw_h = wilson_half_width(s.val_top1, n["val"]), wilson_half_width(s.holdout_top1, n["holdout"])
    gap = 100 * (s.val_top1 - s.holdout_top1)
    pts = [f"The student reaches {100 * s.val_top1:.1f}% ± {hw_v:.1f} validation and {100 * s.holdout_top1:.1f}% ± "
           f"{hw_h:.1f} holdout top-1 (95% Wilson): the shift costs it {gap:.1f} points, "
           + ("more than both intervals' half-widths together, so the shift is real, not noise."
              if abs(gap) > hw_v + hw_h else "within the two intervals' half-widths, so one run cannot separate it from noise.")]
    teachers = t[t.role == "teacher"].sort_values("val_top1")
    if len(teachers):
        best = teachers.iloc[-1]
        d = 100 * (best.val_top1 - s.val_top1)
        pts.append(f"The best teacher, {best.model}, is {abs(d):.1f} points {'above' if d >= 0 else 'below'} the student "
                   "on validation: "
                   + ("that margin is what distillation can hope to pass on." if d > hw_v else
                      "no more than the noise of one accuracy, so a teacher here has little the labels do not already say."))
        trained = teachers[teachers.train_time_s > 0]
        if len(trained) and s.train_time_s > 0:
            pts.append(f"Training the teachers cost {trained.train_time_s.sum() / s.train_time_s:.1f}x the student's "
                       "training time: the price the distillation chapter pays once, before any student learns from them.")
    pts.append("Every later chapter starts from this student, so a technique's gain is always measured against a "
               "control that trained as long from the same start, never against this table's row.")
    return pts[:MAX_POINTS]


def last_epoch(folder: Path, n_val: int) -> str:
    """The baseline chapter's first exercise, answered from this run: the student's validation top-1 change
    in its last epoch and over its last three, beside the half-width of one accuracy on ``n_val`` images,
    a conservative yardstick for a change between two evaluations of the same images."""
    curve = (_json(Path(folder) / "histories.json") or {}).get("student", {}).get("val_top1", [])
    if len(curve) < 2:
        return "The student trained for a single epoch here: there is no last-epoch change to read."
    last, hw = 100 * (curve[-1] - curve[-2]), wilson_half_width(curve[-1], n_val)
    k = min(3, len(curve) - 1)
    late = 100 * (curve[-1] - curve[-1 - k])
    verdict = ("it was still rising when training stopped, so more epochs would raise every chapter's starting point, "
               "and each technique must be compared with a control that trained as long." if late > hw else
               "it fell over its last epochs by more than that: the final weights are not its best." if late < -hw else
               "by that yardstick the curve had flattened; a smaller rise could still be real, which only a per-image "
               "comparison of the two epochs' predictions could show.")
    return (f"In its last epoch the student's validation top-1 moved {last:+.2f} points, and {late:+.2f} over its last "
            f"{k} epochs. The ±{hw:.2f} points of one accuracy (95% Wilson) is a conservative yardstick for such a change: "
            f"both evaluations score the same images, and the images right or wrong at both cannot move it. Over the last "
            f"{k} epochs, {verdict}")


def batchnorm_window(n_train: int, batch_size: int, epochs: int, momentum: float = 0.9,
                     keras_default: float = 0.99) -> str:
    """The baseline chapter's second exercise: over how many steps each BatchNorm momentum averages,
    against the run's length in steps."""
    per_epoch = math.ceil(n_train / batch_size)
    steps = per_epoch * epochs
    w_ours, w_keras = 1 / (1 - momentum), 1 / (1 - keras_default)
    return (f"This run trains {steps} steps ({epochs} epoch{'s' if epochs != 1 else ''} of {per_epoch} batches of {batch_size}). A running average "
            f"with momentum m forgets with a time constant of 1 / (1 − m) steps: {w_ours:.0f} steps at {momentum:g}, "
            f"{w_keras:.0f} at Keras' default {keras_default:g}, that is {100 * w_keras / steps:.0f}% of the whole run. "
            "The statistics used at evaluation then describe the weights of long ago while the weights change fastest, "
            "so validation accuracy lags far behind training; the shorter window keeps them current.")


def quantization(folder: Path, results: Path) -> list[str]:
    c = _claims(folder)
    m = _json(folder / "metrics.json")
    v = _csv(folder / "tables" / "variants.csv").set_index("key")
    arch = _csv(folder / "tables" / "challenge_architecture.csv")
    pts = [claim_point(c["quantization"], "int8 keeps accuracy and is fast enough") if "quantization" in c else None]
    agree = m.get("int8_float_agreement", {}).get("int8_ptq")
    if _finite(agree):
        pts.append(f"int8 PTQ makes the same top-1 decision as the float32 file on {100 * agree:.2f}% of validation "
                   "images; accuracy can only move through the remaining images, which is why the two accuracies are "
                   "compared image by image (a paired test) rather than as two separate numbers.")
    if arch is not None and len(arch) > 1:
        r = arch.iloc[1]
        pts.append(f"On the challenge's architecture int8 runs at {r.latency_ratio:.2f}x [{r.ratio_ci_low:.2f}, "
                   f"{r.ratio_ci_high:.2f}] float32's latency on this host: "
                   + ("int8 is faster at full size, where the large convolutions dominate — the case the entry's claim is about."
                      if r.ratio_ci_high < 1 else "int8 is slower at full size on this host." if r.ratio_ci_low > 1 else
                      "no difference can be told at full size on this host."))
    if "dynamic_range" in v.index and "int8_ptq" in v.index and _finite(v.latency_ratio["dynamic_range"]):
        def ratio(k):
            return f"{v.latency_ratio[k]:.2f}x [{v.ratio_ci_low[k]:.2f}, {v.ratio_ci_high[k]:.2f}]"
        full_lo, full_hi = v.ratio_ci_low["int8_ptq"], v.ratio_ci_high["int8_ptq"]
        pts.append(f"On the 32x32 student itself, full int8 runs at {ratio('int8_ptq')} float32's latency and dynamic range "
                   f"at {ratio('dynamic_range')} (95% intervals across timing sessions): "
                   + ("on a model this small int8 is slower than float32, since the fixed cost of each operator and of "
                      "requantizing its output outweighs the arithmetic it saves; the claim is about the challenge's "
                      "architecture, where the arithmetic dominates." if full_lo > 1 else
                      "int8 is faster even on a model this small." if full_hi < 1 else
                      "on a model this small int8 is not measurably faster than float32; the arithmetic it saves is a "
                      "small part of the time."))
    return pts


def factorization(folder: Path, results: Path) -> list[str]:
    c = _claims(folder)
    m = _json(folder / "metrics.json") or {}
    pts = [claim_point(c[k], label) for k, label in (("factorization_latency", "factorizing cuts latency as far as the entry's"),
                                                      ("factorization_accuracy", "fine-tuning keeps accuracy")) if k in c]
    if (c.get("factorization_latency") or {}).get("detail"):
        pts[0] = pts[0][:-1] + f"; the factorized file is {c['factorization_latency']['detail']}."
    sweep = _csv(folder / "tables" / "sweep.csv")
    if sweep is not None and (sweep.K > 0).any():
        deep = sweep[sweep.K == sweep.K.max()].sort_values("rank_fraction").iloc[0]
        base = sweep.iloc[0]
        lost, kept = 100 * (base.val_top1 - deep.val_top1_before_ft), 100 * (base.val_top1 - deep.val_top1)
        pts.append(f"Truncating {int(deep.K)} layers at rank fraction {deep.rank_fraction:g} costs {lost:.1f} points of int8 "
                   f"validation top-1 against the unfactorized student before any fine-tuning, and per-layer fine-tuning "
                   f"brings that loss to {kept:.1f} (one run each; the claim above compares with the same-budget control): "
                   + ("fine-tuning wins back most of what truncation took, as the entry found." if lost > 0 and kept < lost / 2 else
                      "fine-tuning wins back less than half of it here." if lost > 0 else
                      "truncation alone cost nothing measurable on this student, so fine-tuning had nothing to win back."))
    versus = m.get("comparison_at_equal_latency")
    if versus:
        lo, hi = versus["ci95"]
        dom = versus.get("dominated_by") or []
        pts.append(f"On the {versus.get('split', 'validation')} split, the latency-aware choice differs from the "
                   f"configuration most accurate on validation at most as slow ({versus['uniform']}) by "
                   f"{versus['difference_points']:+.2f} points [{lo:+.2f}, {hi:+.2f}]: "
                   + (f"a simpler choice is at most as slow and at least as accurate on holdout ({', '.join(dom)}; point "
                      "estimates" + (", and on one seed each the two cannot be told apart)." if lo <= 0 <= hi else ").")
                      if dom else "choosing layers by measured latency paid off." if lo > 0 else
                      "choosing layers by measured latency cost accuracy." if hi < 0 else
                      "on one seed each, the two cannot be told apart."))
    elif m.get("greedy"):
        pts.append("Every uniform configuration measured is slower than the latency-aware choice, so it has no "
                   "uniform rival at its speed.")
    pts.append("MACs count arithmetic, not operator launches or passes over the activations, so every configuration "
               "is timed rather than predicted from its MACs; the break-even figure shows where the two part.")
    return pts[:MAX_POINTS]


def distillation(folder: Path, results: Path) -> list[str]:
    c = _claims(folder)
    labels = {"mixing_ratio": "the mixing ratio does not matter", "distillation_helps": "distillation helps",
              "lighter_teacher": "a lighter teacher gives a better student in the same time"}
    pts = [claim_point(c[k], labels[k]) for k in labels if k in c]
    pairs = ((c.get("mixing_ratio") or {}).get("design") or {}).get("pairs") or {}
    apart = [f"{name} ({d:+.2f} [{lo:+.2f}, {hi:+.2f}])" for name, (d, lo, hi) in pairs.items() if lo > 0 or hi < 0]
    if apart:
        pts.append(f"The entry's words were \"no significant differences\"; this run, with {len(pairs)} comparisons of "
                   f"α > 0 values, finds {len(apart)} whose 90% interval excludes zero: {'; '.join(apart)} (each at "
                   "the 90% level, not corrected for the number of comparisons). At this run's precision the ratios do "
                   "differ a little; the claim as tested asks whether they differ by less than the margin that matters.")
    runs = _csv(folder / "tables" / "runs.csv")
    if runs is not None and "val_curve" in runs:
        runs = runs[runs.get("budget", pd.Series("equal epochs", index=runs.index)) == "equal epochs"]
        curves = [json.loads(v.replace("nan", "NaN")) for v in runs.val_curve if isinstance(v, str) and v.startswith("[")]
        curves = [cv for cv in curves if len(cv) >= 2]
        if len(curves) >= 2:
            d = 100 * np.array([cv[-1] - cv[-2] for cv in curves])
            half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
            lo, hi = d.mean() - half, d.mean() + half
            pts.append(f"In the last epoch validation top-1 moved by {d.mean():+.2f} points [{lo:+.2f}, {hi:+.2f}] on "
                       f"average over the {len(d)} students (95%): "
                       + ("the learning curves were still rising, so the verdicts describe students that had not finished "
                          "learning, and more epochs could change them." if lo > 0 else
                          "the learning curves were falling at the end." if hi < 0 else
                          "the learning curves had levelled off, so more epochs would not obviously change the verdicts."))
    teachers, costs = _csv(folder / "tables" / "teachers.csv"), (_json(folder / "metrics.json") or {}).get("online_costs_ms", {})
    if "lighter_teacher" in c and teachers is not None and len(teachers) >= 2 and all(t in costs for t in teachers.teacher):
        t = teachers.assign(ms=teachers.teacher.map(costs)).sort_values("ms")
        fast, slow = t.iloc[0], t.iloc[-1]
        better = "more" if fast["val top-1 (%)"] > slow["val top-1 (%)"] else "less"
        pts.append(f"{fast.teacher}, the teacher that is faster per image ({fast.ms:.2f} against {slow.ms:.2f} ms online), is "
                   f"also the {better} accurate one ({fast['val top-1 (%)']:.1f}% against {slow['val top-1 (%)']:.1f}% "
                   f"validation top-1) with {fast.MMACs / slow.MMACs:.1f}x the MACs"
                   + (": this experiment cannot tell a lighter teacher from a better one." if better == "more" else "."))
    untested = [labels[k] for k in labels if k not in c]
    if untested:
        pts.append("This run's grid could not test " + "; ".join(f"*{u}*" for u in untested) + ": its profile has too "
                   "few mixing ratios, teachers or seeds for that claim's design (the default profile tests all three).")
    if len(pts) < MIN_POINTS:
        pts.append("Every comparison here is paired by seed: two students trained with the same seed share their data "
                   "order, so the seed-to-seed variation cancels in their difference and fewer seeds settle a question.")
    if len(pts) < MIN_POINTS:
        pts.append("A verdict is computed against the margin written in criteria/claims.yaml before the run, never "
                   "chosen after seeing the numbers.")
    return pts[:MAX_POINTS]


def open_images(folder: Path, results: Path) -> list[str]:
    c = _claims(folder)
    m = _json(folder / "metrics.json")
    pts = [claim_point(c["pretraining"], "pretraining on the unlabeled pool helps") if "pretraining" in c else None]
    tests = _csv(folder / "tables" / "paired_tests.csv")
    if tests is not None and m:
        t = tests[(tests.other == m["largest_pool_arm"]) & (tests.reference == m["control"])]
        parts = [f"{r.split} {100 * r.difference:+.2f}" + (f" [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"
                                                          if _finite(r.ci_low, r.ci_high) else " (one seed: no interval)")
                 for r in t.itertuples() if _finite(r.difference)]
        if parts:
            pts.append(f"Against the same-steps control ({m['control']}), the largest pool arm differs by "
                       f"{'; '.join(parts)} points (paired by seed, 95%): the control trains as many extra steps on the "
                       "labelled data, so a gain over it is not just training longer.")
    agg = pd.DataFrame(m["aggregated"]) if m and m.get("aggregated") else None
    if agg is not None and "wall_s" in agg:
        big = agg[agg.arm == m["largest_pool_arm"]].wall_s.iloc[0]
        ctrl = agg[agg.arm == m["control"]].wall_s.iloc[0]
        if _finite(big, ctrl) and ctrl > 0:
            pts.append(f"A pretrained student costs {big / ctrl:.1f}x the control's wall time per run: the time the "
                       "entry did not have before its deadline.")
    pts.append("The pool plays Open Images' role only in structure (broader, partly out-of-vocabulary, unlabeled); "
               "whether the entry's paused experiment would have paid off on ImageNet is not something this task can settle.")
    return pts


def benchmark(folder: Path, results: Path) -> list[str]:
    m = _json(folder / "metrics.json")
    pts = []
    ops = _csv(folder / "tables" / "per_layer.csv")
    a = m["per_layer"]
    if ops is not None:
        pw = ops[ops.unit.str.startswith("conv_pw")]
        r = a["ratio_single"]
        pts.append(f"Pointwise (1x1) convolutions take {100 * pw.share.sum():.0f}% of the profiled model's time and "
                   f"{100 * pw.macs.sum() / ops.macs.sum():.0f}% of its MACs, so factorizing them can save at most that share "
                   f"of the time; the per-layer times add up to {r:.3f}x the whole model, "
                   + ("so the shares can be trusted." if abs(r - 1) <= 0.05 else
                      "more than 5% off, so read the shares as rough."))
    loo = pd.DataFrame(m.get("loo", []))
    if len(loo) and "LOO median |error| (%)" in loo:
        li = loo.set_index("precision")["LOO median |error| (%)"]
        pts.append(f"The projection from this host to a Pixel 2 misses a left-out published latency by a median "
                   f"{li.get('int8', math.nan):.1f}% (int8); it is used only inside the range it was fitted on, and "
                   "every projected latency carries its prediction interval.")
    lat = _csv(folder / "tables" / "latency.csv")
    if lat is not None and "session_ratios" in lat:
        dev = [d for d in lat.session_ratios.map(session_spread) if _finite(d) and d > 0]
        if dev:
            pts.append(f"A latency ratio moves by a median {100 * float(np.median(dev)):.1f}% (SD) from one timing session "
                       "to the next; the book's ratio intervals are taken across sessions, so they carry that movement, "
                       "which an interval from the rounds of a single session would leave out.")
    if ops is not None and "efficiency" in ops and _finite(a.get("peak_gmacs_per_s")):
        beat, resolved = int((ops.efficiency > 1).sum()), int(a.get("resolved", ops.efficiency.notna().sum()))
        pts.append(f"The floor uses a measured peak of {a['peak_gmacs_per_s']:.0f} GMAC/s, not the data sheet's; "
                   f"{beat} of the {resolved} operators resolved against the timing noise beat it"
                   + (", so it is a bound, and an operator's distance from it is what a better kernel could still gain."
                      if beat == 0 else ": the peak underestimates what this host can do, and the floor is not a bound."))
    scores = _csv(folder / "tables" / "scores.csv")
    if scores is not None and len(scores) and len(pts) < MAX_POINTS:
        pts.append(f"Among the ImageNet references the rule ranks {scores.model.iloc[0]} first (score "
                   f"{scores.score.iloc[0]:.1f}): the score rewards the fastest model only down to 30 ms per image.")
    return pts[:MAX_POINTS]


def stacked(folder: Path, results: Path) -> list[str]:
    m = _json(folder / "metrics.json")
    st = pd.DataFrame(m["stages"])
    v = st.val_top1.to_numpy()
    pts = []
    if len(v) >= 7:
        steps = {"truncation": v[2] - v[0], "per-layer fine-tuning": v[3] - v[2], "QAT": v[5] - v[3],
                 "the int8 conversion": v[6] - v[5]}
        pts.append("Stage by stage on validation (one run): " + ", ".join(f"{k} {100 * d:+.2f}" for k, d in steps.items())
                   + " points. "
                   + ("Fine-tuning wins back much of what truncation takes, so the number to improve is the net change "
                      if steps["truncation"] < 0 < steps["per-layer fine-tuning"] else "The number to judge is the net change ")
                   + f"from factorizing, {100 * (v[3] - v[0]):+.2f} points (float, after fine-tuning), not one stage alone.")
        pair = m.get("start_to_stacked") or {}
        change = pair.get("change_points", 100 * (v[6] - v[1]))
        pts.append(f"From its {m['source']} start (int8 PTQ) to the stacked int8 file, validation top-1 changes by "
                   f"{change:+.2f} points; whether that change is real is judged image by image in the "
                   "second exercise below, not by comparing the two accuracies.")
    p2 = m["arch"]["pixel2"]
    lo, hi = p2["ci95"]
    pts.append(f"Its factorization on the challenge architecture projects {p2['pixel2_ms']:.1f} [{lo:.1f}, {hi:.1f}] ms on "
               f"a Pixel 2 against {p2['reference_ms']:g} ms published unfactorized. That interval carries the host "
               "timing's uncertainty only; how far a host ratio transfers to a phone (the benchmark chapter's transfer "
               "error) widens it in the summary, so which side of the 30 ms knee the stacked model falls "
               "on is not settled here.")
    pts.append("Each stage is evaluated on its own, so a loss is charged to the stage that caused it rather than to "
               "\"stacking\": to improve the stacked model, improve that stage.")
    return pts


def rule(folder: Path, results: Path) -> list[str]:
    c = _claims(folder)
    m = _json(folder / "metrics.json")
    pts = [claim_point(c[k], "a search would have beaten the entry") for k in c]
    best, bw, g = m["best"], m["best_width_resolution"], m["greedy"]
    knee = m["knee_ms"]
    pts.append(f"The exhaustive search picks {best['config']} at {best['latency_ms']:.1f} ms, score "
               f"{_score(best['score'], best['score_low'], best['score_high'])}, against the entry's {m['entry_score']:.1f}: "
               + (f"its projected latency [{best['latency_low']:.1f}, {best['latency_high']:.1f}] ms is "
                  + ("wholly under the knee" if best["latency_high"] <= knee else "wholly above the knee"
                     if best["latency_low"] > knee else "on both sides of the knee") + ". "
                  if _finite(best.get("latency_low"), best.get("latency_high")) else "")
               + ("The rule pays for accuracy up to 30 ms and nothing for speed below it, so the best choice is the most "
                  "accurate configuration near the knee." if best["latency_ms"] <= knee else
                  "No configuration under the knee scored more."))
    pts.append(f"The greedy search stops at {g['config']} ({g['score']:.1f}) against the exhaustive search's "
               f"{best['score']:.1f}: " + ("the same answer, so a NetAdapt-style search would have found it."
                                           if g["config"] == best["config"] else
                                           "a one-level-at-a-time search can overshoot the knee and lose score the rule gives for free."))
    pts.append(f"Over width x resolution alone the best is {bw['config']} ({bw['top1_source']} top-1): the rule rewards "
               "accuracy at the knee, not speed below it, so the question is always which model is most accurate at 30 ms.")
    return pts[:MAX_POINTS]


def summary(folder: Path, results: Path) -> list[str]:
    found = _json(folder / "claims.json") or []
    verdicts = pd.Series([c["verdict"] for c in found])
    names = {v: [c["id"].replace("_", " ") for c in found if c["verdict"] == v] for v in verdicts.unique()}
    pts = [f"Of the {len(found)} claims tested (the entry's observations as it made them, its stacked model judged on one "
           "task, and the search the rule rewarded), " + "; ".join(
        f"{len(names[v])} {v} ({', '.join(names[v])})" for v in ("reproduced", "not reproduced", "inconclusive") if v in names)
        + ". A verdict is read off an interval against a criterion fixed before the run, never off a p-value alone."]
    undecided = [c for c in found if c["verdict"] == "inconclusive"]
    if undecided:
        underpowered = [c for c in undecided if _finite(c.get("min_detectable"))
                        and c["min_detectable"] > (c.get("design") or {}).get("margin_points", math.inf)]
        on_margin = [c for c in undecided if _finite(c.get("min_detectable")) and c not in underpowered]
        other = [c for c in undecided if c not in underpowered and c not in on_margin]
        say_ids = lambda cs: ", ".join(c["id"].replace("_", " ") for c in cs)  # noqa: E731
        pts.append("Why the inconclusive verdicts are inconclusive: " + "; ".join(part for part in (
            f"too few seeds for the margin ({say_ids(underpowered)})" if underpowered else "",
            f"enough seeds for the margin, but an interval that straddles the criterion ({say_ids(on_margin)})" if on_margin else "",
            f"one part of a two-part criterion, or an interval from one evaluation, that straddles its threshold "
            f"({say_ids(other)})" if other else "") if part) + ".")
    st = [c for c in found if c["id"].startswith("stacked")]
    if st:
        pts.append(claim_point(st[0], "the stacked model is faster at little cost"))
    table = _csv(folder / "tables" / "summary.csv")
    if table is not None and len(table):
        top = table.loc[table.score.idxmax()]
        pts.append(f"The study table's illustrative score (embedded accuracy x the equivalent architecture's Pixel 2 "
                   f"latency) is highest for {top.model.split(' (')[0]}, {_score(top.score, top.score_ci_low, top.score_ci_high)}; "
                   "it mixes two tasks, so it illustrates the rule and ranks nothing: the claims above are judged on one task.")
    pts.append("What carries over to the challenge is the method: pair every comparison, time ratios interleaved across "
               "sessions, and state the criterion before the run; the embedded task's accuracies themselves do not.")
    return pts[:MAX_POINTS]


CHAPTERS = {"data": data, "baseline": baseline, "quantization": quantization, "factorization": factorization,
            "distillation": distillation, "open_images": open_images, "benchmark": benchmark, "stacked": stacked,
            "rule": rule, "summary": summary}


def seeds_at_half_margin(folder, claim_id: str = "mixing_ratio") -> str:
    """The distillation chapter's seeds exercise, answered from this page's verdicts (claims.json): the
    seeds ``claim_id``'s design asks for at its margin and at half of it, from this run's SD of the paired
    differences (another seed-based claim of the page when that one was not tested)."""
    found = _claims(folder)
    c = found.get(claim_id) or next((c for c in found.values() if _finite((c.get("design") or {}).get("sd_points"))), None)
    d = (c or {}).get("design") or {}
    if not _finite(d.get("sd_points"), d.get("margin_points")) or not d["sd_points"] > 0:
        return ("No verdict of this run has a spread of paired differences to start from (too few seeds, or no "
                "seed-based claim in this profile): run the default profile to answer from its numbers.")
    sd, m, kind, k, n, power = (d["sd_points"], d["margin_points"], d["kind"], d.get("comparisons", 1), d["n"],
                                d.get("power", 0.8))
    full, half = (seeds_needed(sd, mm, kind, k, power) for mm in (m, m / 2))
    say_n = lambda v: f"{v} seeds" if v else "more than 200 seeds"  # noqa: E731
    return (f"From this page's *{c['id'].replace('_', ' ')}* verdict: {n} seeds, an SD of the paired differences of "
            f"{sd:.2f} points, a margin of {m:g} point over {k} comparison{'' if k == 1 else 's'}"
            + (" (all must pass, so they share the power)" if kind == "equivalence" and k > 1 else "")
            + f". At that margin `seeds_needed` asks for "
            f"{say_n(full)}; at half of it ({m / 2:g}) for {say_n(half)}"
            + (f", {half / full:.1f} times as many: the detectable margin shrinks only as 1 / sqrt(n), so four times as many in "
               "the limit, fewer at small n, where Student's t quantiles shrink too." if full and half else "."))


def paired_change_sentence(r: dict, a: str, b: str) -> str:
    """Words for :func:`lpirc.evaluate.paired_change`: the change from ``a`` to ``b``, judged image by image,
    beside the Wilson half-width of a single accuracy (the wrong yardstick for a paired change)."""
    lo, hi = r["ci95"]
    hw = wilson_half_width(r["top1_a"], r["n"])
    verdict = ("a real loss" if hi < 0 else "a real gain" if lo > 0 else "not distinguishable from no change")
    return (f"On the {r['n']} validation images, {r['only_a']} are right only with {a} and {r['only_b']} only with {b}; "
            f"every other image is right or wrong with both and cannot move the difference. The change is "
            f"{r['change_points']:+.2f} points [{lo:+.2f}, {hi:+.2f}] (95%, paired by image; McNemar p = {r['p_mcnemar']:.3g}): "
            f"{verdict}. The Wilson interval of one accuracy, ±{hw:.2f} points here, would judge the same change against "
            "the noise of every image, the {0} agreeing ones included, so it is the wrong yardstick for a change between "
            "two models evaluated on the same images.".format(r["n"] - r["only_a"] - r["only_b"]))


def seeds_to_settle(folder) -> str:
    """The summary's first exercise, from claims.json: for each inconclusive seed-based verdict, the seeds
    its design would need to settle its margin at the criteria's power, from this run's SD."""
    rows, on_margin = [], []
    for c in _json(Path(folder) / "claims.json") or []:
        d = c.get("design") or {}
        if c["verdict"] != "inconclusive" or not _finite(d.get("sd_points"), d.get("margin_points")) or not d["sd_points"] > 0:
            continue
        if c.get("min_detectable", math.inf) <= d["margin_points"]:
            lo, hi = c["interval"]
            on_margin.append(f"*{c['id'].replace('_', ' ')}* already had the power ({d['n']} seeds settle "
                             f"{c['min_detectable']:.2f} points against a margin of {d['margin_points']:g}); its estimate, "
                             f"{c['estimate']:.2f} [{lo:.2f}, {hi:.2f}], "
                             + ("reaches from no gain to the smallest gain that matters" if d.get("kind") == "superiority"
                                else "straddles the margin")
                             + ", and more seeds only narrow that interval as 1 / sqrt(n): they settle it unless the true "
                             "value sits on the criterion itself")
            continue
        need = seeds_needed(d["sd_points"], d["margin_points"], d["kind"], d.get("comparisons", 1), d.get("power", 0.8))
        rows.append(f"*{c['id'].replace('_', ' ')}*: {d['n']} seeds with an SD of {d['sd_points']:.2f} points settle "
                    f"{c.get('min_detectable', math.nan):.2f} points against a margin of {d['margin_points']:g}; it would "
                    f"take {f'{need} seeds' if need else 'more than 200 seeds'}")
    if not rows and not on_margin:
        return ("No verdict of this run is both inconclusive and seed-based: the inconclusive ones, if any, are limited "
                "by timing or by single evaluations, which more seeds do not help.")
    return "; ".join(rows + on_margin) + (". A verdict that needs many times the seeds it had is a question this budget "
                                          "cannot answer." if rows else ".")


def knee_comparison(table, other: str = "int8 PTQ") -> str:
    """The summary's second exercise: the stacked model (the table's last row) against ``other`` under the
    rule, from the summary table: which side of the knee each is on, and what the score makes of the
    difference in latency and in top-1."""
    s = table.iloc[-1]
    o = table[table.model == other].iloc[0]

    def where(r):
        at = (f"{r.pixel2_ms:.1f} ms (published)" if r.pixel2_ci_low == r.pixel2_ci_high else
              f"{r.pixel2_ms:.1f} [{r.pixel2_ci_low:.1f}, {r.pixel2_ci_high:.1f}] ms (projected)")
        side = ("left of the knee" if r.pixel2_ci_high <= 30 else "right of the knee" if r.pixel2_ci_low > 30 else
                "on either side of the knee, as far as its interval tells")
        return f"{at}, {side}"
    both_left = s.pixel2_ci_high <= 30 and o.pixel2_ci_high <= 30
    return (f"The stacked model runs at {where(s)}; {other} at {where(o)}. Their validation top-1 differ by "
            f"{100 * (s.val_top1 - o.val_top1):+.2f} points and their scores by {s.score - o.score:+.1f} "
            f"({_score(s.score, s.score_ci_low, s.score_ci_high)} against {_score(o.score, o.score_ci_low, o.score_ci_high)}"
            + ("; the intervals overlap, so the table does not rank them)." if s.score_ci_low <= o.score_ci_high and
               o.score_ci_low <= s.score_ci_high else ").") + " "
            + ("Both are under 30 ms, so the score is top-1 itself for both and the stacked model's speed is worth "
               "nothing under the rule: only accuracy separates them." if both_left else
               "Above the knee the score falls in proportion to the latency, so each millisecond saved there is worth as "
               "much as the same share of accuracy; below it, speed earns nothing."))

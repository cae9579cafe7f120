"""The entry's observations as claims with criteria fixed in advance, each evaluated to a verdict.

A claim is what Hyperconnect's entry reported, a criterion written before any number is seen
(margins, reference arms, the test), and an evaluation of this run's numbers against it. Each
evaluation returns one of three verdicts:

- **reproduced**: the criterion is met with the stated confidence (an equivalence or a one-sided
  test shown, or an interval entirely on the claim's side of the threshold);
- **not reproduced**: the opposite is shown with the same confidence;
- **inconclusive**: the data cannot tell (an interval straddles the threshold, a test lacks power).

"No significant difference" is never read as "equivalent": equivalence needs its own test (TOST, two
one-sided tests against a stated margin). Several comparisons for one claim are corrected with Holm's
method. For seed-based claims the smallest difference the run could detect at 80% power is reported.
Statistics come from scipy and statsmodels.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
ALPHA = 0.05

# Criteria, fixed before the run (the book prints them above the results). The entry's own figures
# and Google's published ones are read from reference/*.csv (see thresholds()); these two are choices.
QUANT_MAX_LATENCY_RATIO = 0.6    # "much faster": the published Pixel 2 int8/float ratio, with room for hosts
SEED_MARGIN_POINTS = 1.0         # equivalence margin for seed-based accuracy comparisons


def thresholds() -> dict:
    """The published figures the criteria use, from reference/entry_figures.csv and
    reference/mobilenet_v1_published.csv (MobileNet v1 1.0 @160, the entry's architecture)."""
    from lpirc import reference

    e = reference.entry()
    pub = reference.published_row(1.0, 160)
    before, after = e["unfactorized"], e["factorized"]
    return {"before": before, "after": after,
            "factorized_ratio": after["latency_ms"] / before["latency_ms"],
            "relative_loss": 1 - after["top1"] / before["top1"],
            "quant_margin_points": float(pub.float_top1 - pub.quant_top1),
            "published_int8_ratio": float(pub.pixel2_quant_ms / pub.pixel2_float_ms)}


@dataclasses.dataclass
class Claim:
    id: str
    claim: str            # the entry's observation
    criterion: str        # what counts, stated in advance
    test: str             # how it is tested
    estimate: float
    interval: tuple[float, float]
    unit: str
    verdict: str
    p_values: dict = dataclasses.field(default_factory=dict)
    detail: str = ""
    min_detectable: float | None = None   # smallest difference detectable at 80% power (seed-based)

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} not one of {VERDICTS}")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["interval"] = [float(self.interval[0]), float(self.interval[1])]
        return d


# --------------------------------------------------------------------------------------------------
# building blocks
def interval_verdict(low: float, high: float, threshold: float, claim_below: bool) -> str:
    """Reproduced when the whole interval is on the claim's side of the threshold, not reproduced
    when it is wholly on the other side, inconclusive when it straddles it."""
    inside = high <= threshold if claim_below else low >= threshold
    outside = low > threshold if claim_below else high < threshold
    return REPRODUCED if inside else NOT_REPRODUCED if outside else INCONCLUSIVE


def paired_tost(a, b, margin: float) -> dict:
    """Paired equivalence of a and b within +-margin: statsmodels' TOST, a paired t-test of difference,
    the mean difference a - b and its 90% interval (the interval TOST's decision corresponds to)."""
    from scipy import stats
    from statsmodels.stats.weightstats import ttost_paired

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    n = len(d)
    if n < 2 or np.std(d, ddof=1) == 0:
        same = n >= 1 and np.all(d == d[0]) and abs(d[0]) < margin
        return {"diff": float(d.mean()) if n else float("nan"), "ci90": (float(d.mean()),) * 2 if n else (math.nan,) * 2,
                "p_equivalence": 0.0 if same and n >= 2 else float("nan"),
                "p_difference": float("nan"), "n": n, "sd": 0.0}
    p_eq = float(ttost_paired(a, b, -margin, margin)[0])
    p_diff = float(stats.ttest_rel(a, b).pvalue)
    return {"diff": float(d.mean()), "ci90": t_interval(d, 0.90),
            "p_equivalence": p_eq, "p_difference": p_diff, "n": n, "sd": float(d.std(ddof=1))}


def holm(p_values: list[float]) -> list[float]:
    """Holm-corrected p-values (NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out.tolist()


def min_detectable_difference(sd: float, n: int, power: float = 0.8, alpha: float = ALPHA) -> float:
    """Smallest paired mean difference a two-sided paired t-test detects with this power."""
    from statsmodels.stats.power import TTestPower

    if n < 2 or not sd > 0:
        return float("nan")
    effect = TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(effect * sd)


def t_interval(d, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of paired differences (NaN with fewer than two)."""
    from scipy import stats

    d = np.asarray(d, float)
    if len(d) < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return (float(d.mean() - half), float(d.mean() + half))


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = correct / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (centre - half, centre + half)


# --------------------------------------------------------------------------------------------------
# the claims
def quantization(float_correct, int8_correct, latency_ratio: float, latency_ci: tuple[float, float],
                 margin_points: float | None = None, max_ratio: float = QUANT_MAX_LATENCY_RATIO) -> Claim:
    """int8 is much faster without a significant accuracy loss: per-image paired TOST of top-1 (int8 vs
    float, margin in points) and the latency ratio's interval against ``max_ratio``."""
    if margin_points is None:
        margin_points = thresholds()["quant_margin_points"]
    f, q = np.asarray(float_correct, float), np.asarray(int8_correct, float)
    t = paired_tost(q * 100, f * 100, margin_points)
    speed = interval_verdict(latency_ci[0], latency_ci[1], max_ratio, claim_below=True)
    if t["p_equivalence"] < ALPHA:
        acc = REPRODUCED
    elif t["ci90"][1] < -margin_points or t["ci90"][0] > margin_points:
        acc = NOT_REPRODUCED
    else:
        acc = INCONCLUSIVE
    verdict = combine(acc, speed)
    return Claim("quantization", "8-bit quantization makes the model much faster without a significant "
                 "accuracy loss", f"int8 top-1 equivalent to float within ±{margin_points:g} points (paired TOST "
                 f"over validation images, p < {ALPHA}), and int8 latency at most {max_ratio:g}x float "
                 "(95% interval wholly below)", "paired TOST per image; latency ratio of medians, bootstrap interval",
                 t["diff"], t["ci90"], "points (int8 − float), 90% interval",
                 verdict, {"equivalence": t["p_equivalence"], "difference": t["p_difference"]},
                 f"accuracy: {acc}; latency ratio {latency_ratio:.3f} [{latency_ci[0]:.3f}, {latency_ci[1]:.3f}]: {speed}")


def combine(*verdicts: str) -> str:
    """All parts reproduced -> reproduced; any part not reproduced -> not reproduced; else inconclusive."""
    if NOT_REPRODUCED in verdicts:
        return NOT_REPRODUCED
    return REPRODUCED if all(v == REPRODUCED for v in verdicts) else INCONCLUSIVE


def factorization_latency(ratio: float, ratio_ci: tuple[float, float], config: str,
                          entry_ratio: float | None = None) -> Claim:
    t = thresholds()
    entry_ratio = t["factorized_ratio"] if entry_ratio is None else entry_ratio
    verdict = interval_verdict(ratio_ci[0], ratio_ci[1], entry_ratio, claim_below=True)
    return Claim("factorization_latency", f"factorizing nine 1x1 layers cuts latency ({t['before']['latency_ms']:g} "
                 f"-> {t['after']['latency_ms']:g} ms)",
                 f"latency ratio of {config} to the unfactorized int8 architecture at or below the entry's "
                 f"{entry_ratio:.3f} (95% interval wholly below)", "ratio of medians, interleaved timing, bootstrap interval",
                 ratio, tuple(ratio_ci), "x unfactorized", verdict)


def factorization_accuracy(base_top1: float, factorized_top1: float, n_images: int,
                           max_relative_loss: float | None = None) -> Claim:
    """Relative top-1 loss after per-layer fine-tuning against the entry's; delta-method interval."""
    t = thresholds()
    max_relative_loss = t["relative_loss"] if max_relative_loss is None else max_relative_loss
    loss = (base_top1 - factorized_top1) / base_top1
    var = (factorized_top1 * (1 - factorized_top1) + base_top1 * (1 - base_top1)) / max(n_images, 1)
    se = math.sqrt(var) / base_top1
    ci = (loss - 1.96 * se, loss + 1.96 * se)
    verdict = interval_verdict(ci[0], ci[1], max_relative_loss, claim_below=True)
    return Claim("factorization_accuracy", "per-layer fine-tuning keeps the factorized model close "
                 f"({t['before']['top1']:g}% -> {t['after']['top1']:g}% top-1, a {100 * t['relative_loss']:.1f}% "
                 "relative loss)",
                 f"relative top-1 loss after fine-tuning at most {100 * max_relative_loss:.1f}% (95% interval wholly below)",
                 "difference of two proportions (normal approximation, unpaired: conservative)",
                 100 * loss, (100 * ci[0], 100 * ci[1]), "% relative loss", verdict)


def equivalent_arms(pairs: dict[str, tuple], margin_points: float, claim_id: str, claim: str, what: str) -> Claim:
    """Several paired comparisons (name -> (a, b) arrays of top-1 in [0, 1] by seed) that should all be
    equivalent within the margin: reproduced if every Holm-corrected TOST shows equivalence, not
    reproduced if any Holm-corrected difference test shows a difference, inconclusive otherwise."""
    tests = {name: paired_tost(np.asarray(a) * 100, np.asarray(b) * 100, margin_points) for name, (a, b) in pairs.items()}
    names = list(tests)
    p_eq = holm([tests[n]["p_equivalence"] for n in names])
    p_diff = holm([tests[n]["p_difference"] for n in names])
    if names and all(p < ALPHA for p in p_eq):
        verdict = REPRODUCED
    elif any(p < ALPHA for p in p_diff):
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    worst = max(names, key=lambda n: abs(tests[n]["diff"])) if names else None
    est = tests[worst]["diff"] if worst else float("nan")
    ci = tests[worst]["ci90"] if worst else (math.nan, math.nan)
    mdd = max((min_detectable_difference(tests[n]["sd"], tests[n]["n"]) for n in names), default=float("nan"))
    return Claim(claim_id, claim, f"{what} equivalent within ±{margin_points:g} points (paired TOST by seed, "
                 f"Holm-corrected over {len(names)} comparisons, p < {ALPHA})",
                 "paired TOST and paired t-test by seed, Holm correction (statsmodels)", est, ci,
                 f"points, largest difference ({worst}), 90% interval", verdict,
                 {n: {"equivalence_holm": e, "difference_holm": d} for n, e, d in zip(names, p_eq, p_diff)},
                 f"{len(names)} comparisons", mdd)


def lighter_teacher(light, heavy, light_name: str, heavy_name: str, margin_points: float = SEED_MARGIN_POINTS) -> Claim:
    """Non-inferiority of the lighter teacher's students (paired by seed): reproduced if light is shown
    no worse than heavy by more than the margin, not reproduced if heavy is shown better beyond it."""
    from scipy import stats

    a, b = np.asarray(light, float) * 100, np.asarray(heavy, float) * 100
    d = a - b
    n = len(d)
    if n >= 2 and d.std(ddof=1) > 0:
        p_noninf = float(stats.ttest_1samp(d, -margin_points, alternative="greater").pvalue)
        p_worse = float(stats.ttest_1samp(d, -margin_points, alternative="less").pvalue)
        ci = t_interval(d)
        mdd = min_detectable_difference(float(d.std(ddof=1)), n)
    else:
        p_noninf = p_worse = float("nan")
        ci = (float(d.mean()), float(d.mean())) if n else (math.nan, math.nan)
        mdd = float("nan")
    verdict = REPRODUCED if p_noninf < ALPHA else NOT_REPRODUCED if p_worse < ALPHA else INCONCLUSIVE
    return Claim("lighter_teacher", "a lighter teacher than the largest one gives results as good, sooner",
                 f"students of the lighter teacher ({light_name}) no worse than those of the heavier ({heavy_name}) "
                 f"by more than {margin_points:g} points (one-sided paired t-test by seed, p < {ALPHA})",
                 "non-inferiority, paired t-test by seed (scipy)", float(d.mean()) if n else math.nan, ci,
                 "points (light − heavy), 95% interval", verdict,
                 {"non_inferiority": p_noninf, "inferiority": p_worse}, "", mdd)


def pretraining_helps(splits: dict[str, tuple], control: str) -> Claim:
    """One-sided paired t-tests (pretrained > control) per split, Holm-corrected: reproduced if every
    split shows a gain; not reproduced if any split shows a loss; otherwise inconclusive."""
    from scipy import stats

    names = list(splits)
    p_gain, p_loss, diffs, sds, ns = [], [], [], [], []
    for name in names:
        a, b = (np.asarray(v, float) * 100 for v in splits[name])
        d = a - b
        ok = len(d) >= 2 and d.std(ddof=1) > 0
        p_gain.append(float(stats.ttest_rel(a, b, alternative="greater").pvalue) if ok else float("nan"))
        p_loss.append(float(stats.ttest_rel(a, b, alternative="less").pvalue) if ok else float("nan"))
        diffs.append(float(d.mean()))
        sds.append(float(d.std(ddof=1)) if len(d) >= 2 else float("nan"))
        ns.append(len(d))
    pg, pl = holm(p_gain), holm(p_loss)
    verdict = (REPRODUCED if names and all(p < ALPHA for p in pg) else
               NOT_REPRODUCED if any(p < ALPHA for p in pl) else INCONCLUSIVE)
    primary = names[0] if names else "-"
    ci = t_interval(np.subtract(*(np.asarray(v, float) * 100 for v in splits[primary]))) if names else (math.nan,) * 2
    return Claim("pretraining", "pretraining on teacher-labelled extra images helps (the entry paused it)",
                 f"the largest pool arm beats {control} on every split (one-sided paired t-tests by seed, "
                 f"Holm-corrected, p < {ALPHA})", "one-sided paired t-tests, Holm correction",
                 diffs[0] if names else math.nan, ci, f"points ({primary}: pretrained − control), 95% interval",
                 verdict, {n: {"gain_holm": g, "loss_holm": lo} for n, g, lo in zip(names, pg, pl)},
                 ", ".join(f"{n}: {x:+.2f}" for n, x in zip(names, diffs)),
                 max((min_detectable_difference(s, n) for s, n in zip(sds, ns)), default=float("nan")))


def score_interval(top1_ci: tuple[float, float], latency_ci: tuple[float, float], budget_ms: float = 30.0):
    """The challenge score's interval from the accuracy's and the latency's (score rises with accuracy
    and falls with latency, so the bounds are at the corners)."""
    score = lambda acc, ms: 100 * acc * budget_ms / max(budget_ms, ms)  # noqa: E731
    return (score(top1_ci[0], latency_ci[1]), score(top1_ci[1], latency_ci[0]))


def stacked_beats(stacked: dict, baseline: dict) -> Claim:
    """Each dict: top1, n (images), latency_ms, latency_ci (projected Pixel 2). Reproduced if the stacked
    model's score interval lies wholly above the quantized baseline's, not if wholly below."""
    s_acc = wilson(round(stacked["top1"] * stacked["n"]), stacked["n"])
    b_acc = wilson(round(baseline["top1"] * baseline["n"]), baseline["n"])
    s_lo, s_hi = score_interval(s_acc, stacked["latency_ci"])
    b_lo, b_hi = score_interval(b_acc, baseline["latency_ci"])
    est = 100 * stacked["top1"] * 30 / max(30, stacked["latency_ms"]) - 100 * baseline["top1"] * 30 / max(30, baseline["latency_ms"])
    verdict = REPRODUCED if s_lo > b_hi else NOT_REPRODUCED if s_hi < b_lo else INCONCLUSIVE
    return Claim("stacked_score", "combining the techniques beats the quantized baseline's challenge score",
                 "score interval of the stacked model wholly above the int8 baseline's (accuracy: Wilson 95%; "
                 "latency: projected Pixel 2 interval)", "interval comparison of scores",
                 est, (s_lo - b_hi, s_hi - b_lo), "score points (stacked − int8 baseline)", verdict,
                 {}, f"stacked [{s_lo:.1f}, {s_hi:.1f}] vs int8 baseline [{b_lo:.1f}, {b_hi:.1f}]")


# --------------------------------------------------------------------------------------------------
# what a chapter shows: the claim and criterion before its results, the verdict after them
def statements() -> dict[str, tuple[str, str]]:
    """(the entry's claim, the criterion) per claim id, with the published figures filled in."""
    t = thresholds()
    return {
        "quantization": ("8-bit quantization makes the model much faster without a significant accuracy loss.",
                         f"int8 top-1 equivalent to float32 within ±{t['quant_margin_points']:.1f} points (Google's published "
                         f"int8 cost for MobileNet v1 1.0 @160), by a paired TOST over validation images; and the "
                         f"challenge architecture's int8 latency at most {QUANT_MAX_LATENCY_RATIO:g}x its float32 "
                         f"latency, the whole 95% interval below (published Pixel 2 ratio: "
                         f"{t['published_int8_ratio']:.3f}; {QUANT_MAX_LATENCY_RATIO:g} leaves room "
                         f"for a host CPU's different kernels)."),
        "factorization_latency": (f"Factorizing nine 1x1 convolutions cut the quantized model from {t['before']['latency_ms']:g} to "
                                  f"{t['after']['latency_ms']:g} ms.",
                                  f"the nine-layer configuration at the smallest rank fraction of the profile runs at or "
                                  f"below the entry's ratio {t['factorized_ratio']:.3f}, the whole 95% interval below."),
        "factorization_accuracy": (f"Per-layer fine-tuning keeps the factorized model close: {t['before']['top1']:g}% -> "
                                   f"{t['after']['top1']:g}% top-1.",
                                   f"the student's relative int8 top-1 loss after per-layer fine-tuning, at the deepest "
                                   f"and smallest-rank configuration, is at most the entry's "
                                   f"{100 * t['relative_loss']:.1f}%, the whole 95% interval below."),
        "mixing_ratio": ("Several mixing ratios of the two losses gave no significant differences.",
                         f"every α > 0 equivalent to plain training (α = 0, the reference fixed in advance) within "
                         f"±{SEED_MARGIN_POINTS:g} point of validation top-1: paired TOST by seed, Holm-corrected; "
                         f"a Holm-corrected paired t-test showing a difference means not reproduced."),
        "lighter_teacher": ("Lighter teachers than the largest gave better results, sooner.",
                            f"at a fixed α, students of the teacher with fewer MACs are no worse than those of the "
                            f"heavier teacher by more than {SEED_MARGIN_POINTS:g} point (one-sided paired t-test by seed)."),
        "pretraining": ("Pretraining on teacher-labelled Open Images should help (the entry paused it for lack of time).",
                        "the largest pool arm beats the same-steps control (distillation trained as many extra steps "
                        "on the labelled split) on validation and holdout: one-sided paired t-tests by seed, "
                        "Holm-corrected."),
        "stacked_score": ("Combining the techniques gives the best challenge score.",
                          "the stacked model's score interval (accuracy: Wilson 95%; latency: projected Pixel 2 by ratio "
                          "transfer from the published latency) lies wholly above the int8 baseline's."),
    }


def statement(claim_id: str) -> str:
    claim, criterion = statements()[claim_id]
    return f"**The entry's claim.** {claim}\n\n**Criterion, fixed before the run.** {criterion}"


def _num(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def verdict_markdown(claim: Claim) -> str:
    """One paragraph: verdict, estimate with its interval, the tests' p-values, the detectable difference."""
    from lpirc.report import fmt_p

    def flat(p, prefix=""):
        for k, v in p.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k} ")
            else:
                yield f"{prefix}{k.replace('_', ' ')}: {fmt_p(v)}"

    parts = [f"**Verdict: {claim.verdict}.** Estimate {_num(claim.estimate)} {claim.unit} "
             f"[{_num(claim.interval[0])}, {_num(claim.interval[1])}]."]
    if claim.p_values:
        parts.append("Tests: " + "; ".join(flat(claim.p_values)) + ".")
    if claim.detail:
        parts.append(claim.detail[0].upper() + claim.detail[1:] + ".")
    if claim.min_detectable is not None:
        parts.append(f"Smallest difference this run could detect at 80% power: {_num(claim.min_detectable)} points.")
    return " ".join(parts)


def distillation_claims(expanded, teachers: list, alphas: list, teacher_costs, claim_alpha: float) -> list:
    """The distillation chapter's claims from its runs (one row per teacher x alpha x seed, alpha = 0
    repeated under every teacher): every alpha > 0 against alpha = 0 (equivalence), and, with two
    teachers or more, the one with fewer MACs (``teacher_costs``: {teacher: MMACs}) against the one
    with most at ``claim_alpha``."""
    val = expanded.pivot_table(index="seed", columns=["teacher", "alpha"], values="val_top1")
    pairs = {f"{t}, α={a:g}": (val[(t, a)], val[(t, 0.0)]) for t in teachers for a in alphas if a > 0}
    found = [equivalent_arms(pairs, SEED_MARGIN_POINTS, "mixing_ratio", "several mixing ratios gave no significant "
                             "differences", "each α > 0 and α = 0")]
    if len(teachers) > 1:
        light, heavy = min(teacher_costs, key=teacher_costs.get), max(teacher_costs, key=teacher_costs.get)
        a = claim_alpha if claim_alpha in alphas else max(alphas)
        found.append(lighter_teacher(val[(light, a)], val[(heavy, a)], light, heavy))
    return found


def summary_table(found: list[dict]):
    """One row per claim (as claims.json holds them): id, verdict, estimate with interval, detectable difference."""
    import pandas as pd

    def detectable(cl):
        m = cl.get("min_detectable")
        return "" if m is None else "n/a" if math.isnan(m) else f"{m:.2f} points"
    return pd.DataFrame([{"claim": cl["id"].replace("_", " "), "verdict": cl["verdict"],
                          "estimate [95% CI]": f"{cl['estimate']:.2f} [{cl['interval'][0]:.2f}, {cl['interval'][1]:.2f}] {cl['unit']}",
                          "detectable (80% power)": detectable(cl)} for cl in found])


def record(found: list[Claim], path) -> None:
    """Write a chapter's claims to ``path`` (claims.json) and show each verdict on the page."""
    from lpirc.report import say
    from lpirc.results import write_json

    write_json(path, [c.as_dict() for c in found])
    say("\n\n".join((f"*{c.id.replace('_', ' ')}:* " if len(found) > 1 else "") + verdict_markdown(c)
                      for c in found))

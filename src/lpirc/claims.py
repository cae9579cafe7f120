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
import functools
import math
import subprocess

import numpy as np
import pandas as pd
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from lpirc import reference
from lpirc.paths import project_root
from lpirc.report import fmt_p, say
from lpirc.results import write_json

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
ALPHA = 0.05
CRITERIA_FILE = "criteria/claims.yaml"


@functools.lru_cache(maxsize=1)
def criteria() -> dict:
    """The criteria file (criteria/claims.yaml): margins, smallest effects of interest, the pilot's
    spreads and the power the number of seeds was chosen for. Fixed before the run."""
    return yaml.safe_load((project_root() / CRITERIA_FILE).read_text())


def criteria_changed() -> dict:
    """When the criteria file last changed in git (date and short commit), so the book can show that
    the criteria came before the run; 'uncommitted' when the file differs from the last commit."""
    root = project_root()
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs %h", "--", CRITERIA_FILE], cwd=root,
                             capture_output=True, text=True, timeout=10).stdout.split()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", CRITERIA_FILE], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out, dirty = [], ""
    if len(out) != 2:
        return {"date": "unknown", "commit": "not in git"}
    return {"date": out[0], "commit": out[1] + (" (edited since)" if dirty else "")}


def margin(claim_id: str) -> float:
    """The margin (equivalence) or smallest effect of interest (superiority) of a seed-based claim."""
    c = criteria()["claims"][claim_id]
    return float(c.get("margin_points", c.get("smallest_effect_points")))


def thresholds() -> dict:
    """The published figures the criteria use, from reference/entry_figures.csv and
    reference/mobilenet_v1_published.csv (MobileNet v1 1.0 @160, the entry's architecture)."""
    e = reference.entry()
    pub = reference.published_row(1.0, 160)
    before, after = e["unfactorized"], e["factorized"]
    return {"before": before, "after": after,
            "factorized_ratio": after["latency_ms"] / before["latency_ms"],
            "relative_loss": 1 - after["top1"] / before["top1"],
            "quant_margin_points": float(pub.float_top1 - pub.quant_top1),
            "published_int8_ratio": float(pub.pixel2_quant_ms / pub.pixel2_float_ms),
            # int8 raises the challenge score above the knee only if latency falls by more than top-1 does
            "quant_break_even_ratio": float(pub.quant_top1 / pub.float_top1)}


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
    min_detectable: float | None = None   # seed-based: smallest effect (or margin) provable at the design's power
    confidence: float = 0.95              # of ``interval``: the verdict follows from this interval
    design: dict = dataclasses.field(default_factory=dict)       # n, margin, pilot SD, seeds needed
    sensitivity: dict = dataclasses.field(default_factory=dict)  # margin -> verdict

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} not one of {VERDICTS}")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["interval"] = [float(self.interval[0]), float(self.interval[1])]
        d["sensitivity"] = {f"{k:g}": v for k, v in self.sensitivity.items()}
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
    p = np.asarray(p_values, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out.tolist()


def min_detectable_difference(sd: float, n: int, power: float = 0.8, alpha: float = ALPHA) -> float:
    """Smallest paired mean difference a two-sided paired t-test detects with this power."""
    if n < 2 or not sd > 0:
        return float("nan")
    effect = TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(effect * sd)


def detectable(sd: float, n: int, kind: str, comparisons: int = 1, power: float = 0.8, alpha: float = ALPHA) -> float:
    """What n seeds with this spread of paired differences can settle at the given power.

    ``kind='superiority'``: the smallest true gain a one-sided paired t-test at ``alpha / comparisons``
    detects. ``kind='equivalence'``: the smallest margin a TOST at ``alpha`` shows when the true
    difference is zero, (t_{1-alpha} + t_{1-(1-power)/2}) sd / sqrt(n) (each of ``comparisons`` pairs
    must pass, so the power per pair is raised to power ** (1 / comparisons))."""
    if n < 2 or not sd > 0:
        return float("nan")
    if kind == "superiority":
        effect = TTestPower().solve_power(nobs=n, alpha=alpha / comparisons, power=power, alternative="larger")
        return float(effect * sd)
    if kind == "equivalence":
        per_pair = power ** (1 / comparisons)
        t = stats.t.ppf(1 - alpha, n - 1) + stats.t.ppf(1 - (1 - per_pair) / 2, n - 1)
        return float(t * sd / math.sqrt(n))
    raise ValueError(f"kind must be 'superiority' or 'equivalence', got {kind!r}")


def seeds_needed(sd: float, margin: float, kind: str, comparisons: int = 1, power: float = 0.8,
                 most: int = 200) -> int | None:
    """The fewest seeds (at least 3) whose :func:`detectable` is at or below ``margin``; None if over ``most``."""
    for n in range(3, most + 1):
        if detectable(sd, n, kind, comparisons, power) <= margin:
            return n
    return None


def design(claim_id: str, sd: float, n: int, kind: str, comparisons: int = 1) -> dict:
    """A seed-based claim's design, as claims.json records it: n used, margin, this run's SD and the
    pilot's, the seeds the pilot's SD asked for, and what this run can detect."""
    c = criteria()
    pilot = (c.get("pilot", {}).get("sd_points") or {}).get(claim_id)
    m = margin(claim_id)
    return {"n": int(n), "margin_points": m, "kind": kind, "comparisons": int(comparisons), "power": c["power"],
            "sd_points": None if not np.isfinite(sd) else float(sd), "pilot_sd_points": pilot,
            "seeds_needed_from_pilot": seeds_needed(pilot, m, kind, comparisons, c["power"]) if pilot else None,
            "detectable_points": detectable(sd, n, kind, comparisons, c["power"])}


def t_interval(d, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of paired differences (NaN with fewer than two)."""
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


def has_vnni() -> bool | None:
    """Whether this x86 CPU has the VNNI int8 dot-product instructions (None where /proc/cpuinfo has no
    flags line, e.g. not Linux): they make int8 kernels several times faster than float on x86."""
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else ("avx512_vnni" in flags or "avx_vnni" in flags)


# --------------------------------------------------------------------------------------------------
# the claims
def quantization(float_correct, int8_correct, latency_ratio: float, latency_ci: tuple[float, float],
                 margin_points: float | None = None, max_ratio: float | None = None) -> Claim:
    """int8 is much faster without a significant accuracy loss: per-image paired TOST of top-1 (int8 vs
    float, margin in points) and the latency ratio's interval against ``max_ratio`` (default: the
    challenge rule's break-even ratio, int8 top-1 / float top-1 of the published 1.0 @160 row)."""
    t = thresholds()
    margin_points = t["quant_margin_points"] if margin_points is None else margin_points
    max_ratio = t["quant_break_even_ratio"] if max_ratio is None else max_ratio
    f, q = np.asarray(float_correct, float), np.asarray(int8_correct, float)
    tost = paired_tost(q * 100, f * 100, margin_points)
    speed = interval_verdict(latency_ci[0], latency_ci[1], max_ratio, claim_below=True)
    if tost["p_equivalence"] < ALPHA:
        acc = REPRODUCED
    elif tost["ci90"][1] < -margin_points or tost["ci90"][0] > margin_points:
        acc = NOT_REPRODUCED
    else:
        acc = INCONCLUSIVE
    vnni = has_vnni()
    isa = {True: "this CPU has VNNI int8 instructions", False: "this CPU has no VNNI int8 instructions",
           None: "this CPU's int8 instructions are unknown"}[vnni]
    sens = {float(r): combine(acc, interval_verdict(latency_ci[0], latency_ci[1], float(r), claim_below=True))
            for r in [max_ratio, *criteria()["claims"]["quantization"]["latency_sensitivity"]]}
    return Claim("quantization", "8-bit quantization makes the model much faster without a significant "
                 "accuracy loss", f"int8 top-1 equivalent to float within ±{margin_points:g} points (paired TOST "
                 f"over validation images, p < {ALPHA}), and int8 latency below {max_ratio:.3f}x float "
                 "(95% interval wholly below)", "paired TOST per image; latency ratio of medians, bootstrap interval",
                 tost["diff"], tost["ci90"], "points (int8 − float)",
                 combine(acc, speed), {"equivalence": tost["p_equivalence"], "difference": tost["p_difference"]},
                 f"accuracy: {acc}; latency ratio {latency_ratio:.3f} [{latency_ci[0]:.3f}, {latency_ci[1]:.3f}] "
                 f"(95%): {speed}; {isa}", confidence=0.90, sensitivity=sens,
                 design={"latency_threshold": max_ratio, "vnni": vnni, "published_pixel2_ratio": t["published_int8_ratio"]})


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
    sens = {100 * r: interval_verdict(ci[0], ci[1], r, claim_below=True)
            for r in [max_relative_loss, *criteria()["claims"]["factorization_accuracy"]["relative_loss_sensitivity"]]}
    return Claim("factorization_accuracy", "per-layer fine-tuning keeps the factorized model close "
                 f"({t['before']['top1']:g}% -> {t['after']['top1']:g}% top-1, a {100 * t['relative_loss']:.1f}% "
                 "relative loss)",
                 f"relative top-1 loss after fine-tuning at most {100 * max_relative_loss:.1f}% (95% interval wholly below)",
                 "difference of two proportions (normal approximation, unpaired: conservative)",
                 100 * loss, (100 * ci[0], 100 * ci[1]), "% relative loss", verdict, sensitivity=sens)


def superiority_verdict(low: float, high: float, smallest_effect: float) -> str:
    """A gain claim with a smallest effect of interest: not reproduced when the whole interval lies below
    that effect (any gain is too small to matter, or a loss), reproduced when it lies above zero, else
    inconclusive. An interval above zero but wholly below the smallest effect is 'not reproduced'."""
    if high < smallest_effect:
        return NOT_REPRODUCED
    return REPRODUCED if low > 0 else INCONCLUSIVE


def gain_claim(differences: dict, claim_id: str, claim: str, criterion: str, unit: str) -> Claim:
    """Several paired gains (name -> differences by seed, in points) that must all be shown: one-sided
    paired t-tests at 5% / k (Bonferroni over the k comparisons), each with the two-sided interval at
    1 - 2 x 5% / k, which is the test's decision. Every gain shown -> reproduced; any interval wholly
    below the smallest effect of interest -> not reproduced; else inconclusive. The reported estimate
    is the comparison with the smallest gain (the one that decides)."""
    sesoi = margin(claim_id)
    names = list(differences)
    k = max(len(names), 1)
    confidence = 1 - 2 * ALPHA / k
    rows = {}
    for name in names:
        d = np.asarray(differences[name], float)
        ok = len(d) >= 2 and d.std(ddof=1) > 0
        rows[name] = {"diff": float(d.mean()) if len(d) else math.nan, "n": len(d),
                      "sd": float(d.std(ddof=1)) if len(d) >= 2 else math.nan,
                      "ci": t_interval(d, confidence) if ok else (float(d.mean()),) * 2 if len(d) else (math.nan,) * 2,
                      "p_gain": min(1.0, k * float(stats.ttest_1samp(d, 0, alternative="greater").pvalue)) if ok else math.nan}

    def verdict_at(m):
        vs = [superiority_verdict(*rows[n]["ci"], m) for n in names]
        return (NOT_REPRODUCED if NOT_REPRODUCED in vs else REPRODUCED if names and all(v == REPRODUCED for v in vs)
                else INCONCLUSIVE)
    worst = min(names, key=lambda n: rows[n]["diff"]) if names else None
    sd = max((rows[n]["sd"] for n in names), default=math.nan)
    n = min((rows[n]["n"] for n in names), default=0)
    des = design(claim_id, sd, n, "superiority", k)
    return Claim(claim_id, claim, criterion, f"one-sided paired t-test by seed, Bonferroni over {k} "
                 f"comparison{'s' if k > 1 else ''}; the interval shown is the test's ({100 * confidence:g}% two-sided)",
                 rows[worst]["diff"] if worst else math.nan, rows[worst]["ci"] if worst else (math.nan,) * 2,
                 f"points ({worst})" if worst else "points", verdict_at(sesoi),
                 {name: {"gain (Bonferroni)": rows[name]["p_gain"]} for name in names},
                 "; ".join(f"{name}: {rows[name]['diff']:+.2f} [{rows[name]['ci'][0]:+.2f}, {rows[name]['ci'][1]:+.2f}]"
                           for name in names), des["detectable_points"], confidence, des,
                 {float(m): verdict_at(float(m)) for m in criteria()["claims"]["sensitivity_margins"]})


def equivalence_iut(pairs: dict, claim_id: str, claim: str, criterion: str) -> Claim:
    """All paired comparisons (name -> (a, b) top-1 in [0, 1] by seed) equivalent within the margin: an
    intersection-union test (every TOST at 5%; no multiplicity correction is needed, since the claim
    holds only if each does). Reproduced if every 90% interval lies inside ±margin; not reproduced if
    any lies wholly outside it; else inconclusive. The estimate shown is the largest difference."""
    m = margin(claim_id)
    tests = {name: paired_tost(np.asarray(a, float) * 100, np.asarray(b, float) * 100, m) for name, (a, b) in pairs.items()}
    names = list(tests)

    def verdict_at(mm):
        inside = [-mm < tests[n]["ci90"][0] and tests[n]["ci90"][1] < mm for n in names]
        outside = [tests[n]["ci90"][0] > mm or tests[n]["ci90"][1] < -mm for n in names]
        return REPRODUCED if names and all(inside) else NOT_REPRODUCED if any(outside) else INCONCLUSIVE
    worst = max(names, key=lambda n: abs(tests[n]["diff"])) if names else None
    sd = max((tests[n]["sd"] for n in names), default=math.nan)
    n = min((tests[n]["n"] for n in names), default=0)
    des = design(claim_id, sd, n, "equivalence", len(names))
    return Claim(claim_id, claim, criterion, "intersection-union of paired TOSTs by seed (each at 5%, statsmodels)",
                 tests[worst]["diff"] if worst else math.nan, tests[worst]["ci90"] if worst else (math.nan,) * 2,
                 f"points, largest difference ({worst})" if worst else "points", verdict_at(m),
                 {name: {"equivalence": tests[name]["p_equivalence"]} for name in names},
                 "; ".join(f"{name}: {tests[name]['diff']:+.2f} [{tests[name]['ci90'][0]:+.2f}, {tests[name]['ci90'][1]:+.2f}]"
                           for name in names), des["detectable_points"], 0.90, des,
                 {float(mm): verdict_at(float(mm)) for mm in criteria()["claims"]["sensitivity_margins"]})


def mixing_ratio(val, teachers: list, alphas: list) -> Claim:
    """The entry tried several mixing ratios and found no significant differences among them: every
    pair of α > 0 values, per teacher, equivalent within the margin (``val``: seed x (teacher, alpha)
    table of top-1)."""
    positive = sorted(a for a in alphas if a > 0)
    pairs = {f"{t}: α={b:g} vs α={a:g}": (val[(t, b)], val[(t, a)])
             for t in teachers for i, a in enumerate(positive) for b in positive[i + 1:]}
    m = margin("mixing_ratio")
    return equivalence_iut(pairs, "mixing_ratio", "several mixing ratios gave no significant differences",
                           f"every pair of α > 0 values, per teacher, equivalent within ±{m:g} point of validation "
                           f"top-1 (intersection-union of paired TOSTs by seed, each at {ALPHA})")


def distillation_helps(val, teachers: list, claim_alpha: float) -> Claim:
    """Distillation (α = ``claim_alpha``) against training on labels alone (α = 0), per teacher."""
    diffs = {f"{t}: α={claim_alpha:g} − α=0": 100 * (np.asarray(val[(t, claim_alpha)]) - np.asarray(val[(t, 0.0)]))
             for t in teachers}
    m = margin("distillation_helps")
    return gain_claim(diffs, "distillation_helps", "distillation helps (the entry's standard recipe)",
                      f"with every teacher, α = {claim_alpha:g} beats α = 0 on validation top-1 (one-sided paired "
                      f"t-tests by seed, Bonferroni); a gain whose interval lies wholly below {m:g} point is 'not "
                      "reproduced'", "points (α > 0 − α = 0)")


def lighter_teacher(light, heavy, light_name: str, heavy_name: str) -> Claim:
    """Superiority of the lighter teacher's students, trained for the wall-clock the heavier teacher's
    students used (paired by seed; top-1 in [0, 1])."""
    m = margin("lighter_teacher")
    return gain_claim({f"{light_name} − {heavy_name}": 100 * (np.asarray(light, float) - np.asarray(heavy, float))},
                      "lighter_teacher", "lighter teachers than the largest gave better results, faster",
                      f"students of the teacher that is faster per image ({light_name}), trained for the same "
                      f"wall-clock as those of the slower ({heavy_name}) with the teacher run online, are better on "
                      f"validation top-1 (one-sided paired t-test by seed); a gain wholly below {m:g} point is "
                      "'not reproduced'", "points (light − heavy)")


def pretraining_helps(splits: dict[str, tuple], control: str) -> Claim:
    """The largest pool arm against ``control`` on every split (name -> (pretrained, control) top-1 by seed)."""
    m = margin("pretraining")
    return gain_claim({name: 100 * (np.asarray(a, float) - np.asarray(b, float)) for name, (a, b) in splits.items()},
                      "pretraining", "pretraining on teacher-labelled extra images helps (the entry paused it)",
                      f"the largest pool arm beats {control} on every split (one-sided paired t-tests by seed, "
                      f"Bonferroni); a gain whose interval lies wholly below {m:g} point, the smallest effect of "
                      "interest, is 'not reproduced'", "points (pretrained − control)")


def score_interval(top1_ci: tuple[float, float], latency_ci: tuple[float, float], budget_ms: float = 30.0):
    """The challenge score's interval from the accuracy's and the latency's (score rises with accuracy
    and falls with latency, so the bounds are at the corners)."""
    score = lambda acc, ms: 100 * acc * budget_ms / max(budget_ms, ms)  # noqa: E731
    return (score(top1_ci[0], latency_ci[1]), score(top1_ci[1], latency_ci[0]))


def stacked_on_task(stacked_correct, baseline_correct, latency_ratio: float, latency_ci: tuple[float, float]) -> Claim:
    """The stacked model against the plain int8 baseline student, both on the embedded task: faster
    (latency ratio of the two int8 files, timed interleaved on this host, 95% interval wholly below 1)
    at an accuracy loss within the margin (per-image paired difference on the validation images: the
    90% interval's lower bound above -margin, a one-sided test at 5%)."""
    m = margin("stacked")
    s, b = np.asarray(stacked_correct, float) * 100, np.asarray(baseline_correct, float) * 100
    d = s - b
    ci = t_interval(d, 0.90)
    acc = (REPRODUCED if ci[0] > -m else NOT_REPRODUCED if ci[1] < -m else INCONCLUSIVE)
    speed = interval_verdict(latency_ci[0], latency_ci[1], 1.0, claim_below=True)

    def verdict_at(mm):
        a = REPRODUCED if ci[0] > -mm else NOT_REPRODUCED if ci[1] < -mm else INCONCLUSIVE
        return combine(a, speed)
    return Claim("stacked", "combining the techniques gives a faster model at little accuracy cost",
                 f"on the embedded task, the stacked int8 student is faster than the plain int8 baseline student (latency "
                 f"ratio's 95% interval wholly below 1) and loses at most {m:g} point of validation top-1 (per-image "
                 "paired difference, the 90% interval's lower bound above the margin)",
                 "paired per-image difference (t interval); latency ratio across timing sessions",
                 float(d.mean()) if len(d) else math.nan, ci, "points (stacked − int8 baseline)", combine(acc, speed),
                 {}, f"accuracy: {acc}; latency ratio {latency_ratio:.3f} [{latency_ci[0]:.3f}, {latency_ci[1]:.3f}] "
                 f"(95%): {speed}", confidence=0.90,
                 sensitivity={float(mm): verdict_at(float(mm)) for mm in criteria()["claims"]["sensitivity_margins"]})


def statements() -> dict[str, tuple[str, str]]:
    """(the entry's claim, the criterion) per claim id, with the published figures and the criteria
    file's margins filled in."""
    t = thresholds()
    q = criteria()["claims"]["quantization"]
    return {
        "quantization": ("8-bit quantization makes the model much faster without a significant accuracy loss.",
                         f"int8 top-1 equivalent to float32 within ±{t['quant_margin_points']:.1f} points (Google's published "
                         f"int8 cost for MobileNet v1 1.0 @160), by a paired TOST over validation images; and the "
                         f"challenge architecture's int8 latency below {t['quant_break_even_ratio']:.3f}x its float32 "
                         f"latency, the whole 95% interval below. That threshold is derived, not chosen: above the "
                         f"30 ms knee the score is top-1 / latency, so int8 raises the score only if latency falls by "
                         f"more than top-1 does (published int8 / float top-1 = {t['quant_break_even_ratio']:.3f}). "
                         f"How much faster int8 is on a host depends on its instruction set (x86 VNNI int8 dot "
                         f"products, or none), so the sensitivity table also shows the verdict at the published Pixel 2 "
                         f"ratio ({t['published_int8_ratio']:.3f}) and at {', '.join(f'{r:g}' for r in q['latency_sensitivity'][1:])}."),
        "factorization_latency": (f"Factorizing nine 1x1 convolutions cut the quantized model from {t['before']['latency_ms']:g} to "
                                  f"{t['after']['latency_ms']:g} ms.",
                                  f"the nine-layer configuration at the smallest rank fraction of the profile runs at or "
                                  f"below the entry's ratio {t['factorized_ratio']:.3f}, the whole 95% interval below."),
        "factorization_accuracy": (f"Per-layer fine-tuning keeps the factorized model close: {t['before']['top1']:g}% -> "
                                   f"{t['after']['top1']:g}% top-1.",
                                   f"the student's relative int8 top-1 loss after per-layer fine-tuning, at the deepest "
                                   f"and smallest-rank configuration, is at most the entry's "
                                   f"{100 * t['relative_loss']:.1f}%, the whole 95% interval below. A relative loss "
                                   f"carries across tasks only roughly (the embedded task has 10 classes, ImageNet "
                                   f"1,000), so the sensitivity table shows the verdict at other limits too."),
        "mixing_ratio": ("We tested several different mixing ratios, but we did not find any significant differences "
                         "in test accuracy.",
                         f"the claim is about the ratios the entry tried, so every pair of α > 0 values, per teacher, "
                         f"must be equivalent within ±{margin('mixing_ratio'):g} point of validation top-1: an "
                         f"intersection-union test (each pair's paired TOST by seed at {ALPHA}, no correction "
                         f"needed since all must pass). Not reproduced only if a pair's 90% interval lies wholly "
                         f"outside the margin."),
        "distillation_helps": ("Model distillation almost became a standard for training our models.",
                               f"α > 0 beats α = 0 with every teacher: one-sided paired t-tests by seed at {ALPHA} "
                               f"Bonferroni-corrected, read off the interval shown; a gain whose whole interval is "
                               f"below {margin('distillation_helps'):g} point, the smallest effect of interest, is "
                               f"not reproduced."),
        "lighter_teacher": ("Using such a large teacher dramatically slowed down training; lighter ones gave better "
                            "results faster.",
                            f"'lighter' is the teacher that takes less time per image (what slowed the entry); its "
                            f"students, given the same wall-clock as the heavier teacher's with the teacher run online "
                            f"every step (the entry's setting), beat them: a one-sided paired t-test by seed at {ALPHA}. "
                            f"A gain whose whole interval is below {margin('lighter_teacher'):g} point is not reproduced."),
        "pretraining": ("Pretraining on teacher-labelled Open Images should help (the entry paused it for lack of time).",
                        f"the largest pool arm beats the same-steps control (distillation trained as many extra steps "
                        f"on the labelled split) on validation and holdout: one-sided paired t-tests by seed, "
                        f"Bonferroni-corrected; a gain whose whole interval lies below "
                        f"{margin('pretraining'):g} point, the smallest effect of interest, is not reproduced."),
        "stacked": ("The entry stacked its techniques (quantization, factorization, distillation) into one submission.",
                    f"judged on one task, the embedded one: the stacked int8 student runs faster than the plain int8 "
                    f"baseline student on this host (latency ratio of the two files, 95% interval across timing "
                    f"sessions wholly below 1) and loses at most {margin('stacked'):g} point of validation top-1 "
                    f"(per-image paired difference, 90% interval). A score that multiplied the embedded task's "
                    f"accuracy by an ImageNet-size architecture's latency would mix two tasks, so none is judged."),
    }


def statement(claim_id: str) -> str:
    claim, criterion = statements()[claim_id]
    changed = criteria_changed()
    return (f"**The entry's claim.** {claim}\n\n**Criterion, fixed before the run** (`{CRITERIA_FILE}`, last "
            f"changed {changed['date']}, commit {changed['commit']}). {criterion}")


def _num(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def verdict_markdown(claim: Claim) -> str:
    """One paragraph: verdict, estimate with the interval the verdict was read from, the tests'
    p-values, and what the design could detect."""
    def flat(p, prefix=""):
        for k, v in p.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k} ")
            else:
                yield f"{prefix}{k.replace('_', ' ')}: {fmt_p(v)}"

    parts = [f"**Verdict: {claim.verdict}.** Estimate {_num(claim.estimate)} {claim.unit} "
             f"[{_num(claim.interval[0])}, {_num(claim.interval[1])}] ({100 * claim.confidence:g}% interval, the "
             f"one the test decides by)."]
    if claim.p_values:
        parts.append("Tests: " + "; ".join(flat(claim.p_values)) + ".")
    if claim.detail:
        parts.append(claim.detail[0].upper() + claim.detail[1:] + ".")
    d = claim.design
    if claim.min_detectable is not None and d.get("kind"):
        what = ("smallest margin it could show equivalence within" if d["kind"] == "equivalence"
                else "smallest gain it could detect")
        pilot = (f"; the pilot's SD {_num(d['pilot_sd_points'])} asked for {d['seeds_needed_from_pilot']} seeds"
                 if d.get("pilot_sd_points") else "")
        parts.append(f"Design: {d['n']} seeds, margin {d['margin_points']:g} point; {what} at "
                     f"{100 * d['power']:g}% power: {_num(claim.min_detectable)} points (this run's SD "
                     f"{_num(d['sd_points'])}{pilot}).")
    return " ".join(parts)


def distillation_claims(expanded, teachers: list, alphas: list, claim_alpha: float,
                        equal_time: dict | None = None) -> list:
    """The distillation chapter's claims from its runs (one row per teacher x alpha x seed, alpha = 0
    repeated under every teacher): α > 0 values against each other (mixing ratio), α = ``claim_alpha``
    against α = 0 (distillation helps), and, given ``equal_time`` = {"light", "heavy", "light_runs"
    (val top-1 by seed of the light teacher's equal-wall-clock arm)}, the lighter teacher's claim."""
    val = expanded.pivot_table(index="seed", columns=["teacher", "alpha"], values="val_top1")
    found = []
    if sum(a > 0 for a in alphas) >= 2:
        found.append(mixing_ratio(val, teachers, alphas))
    if claim_alpha in alphas and 0.0 in alphas:
        found.append(distillation_helps(val, teachers, claim_alpha))
    if equal_time:
        heavy = val[(equal_time["heavy"], claim_alpha)]
        light = equal_time["light_runs"].reindex(heavy.index)
        found.append(lighter_teacher(light, heavy, equal_time["light"], equal_time["heavy"]))
    return found


def summary_table(found: list[dict]):
    """One row per claim (as claims.json holds them): id, verdict, estimate with the interval its verdict
    was read from, and what a seed-based design could detect against its margin."""
    def detectable(cl):
        m = cl.get("min_detectable")
        if m is None:
            return ""
        if math.isnan(m):
            return "n/a"
        d = cl.get("design") or {}
        return f"{m:.2f} (margin {d['margin_points']:g})" if "margin_points" in d else f"{m:.2f}"
    return pd.DataFrame([{"claim": cl["id"].replace("_", " "), "verdict": cl["verdict"],
                          "estimate [interval]": f"{cl['estimate']:.2f} [{cl['interval'][0]:.2f}, {cl['interval'][1]:.2f}] {cl['unit']}",
                          "interval": f"{100 * cl.get('confidence', 0.95):g}%",
                          "seeds": (cl.get("design") or {}).get("n", ""),
                          "detectable at 80% power (points)": detectable(cl)} for cl in found])


def sensitivity_table(found: list[Claim]):
    """The verdict of each claim at the other margins or thresholds the criteria file lists."""
    return pd.DataFrame([{"claim": c.id.replace("_", " "), "margin or threshold": f"{m:g}", "verdict": v}
                         for c in found for m, v in c.sensitivity.items()])


def record(found: list[Claim], path) -> None:
    """Write a chapter's claims to ``path`` (claims.json) and show each verdict on the page."""
    write_json(path, [c.as_dict() for c in found])
    say("\n\n".join((f"*{c.id.replace('_', ' ')}:* " if len(found) > 1 else "") + verdict_markdown(c)
                      for c in found))

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
import datetime
import functools
import math
import os
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
        out = subprocess.run(["git", "log", "-1", "--date=format-local:%Y-%m-%dT%H:%MZ", "--format=%cd %h", "--",
                              CRITERIA_FILE], cwd=root, env={**os.environ, "TZ": "UTC"},
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
                 "(95% interval wholly below)", "paired TOST per image; latency ratio of medians, interval across timing sessions",
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
    faster = ("faster than the unfactorized file, by less than the entry's cut" if ratio_ci[1] < 1 and verdict == NOT_REPRODUCED
              else "")
    return Claim("factorization_latency", f"factorizing nine 1x1 layers cuts latency as far as the entry's "
                 f"({t['before']['latency_ms']:g} -> {t['after']['latency_ms']:g} ms, {entry_ratio:.3f}x)",
                 f"latency ratio of {config} to the unfactorized int8 architecture at or below the entry's "
                 f"{entry_ratio:.3f} (95% interval wholly below)",
                 "ratio of medians, interleaved timing, 95% t-interval across timing sessions (measured on this host: "
                 "how far a host ratio transfers to a Pixel 2 is the benchmark chapter's transfer error)",
                 ratio, tuple(ratio_ci), "x unfactorized", verdict, detail=faster)


def relative_loss(control_correct, factorized_correct, confidence: float = 0.95) -> dict:
    """The relative top-1 loss L = 1 − f/c of a model (per-image outcomes ``factorized_correct``, 1 where right)
    against a reference (``control_correct``) scored on the same images in the same order, with its
    interval by the delta method for a ratio of paired means. Per image, L moves with −(f_i − R c_i) / c̄
    (R = f̄ / c̄), so se(L) = sd(f_i − R c_i) / (c̄ √n): the covariance of the two outcomes is in it. Images
    both models get right or both get wrong add little; the discordant ones carry the uncertainty, which is
    why pairing narrows the interval against treating the two top-1s as independent proportions.

    With few discordant images that interval is too narrow (with none, zero wide), so it is computed from the
    2 x 2 table of paired outcomes with half an image added to each cell, Agresti and Min's adjustment for
    matched proportions (Stat. Med. 2005); the estimate is the unadjusted one."""
    c, f = np.asarray(control_correct, float), np.asarray(factorized_correct, float)
    if c.ndim != 1 or c.shape != f.shape:
        raise ValueError(f"per-image outcomes of both models on the same images needed, got shapes {c.shape}, {f.shape}")
    n = len(c)
    both, only_c, only_f = int(((c == 1) & (f == 1)).sum()), int(((c == 1) & (f == 0)).sum()), int(((c == 0) & (f == 1)).sum())
    cm, fm = ((both + only_c) / n, (both + only_f) / n) if n else (math.nan, math.nan)
    # the adjusted table: (count, c_i, f_i) per cell, half an image added to each
    cells = [(both + 0.5, 1, 1), (only_c + 0.5, 1, 0), (only_f + 0.5, 0, 1), (n - both - only_c - only_f + 0.5, 0, 0)]
    m = n + 2.0
    ca, fa = (both + only_c + 1) / m, (both + only_f + 1) / m
    r = fa / ca
    var = sum(w * (fi - r * ci) ** 2 for w, ci, fi in cells) / (m - 1)
    se = math.sqrt(var / m) / ca if n else math.nan
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return {"loss": 1 - fm / cm if cm > 0 else math.nan, "ci": (1 - r - z * se, 1 - r + z * se), "se": se, "n": n,
            "control_top1": cm, "factorized_top1": fm, "only_control": only_c, "only_factorized": only_f}


def factorization_accuracy(control_correct, factorized_correct, max_relative_loss: float | None = None, *,
                           untuned_top1: float | None = None, budget: dict | None = None) -> Claim:
    """The factorized model's relative top-1 loss against an unfactorized control fine-tuned with the same
    budget (lpirc.factorize.finetune_control), from per-image outcomes of both on the same images
    (:func:`relative_loss`): reproduced when the 95% interval lies wholly below ``max_relative_loss``
    (default: the entry's), not reproduced when wholly above. ``untuned_top1``: the unfactorized student
    without the extra fine-tuning, shown for what the matched budget changes; ``budget``: the gradient
    steps of both (kept in the claim's design)."""
    t = thresholds()
    max_relative_loss = t["relative_loss"] if max_relative_loss is None else max_relative_loss
    rl = relative_loss(control_correct, factorized_correct, 0.95)
    lo, hi = rl["ci"]
    verdict = interval_verdict(lo, hi, max_relative_loss, claim_below=True)
    sens = {100 * r: interval_verdict(lo, hi, r, claim_below=True)
            for r in [max_relative_loss, *criteria()["claims"]["factorization_accuracy"]["relative_loss_sensitivity"]]}
    b = budget or {}
    detail = (f"the control, the unfactorized student fine-tuned with the same budget"
              + (f" ({b['control_epochs']} epochs of the whole network, {b['control_steps']} gradient steps; the "
                 f"factorized model's per-layer fine-tuning took {b['factorized_steps']} over {b['layers']} layers)"
                 if {"control_epochs", "control_steps", "factorized_steps", "layers"} <= set(b) else "")
              + f", reaches {100 * rl['control_top1']:.2f}% and the factorized model {100 * rl['factorized_top1']:.2f}% "
              f"on the same {rl['n']} images: {rl['only_control']} only the control gets right, "
              f"{rl['only_factorized']} only the factorized model")
    if untuned_top1 is not None and untuned_top1 > 0:
        detail += (f"; against the unfactorized student without that fine-tuning ({100 * untuned_top1:.2f}%) the "
                   f"relative loss would be {100 * (1 - rl['factorized_top1'] / untuned_top1):.2f}%")
    return Claim("factorization_accuracy", "per-layer fine-tuning keeps the factorized model close "
                 f"({t['before']['top1']:g}% -> {t['after']['top1']:g}% top-1, a {100 * t['relative_loss']:.1f}% "
                 "relative loss)",
                 f"relative top-1 loss against the same-budget unfactorized control at most "
                 f"{100 * max_relative_loss:.1f}% (95% interval wholly below)",
                 "paired per-image outcomes on the same images; delta-method interval of the ratio of the two top-1s",
                 100 * rl["loss"], (100 * lo, 100 * hi), "% relative loss", verdict, detail=detail, confidence=0.95,
                 design={"n": rl["n"], "threshold": max_relative_loss, "se": rl["se"], "budget": b,
                         "untuned_top1": untuned_top1}, sensitivity=sens)


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
    des["pairs"] = {name: [tests[name]["diff"], *tests[name]["ci90"]] for name in names}   # difference, 90% interval
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


def loss_within(ci: tuple[float, float], margin_points: float) -> str:
    """A difference's 90% interval (points) against a loss of ``margin_points``: reproduced when its lower
    bound is above -margin (a one-sided test at 5% that the loss is smaller), not reproduced when its upper
    bound is below -margin (the loss is shown larger), inconclusive otherwise."""
    return REPRODUCED if ci[0] > -margin_points else NOT_REPRODUCED if ci[1] < -margin_points else INCONCLUSIVE


def not_beaten(diff_ci: tuple[float, float], ratio_ci: tuple[float, float], margin_points: float) -> str:
    """Whether a model is beaten by a plain control built to run at its latency: ``diff_ci`` the 90% interval
    of model − control (points, paired by image), ``ratio_ci`` the 95% interval of the latency ratio
    model / control. Not beaten (reproduced) when the control is not more accurate beyond the margin
    (:func:`loss_within`); beaten (not reproduced) when it is. The comparison holds at equal latency only
    if the latency does not favour the side the accuracy does, so it is inconclusive when the model is as
    accurate within the margin but shown slower (the interval wholly above 1: a control at its exact latency
    would be wider), when it is less accurate beyond the margin but shown faster (wholly below 1: a trade,
    not a loss at equal latency), and when the ratio has no interval."""
    acc = loss_within(diff_ci, margin_points)
    lo, hi = ratio_ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE
    if (acc == REPRODUCED and lo > 1) or (acc == NOT_REPRODUCED and hi < 1):
        return INCONCLUSIVE
    return acc


def stacked_on_task(stacked_correct, baseline_correct, latency_ratio: float, latency_ci: tuple[float, float],
                    control_correct=None, control_ratio: float = math.nan,
                    control_ci: tuple[float, float] = (math.nan, math.nan),
                    control: str = "the width control (same MACs, same training images)") -> Claim:
    """The stacked model on the embedded task, against two plain int8 students, per image on the validation
    images (``*_correct``: 1 right, 0 wrong, the same images in the same order):

    - the baseline student: faster (``latency_ratio`` stacked / baseline, 95% interval across timing sessions
      wholly below 1) at an accuracy loss within the margin (the 90% interval of the paired difference above
      -margin, a one-sided test at 5%: :func:`loss_within`);
    - ``control``, the same student made faster by width alone until its MACs match the stacked model's,
      trained for the same number of training images: not beaten (:func:`not_beaten`, with ``control_ratio``
      and ``control_ci`` the latency ratio stacked / control and its 95% interval). Without a control
      (``control_correct`` None) that part is inconclusive.

    Reproduced when every part is; the estimate shown is the difference from the baseline, the control's
    numbers are in ``detail`` and ``design``."""
    m = margin("stacked")
    s, b = np.asarray(stacked_correct, float) * 100, np.asarray(baseline_correct, float) * 100
    d = s - b
    ci = t_interval(d, 0.90)
    speed = interval_verdict(latency_ci[0], latency_ci[1], 1.0, claim_below=True)
    dc = None if control_correct is None else s - np.asarray(control_correct, float) * 100
    ci_c = (math.nan, math.nan) if dc is None else t_interval(dc, 0.90)

    def parts(mm):
        return loss_within(ci, mm), speed, INCONCLUSIVE if dc is None else not_beaten(ci_c, tuple(control_ci), mm)
    acc, _, ctl = parts(m)
    if dc is None:
        against = f"latency and accuracy against {control}: none in this run, so this part is {ctl}"
    else:
        acc_c, why = loss_within(ci_c, m), ""
        if ctl == INCONCLUSIVE and acc_c != INCONCLUSIVE:
            why = (" (the latency ratio has no interval)" if not np.all(np.isfinite(control_ci)) else
                   " (as accurate within the margin, but slower: not shown at equal latency)" if acc_c == REPRODUCED else
                   " (less accurate beyond the margin, but faster: a trade, not a loss at equal latency)")
        against = (f"latency and accuracy against {control}: stacked − control "
                   f"{dc.mean():+.2f} points [{ci_c[0]:+.2f}, {ci_c[1]:+.2f}] (90%), latency ratio stacked / control "
                   f"{control_ratio:.3f} [{control_ci[0]:.3f}, {control_ci[1]:.3f}] (95%): {ctl}{why}")
    return Claim("stacked", "combining the techniques gives a faster model at little accuracy cost",
                 f"on the embedded task, the stacked int8 student is faster than the plain int8 baseline student (latency "
                 f"ratio's 95% interval wholly below 1) and loses at most {m:g} point of validation top-1 to it (per-image "
                 "paired difference, the 90% interval's lower bound above the margin); and the same student made faster "
                 "by width alone, to the stacked model's MACs and trained for as many images, does not beat it: it is "
                 f"not more accurate beyond the {m:g} point margin (90% interval), where the latency ratio stacked / "
                 "control (95% interval) does not favour the side the accuracy does",
                 "paired per-image differences (t intervals); latency ratios across timing sessions",
                 float(d.mean()) if len(d) else math.nan, ci, "points (stacked − int8 baseline)", combine(*parts(m)),
                 {}, f"accuracy: {acc}; latency ratio {latency_ratio:.3f} [{latency_ci[0]:.3f}, {latency_ci[1]:.3f}] "
                 f"(95%): {speed}; {against}", confidence=0.90,
                 design={"margin_points": m, "control": None if dc is None else {
                     "name": control, "difference_points": float(dc.mean()), "ci90": [float(v) for v in ci_c],
                     "latency_ratio": float(control_ratio), "latency_ci95": [float(v) for v in control_ci],
                     "verdict": ctl}},
                 sensitivity={float(mm): combine(*parts(float(mm))) for mm in criteria()["claims"]["sensitivity_margins"]})


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
                                   f"and smallest-rank configuration, against an unfactorized control fine-tuned with "
                                   f"the same budget, is at most the entry's "
                                   f"{100 * t['relative_loss']:.1f}%: the whole 95% interval, from the two models' "
                                   f"paired outcomes on each validation image, below. "
                                   + " ".join(criteria()["claims"]["factorization_accuracy"].get("justification", "").split())),
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
                    f"(per-image paired difference, 90% interval); and it is not beaten by the plain baseline at the "
                    f"same latency: the same MobileNet v1 student made faster by width alone (the width whose MACs are "
                    f"nearest the stacked model's), trained from scratch on labels with the baseline's recipe for as "
                    f"many training images as the stacked model's whole history, converted to int8 the same way. "
                    f"The control beats the stacked model if it is more accurate beyond the same "
                    f"{margin('stacked'):g} point margin (90% interval of the paired difference wholly below "
                    f"-{margin('stacked'):g}), and does not if the interval lies wholly above it. Equal MACs need not "
                    f"mean equal latency, so the two files are timed in the same sessions and the comparison counts "
                    f"only where their latency ratio (95% interval) does not favour the side the accuracy does: a "
                    f"control not more accurate beyond the margin but faster, or more accurate beyond it but slower, "
                    f"leaves this part inconclusive. All parts must hold. A score that multiplied the embedded task's "
                    f"accuracy by an ImageNet-size architecture's latency would mix two tasks, so none is judged."),
    }


def statement(claim_id: str) -> str:
    claim, criterion = statements()[claim_id]
    changed = criteria_changed()
    return (f"**The entry's claim.** {claim}\n\n**Criterion, fixed before the run** (`{CRITERIA_FILE}`, last "
            f"changed {changed['date']}, commit {changed['commit']}; this run: "
            f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}). "
            f"{criterion[:1].upper()}{criterion[1:]}")


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
    def other_part(cl):
        """The latency part of a two-part claim (its detail reads 'accuracy: ...; latency ratio ...: verdict')."""
        parts = (cl.get("detail") or "").split("; ")
        return "; ".join(p for p in parts if p.startswith("latency")) if parts[0].startswith("accuracy:") else ""
    return pd.DataFrame([{"claim": cl["id"].replace("_", " "), "verdict": cl["verdict"],
                          "estimate [interval]": f"{cl['estimate']:.2f} [{cl['interval'][0]:.2f}, {cl['interval'][1]:.2f}] {cl['unit']}",
                          "confidence": f"{100 * cl.get('confidence', 0.95):g}%",
                          "latency part (two-part claims)": other_part(cl),
                          "seeds": (cl.get("design") or {}).get("n", "") if "kind" in (cl.get("design") or {}) else "",
                          "detectable at 80% power (points)": detectable(cl)} for cl in found])


def sensitivity_table(found: list[Claim]):
    """The verdict of each claim at the other margins or thresholds the criteria file lists."""
    return pd.DataFrame([{"claim": c.id.replace("_", " "), "margin or threshold": f"{m:.3g}", "verdict": v}
                         for c in found for m, v in c.sensitivity.items()])


def record(found: list[Claim], path) -> None:
    """Write a chapter's claims to ``path`` (claims.json) and show each verdict on the page."""
    write_json(path, [c.as_dict() for c in found])
    say("\n\n".join((f"*{c.id.replace('_', ' ')}:* " if len(found) > 1 else "") + verdict_markdown(c)
                      for c in found))

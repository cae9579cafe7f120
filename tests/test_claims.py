"""Every verdict branch of every claim kind, on fixture numbers with known answers."""
import json

import numpy as np
import pytest

from lpirc import claims as C

R, N, I = C.REPRODUCED, C.NOT_REPRODUCED, C.INCONCLUSIVE


def correctness(n, acc, rng):
    return (rng.random(n) < acc).astype(float)


def test_interval_verdict_three_ways():
    assert C.interval_verdict(0.70, 0.80, 0.837, claim_below=True) == R
    assert C.interval_verdict(0.85, 0.95, 0.837, claim_below=True) == N
    assert C.interval_verdict(0.80, 0.90, 0.837, claim_below=True) == I


@pytest.mark.parametrize("flip,ratio_ci,expected", [
    (0.0, (0.40, 0.45), R),       # same predictions, much faster
    (0.0, (1.00, 1.10), N),       # equivalent accuracy but not faster than the break-even ratio
    (0.05, (0.40, 0.45), N),      # int8 loses 5 points: not equivalent, difference shown
])
def test_quantization_claim(flip, ratio_ci, expected):
    rng = np.random.default_rng(0)
    f = correctness(4000, 0.8, rng)
    q = f.copy()
    hit = np.flatnonzero(f == 1)[: int(flip * len(f))]
    q[hit] = 0
    # a few images change both ways, so the paired differences have a spread
    q[np.flatnonzero(f == 0)[:20]] = 1
    q[np.flatnonzero(f == 1)[-20:]] = 0
    claim = C.quantization(f, q, float(np.mean(ratio_ci)), ratio_ci)
    assert claim.verdict == expected, claim


def test_quantization_inconclusive_with_few_images():
    rng = np.random.default_rng(1)
    f = correctness(40, 0.8, rng)
    q = f.copy()
    q[:3] = 1 - q[:3]
    assert C.quantization(f, q, 0.4, (0.38, 0.42)).verdict == I


def test_factorization_claims():
    assert C.factorization_latency(0.75, (0.72, 0.79), "last9_r0.25").verdict == R
    assert C.factorization_latency(0.95, (0.90, 0.99), "last9_r0.25").verdict == N
    assert C.factorization_latency(0.83, (0.80, 0.87), "last9_r0.25").verdict == I
    assert C.factorization_accuracy(0.80, 0.79, 100_000).verdict == R        # 1.25% relative, tight
    assert C.factorization_accuracy(0.80, 0.60, 100_000).verdict == N        # 25% relative
    assert C.factorization_accuracy(0.80, 0.76, 200).verdict == I            # 5% with a wide interval


def test_equivalence_iut_three_ways():
    base = np.array([0.70, 0.72, 0.71, 0.73, 0.69, 0.70, 0.72, 0.71])
    jitter = np.array([0.001, -0.001, 0.002, -0.002, 0.001, 0.0, -0.001, 0.001])
    same = C.equivalence_iut({"a": (base + jitter, base), "b": (base - jitter, base)}, "mixing_ratio", "c", "k")
    assert same.verdict == R and same.confidence == 0.90 and 0 < same.min_detectable < 1.0
    assert same.design["n"] == 8 and same.design["comparisons"] == 2
    # one pair 5 points apart, tightly: its 90% interval lies wholly outside ±1
    different = C.equivalence_iut({"a": (base + jitter, base), "b": (base + 0.05 + jitter, base)}, "mixing_ratio", "c", "k")
    assert different.verdict == N and different.estimate == pytest.approx(5.0 + 100 * jitter.mean())
    noisy = C.equivalence_iut({"a": (base + np.array([0.03, -0.03, 0.02, -0.02, 0, 0.01, -0.01, 0]), base)},
                              "mixing_ratio", "c", "k")
    assert noisy.verdict == I
    assert set(noisy.sensitivity) == {0.5, 1.0, 2.0}


def test_mixing_ratio_compares_positive_alphas_only():
    import pandas as pd
    rows = [{"seed": s, "teacher": t, "alpha": a, "val_top1": 0.70 + 0.002 * s + (0.3 if a == 0 else 0) + 0.0003 * a * s}
            for s in range(6) for t in ("x", "y") for a in (0.0, 0.5, 1.0)]
    val = pd.DataFrame(rows).pivot_table(index="seed", columns=["teacher", "alpha"], values="val_top1")
    c = C.mixing_ratio(val, ["x", "y"], [0.0, 0.5, 1.0])
    # α = 0 is 30 points away, yet the claim is about α > 0 among themselves: reproduced
    assert c.verdict == R and set(c.p_values) == {"x: α=1 vs α=0.5", "y: α=1 vs α=0.5"}
    helps = C.distillation_helps(val, ["x", "y"], 0.5)
    assert helps.verdict == N and helps.estimate < -29       # α = 0.5 is worse than α = 0


def test_gain_claim_smallest_effect_and_bonferroni():
    ctrl = np.array([0.70, 0.71, 0.72, 0.70, 0.71])
    up = ctrl + np.array([0.04, 0.05, 0.045, 0.05, 0.04])
    c = C.pretraining_helps({"val": (up, ctrl), "holdout": (up, ctrl)}, "b")
    assert c.verdict == R and c.confidence == pytest.approx(0.95)      # Bonferroni over two splits
    assert c.interval[0] > 0 and c.design["kind"] == "superiority"
    # a precisely measured zero is below the smallest effect of interest: not reproduced, not inconclusive
    zero = ctrl + np.array([0.0005, -0.0005, 0.0002, -0.0002, 0.0])
    assert C.pretraining_helps({"val": (zero, ctrl)}, "b").verdict == N
    assert C.pretraining_helps({"val": (ctrl + np.array([0.02, -0.02, 0.01, -0.01, 0.0]), ctrl)}, "b").verdict == I
    # a shown gain smaller than the smallest effect of interest is still 'not reproduced'
    assert C.superiority_verdict(0.1, 0.6, 1.0) == N and C.superiority_verdict(0.1, 1.6, 1.0) == R


def test_lighter_teacher_is_superiority():
    heavy = np.array([0.70, 0.71, 0.72, 0.70, 0.71])
    assert C.lighter_teacher(heavy + 0.02 + np.array([0.001, 0.002, 0.0, 0.001, 0.002]), heavy, "l", "h").verdict == R
    # equal is not enough: the entry said 'better'
    assert C.lighter_teacher(heavy + np.array([0.0001, 0.0002, 0.0, 0.0001, -0.0002]), heavy, "l", "h").verdict == N
    assert C.lighter_teacher(heavy + np.array([0.03, -0.04, 0.02, -0.03, 0.0]), heavy, "l", "h").verdict == I


def test_power_design():
    # the detectable margin shrinks as 1/sqrt(n); seeds_needed inverts it
    d4, d16 = (C.detectable(1.0, n, "equivalence") for n in (4, 16))
    assert d16 < d4 / 1.9
    n = C.seeds_needed(1.0, 1.0, "superiority")
    assert C.detectable(1.0, n, "superiority") <= 1.0 < C.detectable(1.0, n - 1, "superiority")
    assert C.seeds_needed(1.0, 1.0, "equivalence", comparisons=4) > C.seeds_needed(1.0, 1.0, "equivalence")
    with pytest.raises(ValueError):
        C.detectable(1.0, 5, "noninferiority")


def test_verdict_markdown_shows_the_deciding_interval():
    ctrl = np.array([0.70, 0.71, 0.72, 0.70, 0.71])
    c = C.pretraining_helps({"val": (ctrl + 0.03 + np.array([0.001, 0.0, 0.002, 0.0, 0.001]), ctrl)}, "b")
    text = C.verdict_markdown(c)
    assert "90% interval" in text and "Design: 5 seeds" in text


def test_stacked_on_task():
    rng = np.random.default_rng(3)
    base = correctness(4000, 0.7, rng)
    same = base.copy()
    same[np.flatnonzero(base == 1)[:30]] = 0           # 0.75 point worse, precisely
    same[np.flatnonzero(base == 0)[:25]] = 1
    assert C.stacked_on_task(same, base, 0.8, (0.78, 0.82)).verdict == R
    assert C.stacked_on_task(same, base, 1.02, (1.01, 1.04)).verdict == N         # not faster
    worse = base.copy()
    worse[np.flatnonzero(base == 1)[:200]] = 0         # 5 points worse
    assert C.stacked_on_task(worse, base, 0.8, (0.78, 0.82)).verdict == N
    few = C.stacked_on_task(same[:200], base[:200], 0.8, (0.78, 0.82))
    assert few.verdict in (R, I) and few.confidence == 0.90


def test_claims_serialise_and_refuse_unknown_verdicts():
    c = C.factorization_latency(0.75, (0.72, 0.79), "x")
    assert json.loads(json.dumps(c.as_dict()))["verdict"] == R
    with pytest.raises(ValueError):
        C.Claim("x", "c", "k", "t", 1.0, (0, 1), "u", "probably")


def test_no_verdict_word_is_a_literal_in_a_notebook(root):
    """Verdicts come from lpirc.claims, never from a string typed in a notebook."""
    for path in (root / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"]).lower()
            for word in ("reproduced", "inconclusive", "**reproduces", "does not reproduce"):
                assert word not in src, f"{path.name}: verdict word {word!r} in code"


def test_default_profile_uses_the_seeds_the_power_computation_gave(root):
    """The default profile's seed lists are the criteria file's n_seeds, and that n reaches the margin at
    the pilot's SD (the design is committed with the criteria, not tuned after the run)."""
    import yaml

    profile = yaml.safe_load((root / "params" / "default.yaml").read_text())
    crit = C.criteria()
    for step, n in crit["pilot"]["n_seeds"].items():
        if n is not None:
            assert len(profile[step]["seeds"]) == n, step
    sd = crit["pilot"]["sd_points"]
    n_d = crit["pilot"]["n_seeds"]["distillation"]
    assert C.detectable(sd["mixing_ratio"], n_d, "equivalence", 2) <= C.margin("mixing_ratio")
    assert C.detectable(sd["distillation_helps"], n_d, "superiority", 2) <= C.margin("distillation_helps")
    assert C.detectable(sd["lighter_teacher"], n_d, "superiority", 1) <= C.margin("lighter_teacher")
    if sd["pretraining"] is not None:
        n_o = crit["pilot"]["n_seeds"]["open_images"]
        assert C.detectable(sd["pretraining"], n_o, "superiority", 2) <= C.margin("pretraining")

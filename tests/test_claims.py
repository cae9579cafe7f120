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
    assert C.factorization_accuracy(*paired_outcomes(100_000, 0.8, 1_000)).verdict == R    # 1.25% relative, tight
    assert C.factorization_accuracy(*paired_outcomes(100_000, 0.8, 20_000)).verdict == N   # 25% relative
    assert C.factorization_accuracy(*paired_outcomes(200, 0.8, 8)).verdict == I            # 5% with a wide interval


def paired_outcomes(n, control_acc, lost, gained=0):
    """(control, factorized) per-image outcomes: the control right on the first control_acc x n images; the
    factorized model misses ``lost`` of those and gets ``gained`` of the control's misses right."""
    c = np.zeros(n, bool)
    c[:round(control_acc * n)] = True
    f = c.copy()
    f[:lost] = False
    if gained:
        f[n - gained:] = True
    return c, f


def test_factorization_accuracy_is_paired():
    """3% relative loss on 2,000 images, the factorized model losing 48 of the control's 1,600 right answers and
    gaining none: paired, the interval lies below the entry's 5.5%; as two independent proportions (the
    former test) it would straddle it."""
    c, f = paired_outcomes(2000, 0.8, 48)
    claim = C.factorization_accuracy(c, f)
    assert claim.estimate == pytest.approx(3.0) and claim.verdict == R
    assert claim.interval[1] < 100 * C.thresholds()["relative_loss"]
    unpaired_se = np.sqrt((c.mean() * (1 - c.mean()) + f.mean() * (1 - f.mean())) / len(c)) / c.mean()
    assert 3.0 + 196 * unpaired_se > 100 * C.thresholds()["relative_loss"]
    # the same top-1s with the pairing broken (the losses spread over images the control also missed) widen it
    rng = np.random.default_rng(0)
    shuffled = C.relative_loss(c, rng.permutation(f))
    assert shuffled["loss"] == pytest.approx(0.03) and shuffled["se"] > 2 * C.relative_loss(c, f)["se"]
    with pytest.raises(ValueError):
        C.relative_loss(c, f[:-1])


def test_no_discordant_image_is_no_certainty():
    """Two models at chance that answer every image alike (20 of 200 right): no image tells them apart, which
    is not evidence that they are equal; the interval keeps a width (half an image added to each cell of the
    paired table) and the verdict is inconclusive, not a zero-width 'reproduced'."""
    c, f = paired_outcomes(200, 0.1, 0)
    rl = C.relative_loss(c, f)
    assert rl["loss"] == 0 and rl["ci"][1] - rl["ci"][0] > 0.1
    assert C.factorization_accuracy(c, f).verdict == I
    c, f = paired_outcomes(20_000, 0.8, 0)                      # many images, all agreeing: a narrow interval
    assert C.factorization_accuracy(c, f).verdict == R


def test_relative_loss_interval_agrees_with_a_paired_bootstrap():
    rng = np.random.default_rng(3)
    c = rng.random(3000) < 0.75
    f = c.copy()
    flip = rng.random(3000) < 0.06                  # the factorized model disagrees on about 6% of images
    f[flip] = ~f[flip]
    rl = C.relative_loss(c, f)
    idx = rng.integers(0, 3000, (4000, 3000))
    boot = 1 - f[idx].mean(1) / c[idx].mean(1)
    assert rl["loss"] == pytest.approx(1 - f.mean() / c.mean())
    assert rl["se"] == pytest.approx(boot.std(ddof=1), rel=0.1)
    lo, hi = rl["ci"]
    assert (hi - lo) / 2 == pytest.approx(1.96 * rl["se"], rel=1e-3)


def test_factorization_accuracy_shows_its_budget_and_confidence():
    c, f = paired_outcomes(1000, 0.8, 10, gained=4)
    budget = {"layers": 9, "epochs_per_layer": 1, "factorized_steps": 288, "control_epochs": 9, "control_steps": 288}
    claim = C.factorization_accuracy(c, f, untuned_top1=0.78, budget=budget)
    assert claim.confidence == 0.95 and "95% interval" in claim.criterion and "same-budget" in claim.criterion
    assert "288 gradient steps" in claim.detail and "10 only the control" in claim.detail and "4 only the factorized" in claim.detail
    assert "95% interval" in C.verdict_markdown(claim) and claim.design["budget"] == budget
    assert list(claim.sensitivity) == pytest.approx([100 * C.thresholds()["relative_loss"], 3.0, 10.0])
    assert "justification" in C.criteria()["claims"]["factorization_accuracy"]
    assert "same budget" in C.statements()["factorization_accuracy"][1]


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


def flipped(outcomes, right_to_wrong=0, wrong_to_right=0):
    """``outcomes`` with the first ``right_to_wrong`` right images made wrong and the first ``wrong_to_right``
    wrong ones made right."""
    out = outcomes.copy()
    out[np.flatnonzero(outcomes == 1)[:right_to_wrong]] = 0
    out[np.flatnonzero(outcomes == 0)[:wrong_to_right]] = 1
    return out


EQUAL = (0.98, 1.03)       # a latency ratio stacked / control whose interval holds 1: about equal latency


def test_stacked_on_task():
    rng = np.random.default_rng(3)
    base = correctness(4000, 0.7, rng)
    same = flipped(base, 30, 25)                       # 0.125 point worse than the baseline
    ctl = flipped(same, 200)                           # a width control 5 points worse than the stacked model
    assert C.stacked_on_task(same, base, 0.8, (0.78, 0.82), ctl, 1.0, EQUAL).verdict == R
    assert C.stacked_on_task(same, base, 1.02, (1.01, 1.04), ctl, 1.0, EQUAL).verdict == N         # not faster
    worse = flipped(base, 200)                         # 5 points worse than the baseline
    assert C.stacked_on_task(worse, base, 0.8, (0.78, 0.82), flipped(worse, 200), 1.0, EQUAL).verdict == N
    few = C.stacked_on_task(same[:200], base[:200], 0.8, (0.78, 0.82), ctl[:200], 1.0, EQUAL)
    assert few.verdict in (R, I) and few.confidence == 0.90


@pytest.mark.parametrize("control_change,ratio_ci,expected,part", [
    ((200, 0), EQUAL, R, R),             # the stacked model beats the width control by 5 points at equal latency
    ((0, 0), EQUAL, R, R),               # a tie: the control is not more accurate beyond the margin
    ((0, 200), EQUAL, N, N),             # the control is 5 points more accurate at equal latency: beaten
    ((0, 40), EQUAL, I, I),              # the control 1 point better: the interval straddles the margin
    ((0, 200), (0.80, 0.85), I, I),      # the control more accurate but slower: a trade, not a loss at equal latency
    ((0, 0), (1.05, 1.10), I, I),        # a tie, but the stacked model slower: not shown at equal latency
    ((0, 200), (1.05, 1.10), N, N),      # the control more accurate and faster: beaten
    ((200, 0), (0.80, 0.85), R, R),      # the stacked model more accurate and faster
    ((0, 0), (float("nan"), float("nan")), I, I),   # one timing session: no interval, no verdict
])
def test_stacked_against_the_width_control(control_change, ratio_ci, expected, part):
    rng = np.random.default_rng(5)
    base = correctness(4000, 0.7, rng)
    stacked = base.copy()                              # as accurate as the baseline, and faster: that part holds
    ctl = flipped(stacked, *control_change)
    claim = C.stacked_on_task(stacked, base, 0.8, (0.78, 0.82), ctl, 1.0, ratio_ci)
    assert claim.verdict == expected and claim.design["control"]["verdict"] == part
    d = claim.design["control"]
    assert d["difference_points"] == pytest.approx(100 * (stacked.mean() - ctl.mean()))
    lo, hi = d["ci90"]
    assert lo <= d["difference_points"] <= hi
    # the verdict follows from the intervals printed beside it
    assert f"[{lo:+.2f}, {hi:+.2f}] (90%)" in claim.detail and "stacked / control" in claim.detail
    assert ("not shown at equal latency" in claim.detail) == (control_change == (0, 0) and ratio_ci == (1.05, 1.10))
    assert ("a trade" in claim.detail) == (control_change == (0, 200) and ratio_ci == (0.80, 0.85))
    assert "accuracy: " + R in claim.detail       # the baseline part, unchanged


def test_stacked_claim_without_a_control_is_inconclusive_and_margins_move_the_control_part():
    rng = np.random.default_rng(7)
    base = correctness(4000, 0.7, rng)
    claim = C.stacked_on_task(base, base, 0.8, (0.78, 0.82))
    assert claim.verdict == I and "none in this run" in claim.detail and claim.design["control"] is None
    ctl = flipped(base, 0, 40)                         # the control 1 point better: -1.0 [-1.26, -0.74]
    claim = C.stacked_on_task(base, base, 0.8, (0.78, 0.82), ctl, 1.0, EQUAL)
    margins = C.criteria()["claims"]["sensitivity_margins"]
    assert list(claim.sensitivity) == [float(m) for m in margins]
    assert claim.sensitivity[0.5] == N and claim.sensitivity[1.0] == I and claim.sensitivity[2.0] == R
    assert C.not_beaten((-0.5, 0.5), (0.9, 1.1), 1.0) == R
    assert C.not_beaten((-3.0, -2.0), (0.9, 1.1), 1.0) == N
    assert C.not_beaten((-3.0, -2.0), (0.8, 0.9), 1.0) == I
    assert C.not_beaten((-0.5, 0.5), (1.1, 1.2), 1.0) == I
    assert C.not_beaten((-1.5, -0.5), (0.9, 1.1), 1.0) == I
    assert "width alone" in C.statements()["stacked"][1] and "control" in C.criteria()["claims"]["stacked"]


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

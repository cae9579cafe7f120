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
    (0.0, (0.90, 1.10), N),       # equivalent accuracy but not faster
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


def test_equivalent_arms():
    base = np.array([0.70, 0.72, 0.71, 0.73, 0.69, 0.70, 0.72, 0.71])
    jitter = np.array([0.001, -0.001, 0.002, -0.002, 0.001, 0.0, -0.001, 0.001])
    same = C.equivalent_arms({"a=0.5": (base + jitter, base), "a=1": (base - jitter, base)}, 1.0, "mix", "c", "ratios")
    assert same.verdict == R and same.min_detectable is not None and same.min_detectable > 0
    different = C.equivalent_arms({"a=1": (base + 0.05 + jitter, base)}, 1.0, "mix", "c", "ratios")
    assert different.verdict == N
    noisy = C.equivalent_arms({"a=1": (base + np.array([0.03, -0.03, 0.02, -0.02, 0, 0.01, -0.01, 0]), base)},
                              1.0, "mix", "c", "ratios")
    assert noisy.verdict == I


def test_lighter_teacher():
    heavy = np.array([0.70, 0.71, 0.72, 0.70, 0.71])
    assert C.lighter_teacher(heavy + np.array([0.001, 0.002, 0.0, 0.001, 0.002]), heavy, "l", "h").verdict == R
    assert C.lighter_teacher(heavy - 0.05 + np.array([0.001, 0.002, 0.0, 0.001, 0.002]), heavy, "l", "h").verdict == N
    assert C.lighter_teacher(heavy + np.array([0.03, -0.04, 0.02, -0.03, 0.0]), heavy, "l", "h").verdict == I


def test_pretraining_helps():
    ctrl = np.array([0.70, 0.71, 0.72, 0.70, 0.71])
    up = ctrl + np.array([0.04, 0.05, 0.045, 0.05, 0.04])
    assert C.pretraining_helps({"val": (up, ctrl), "holdout": (up, ctrl)}, "b").verdict == R
    assert C.pretraining_helps({"val": (ctrl - (up - ctrl), ctrl)}, "b").verdict == N
    assert C.pretraining_helps({"val": (ctrl + np.array([0.02, -0.02, 0.01, -0.01, 0.0]), ctrl)}, "b").verdict == I


def test_stacked_beats():
    base = {"top1": 0.78, "n": 4000, "latency_ms": 37.4, "latency_ci": (37.4, 37.4)}
    fast = {"top1": 0.77, "n": 4000, "latency_ms": 28.0, "latency_ci": (26.0, 30.0)}
    assert C.stacked_beats(fast, base).verdict == R
    assert C.stacked_beats({**fast, "top1": 0.50}, base).verdict == N
    assert C.stacked_beats({"top1": 0.76, "n": 200, "latency_ms": 34.0, "latency_ci": (31.0, 38.0)}, base).verdict == I


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

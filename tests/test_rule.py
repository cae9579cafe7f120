"""lpirc.rule on small fixture tables: the score and its knee, interval propagation, the accuracy model,
the searches (exhaustive against greedy, on a space where greedy is known to lose) and the domains."""
import math

import numpy as np
import pandas as pd
import pytest

from lpirc import projection, reference, rule
from lpirc.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED


# --------------------------------------------------------------------------------------------------
# the score
def test_score_is_flat_below_the_knee_and_falls_as_one_over_latency_above():
    assert rule.challenge_score(64.0, 10.0) == 64.0
    assert rule.challenge_score(64.0, 30.0) == 64.0                  # at the knee: still the full top-1
    assert rule.challenge_score(60.0, 60.0) == pytest.approx(30.0)   # twice the knee: half
    assert rule.challenge_score(60.0, 40.0, knee_ms=20.0) == pytest.approx(30.0)
    s = rule.challenge_score(np.array([50.0, 50.0, np.nan]), np.array([15.0, 45.0, 20.0]))
    assert s[:2] == pytest.approx([50.0, 50.0 * 30 / 45]) and math.isnan(s[2])


def test_score_matches_the_reference_module_and_the_entry():
    e = rule.entry_figures()
    ref = reference.entry()["factorized"]
    assert e["factorized"]["score"] == pytest.approx(reference.challenge_score(ref["top1"], ref["latency_ms"]))
    assert e["layers"] == 9 and (e["width_multiplier"], e["resolution"]) == (1.0, 160)
    assert e["relative_loss"] == pytest.approx(1 - ref["top1"] / reference.entry()["unfactorized"]["top1"])


def test_iso_score_line_scores_its_level():
    lat = np.array([5.0, 29.0, 30.0, 45.0, 90.0])
    top = rule.iso_score_top1(53.0, lat)
    assert rule.challenge_score(top, lat) == pytest.approx(np.full(5, 53.0))
    assert top[0] == top[1] == top[2] == 53.0 and top[4] > top[3] > top[2]


def test_benchmark_spread_is_read_from_the_reference_files():
    s = rule.benchmark_spread()
    assert s["entry_ms"] == reference.entry()["unfactorized"]["latency_ms"]
    assert s["published_ms"] == reference.pixel2_ms(1.0, 160, "int8")
    assert s["ratio"] == pytest.approx(max(s["entry_ms"], s["published_ms"]) / min(s["entry_ms"], s["published_ms"]))


# --------------------------------------------------------------------------------------------------
# interval propagation
def test_simulate_exact_rows_have_point_intervals():
    frame = pd.DataFrame({"top1": [60.0, 60.0], "latency_ms": [20.0, 40.0]})
    out = rule.simulate(frame, spread=1.0, draws=500, seed=0, threshold=50.0)
    assert out.score_low.tolist() == pytest.approx(out.score.tolist())
    assert out.score_high.tolist() == pytest.approx(out.score.tolist())
    assert out.p_beats.tolist() == [1.0, 0.0]


def test_simulate_spread_bounds_and_knee():
    frame = pd.DataFrame({"top1": [60.0, 60.0, 60.0, np.nan], "latency_ms": [20.0, 40.0, 30.0, 20.0]})
    out = rule.simulate(frame, spread=1.2, draws=4000, seed=1, threshold=55.0)
    # far under the knee, the spread cannot cost anything
    assert out.score_low[0] == out.score_high[0] == 60.0 and out.p_beats[0] == 1.0
    # above it, the latency stays within the spread either way and the score interval holds the point
    assert 40 / 1.2 <= out.latency_low[1] < 40 < out.latency_high[1] <= 40 * 1.2
    assert out.score_low[1] < out.score[1] < out.score_high[1] <= 60.0
    # at the knee the score can only fall: the upper end is the top-1
    assert out.score_high[2] == pytest.approx(60.0) and out.score_low[2] < 60.0
    assert 0 < out.p_beats[2] < 1
    assert np.isnan(out.loc[3, ["score_low", "score_high", "p_beats"]].astype(float)).all()


def test_simulate_is_reproducible_and_widens_with_each_source():
    base = pd.DataFrame({"top1": [62.0], "latency_ms": [33.0]})
    a = rule.simulate(base, 1.1, 3000, seed=3, threshold=55.0)
    b = rule.simulate(base, 1.1, 3000, seed=3, threshold=55.0)
    assert a.equals(b)
    wider = rule.simulate(base.assign(latency_log_se=0.1, latency_df=10, top1_se=1.0, top1_df=12), 1.1, 3000, seed=3)
    assert wider.score_high[0] - wider.score_low[0] > a.score_high[0] - a.score_low[0]


def test_score_difference_of_a_row_with_itself_is_zero_without_uncertainty():
    row = pd.Series({"top1": 64.0, "latency_ms": 24.9})
    d = rule.score_difference(row, row, spread=1.0, draws=200, seed=0)
    assert d["difference"] == 0 and d["ci95"] == (0.0, 0.0)


def test_published_scores_cover_every_reference_row_with_intervals():
    scores = rule.published_scores(rule.benchmark_spread()["ratio"], draws=1000, seed=0)
    pub, ent = reference.mobilenet_v1_published(), reference.entry_figures()
    assert len(scores) == 2 * len(pub) + len(ent)
    assert (scores.score_low <= scores.score + 1e-9).all() and (scores.score <= scores.score_high + 1e-9).all()
    assert scores.score.is_monotonic_decreasing
    best = scores[scores.source == "published"].iloc[0]
    assert best.score == pytest.approx(max(rule.challenge_score(pub.quant_top1, pub.pixel2_quant_ms).max(),
                                           rule.challenge_score(pub.float_top1, pub.pixel2_float_ms).max()))


# --------------------------------------------------------------------------------------------------
# the accuracy model
def _exact_grid(noise=0.0, seed=0):
    w, r = np.meshgrid([0.25, 0.5, 0.75, 1.0], [128, 160, 192, 224])
    w, r = w.ravel(), r.ravel().astype(float)
    coef = np.array([1.0, 8.0, 13.0, -6.0])
    top1 = rule._accuracy_design(w, r) @ coef + noise * np.random.default_rng(seed).standard_normal(len(w))
    return w, r, top1, coef


def test_accuracy_model_recovers_an_exact_law_and_its_loo_error_is_zero():
    w, r, top1, coef = _exact_grid()
    m = rule.fit_accuracy(w, r, top1)
    assert np.allclose(m["coef"], coef)
    assert np.abs(rule.accuracy_leave_one_out(w, r, top1)).max() < 1e-8
    p = rule.predict_accuracy(m, [0.875], [144])
    assert p.in_domain[0] and p.top1[0] == pytest.approx(rule._accuracy_design([0.875], [144]) @ coef)


def test_accuracy_model_loo_error_reflects_noise_and_intervals_cover():
    w, r, top1, _ = _exact_grid(noise=0.5)
    errs = rule.accuracy_leave_one_out(w, r, top1)
    assert 0.2 < np.sqrt(np.mean(errs ** 2)) < 2.0
    m = rule.fit_accuracy(w, r, top1)
    p = rule.predict_accuracy(m, w, r)
    assert (p.top1_low < p.top1).all() and (p.top1 < p.top1_high).all() and (p.top1_se > 0).all()


def test_accuracy_model_refuses_outside_its_domain_and_tiny_grids():
    w, r, top1, _ = _exact_grid()
    m = rule.fit_accuracy(w, r, top1)
    p = rule.predict_accuracy(m, [1.4, 0.5, 0.5], [224, 96, 160])
    assert p.in_domain.tolist() == [False, False, True]
    assert p.top1[:2].isna().all() and np.isfinite(p.top1[2])
    with pytest.raises(ValueError, match="more than 4"):
        rule.fit_accuracy(w[:4], r[:4], top1[:4])


def test_accuracy_model_on_the_published_grid():
    model, loo = rule.published_accuracy_model()
    assert model["points"] == len(reference.mobilenet_v1_published()) == len(loo)
    assert model["loo_rmse"] == pytest.approx(np.sqrt(np.mean(loo["error (points)"] ** 2)))
    assert model["loo_rmse"] < 1.5     # the chosen form interpolates the grid to about a point


# --------------------------------------------------------------------------------------------------
# factorization options
def test_factorization_options_scale_the_entrys_figures_by_layers():
    e = rule.entry_figures()
    measured = pd.DataFrame({"config": ["unfactorized", "last9_r0.25", "last3_r0.5", "last12_r0.25", "greedy"],
                             "latency_ratio": [1.0, 0.85, 1.02, 0.8, 0.9], "ratio_ci_low": [1.0, 0.84, 1.0, 0.79, 0.88],
                             "ratio_ci_high": [1.0, 0.86, 1.04, 0.81, 0.92]})
    opts = rule.factorization_options([0, 3, 9], measured).set_index("option")
    assert opts.loc["unfactorized", "latency_ratio"] == 1 and opts.loc["unfactorized", "relative_loss"] == 0
    assert opts.loc["9 layers, the entry's rank", "latency_ratio"] == pytest.approx(e["latency_ratio"])
    assert opts.loc["9 layers, the entry's rank", "relative_loss"] == pytest.approx(e["relative_loss"])
    assert opts.loc["3 layers, the entry's rank", "relative_loss"] == pytest.approx(e["relative_loss"] / 3)
    assert opts.loc["9 layers, rank fraction 0.25", "latency_ratio"] == 0.85
    assert opts.loc["9 layers, rank fraction 0.25", "ratio_log_se"] > 0
    assert "12 layers, rank fraction 0.25" not in opts.index and "greedy" not in opts.index   # beyond the entry's 9
    with pytest.raises(ValueError, match="between 0 and the entry's"):
        rule.factorization_options([0, 12])


# --------------------------------------------------------------------------------------------------
# the searches
def _space(rows, options=None):
    """A search space from (width, resolution, latency_ms, top1) rows, unfactorized unless ``options``."""
    frame = pd.DataFrame(rows, columns=["width_multiplier", "resolution", "latency_ms", "top1"])
    frame["option"], frame["latency_ratio"] = "unfactorized", 1.0
    frame["config"] = [rule.config_label(w, r) for w, r in zip(frame.width_multiplier, frame.resolution)]
    frame["score"] = rule.challenge_score(frame.top1, frame.latency_ms)
    return frame


# greedy first takes the cheap resolution step (3 points for 25 ms), lands at 35 ms, and must then
# halve the width; the exhaustive search takes the width step alone and stays just under the knee.
TRAP = [(1.0, 224, 60.0, 70.0), (1.0, 160, 35.0, 67.0), (0.5, 224, 29.0, 64.0), (0.5, 160, 15.0, 58.0)]


def test_greedy_is_suboptimal_where_the_exhaustive_search_is_not():
    space = _space(TRAP)
    best = rule.exhaustive(space)
    path, end = rule.greedy(space)
    assert (best.width_multiplier, best.resolution, best.score) == (0.5, 224, 64.0)
    assert path.shrunk.tolist() == ["start", "resolution", "width"]
    assert (end.width_multiplier, end.resolution, end.score) == (0.5, 160, 58.0)
    assert path["top1 lost per ms saved"][1] == pytest.approx(3 / 25)


def test_greedy_stops_at_the_knee_and_can_start_elsewhere():
    space = _space(TRAP)
    path, end = rule.greedy(space, start=(0.5, 224, "unfactorized"))
    assert len(path) == 1 and end.latency_ms == 29.0
    path, end = rule.greedy(space, knee_ms=100.0)
    assert len(path) == 1 and (end.width_multiplier, end.resolution) == (1.0, 224)


def test_greedy_walks_the_factorization_chain_and_skips_slower_options():
    rows = []
    for opt, ratio, keep in (("unfactorized", 1.0, 1.0), ("slow", 1.2, 0.99), ("fast", 0.8, 0.99)):
        s = _space([(1.0, 224, 40.0 * ratio, 70.0 * keep)])
        rows.append(s.assign(option=opt, latency_ratio=ratio))
    space = pd.concat(rows, ignore_index=True)
    space["score"] = rule.challenge_score(space.top1, space.latency_ms)
    path, end = rule.greedy(space)
    assert path.shrunk.tolist() == ["start", "factorization"] and end.option == "fast"


def test_outside_a_domain_is_never_scored_or_stepped_to():
    space = _space(TRAP)
    space.loc[2, "latency_ms"] = np.nan            # 0.5 @224 outside the projection's domain
    space["score"] = rule.challenge_score(space.top1, space.latency_ms)
    assert len(rule.valid(space)) == 3
    best = rule.exhaustive(space)
    assert (best.width_multiplier, best.resolution) == (0.5, 160)
    path, _ = rule.greedy(space)
    assert (0.5, 224) not in set(zip(path.width_multiplier, path.resolution))
    with pytest.raises(ValueError, match="no projected latency or top-1"):
        rule.greedy(space, start=(0.5, 224, "unfactorized"))
    with pytest.raises(ValueError, match="no configuration"):
        rule.exhaustive(space.assign(latency_ms=np.nan))


def test_frontier_drops_dominated_configurations():
    space = _space(TRAP + [(0.75, 192, 40.0, 62.0)])       # slower and less accurate than 0.5 @224
    f = rule.frontier(space)
    assert (0.75, 192) not in set(zip(f.width_multiplier, f.resolution))
    assert f.latency_ms.is_monotonic_increasing and f.top1.is_monotonic_increasing and len(f) == 4


# --------------------------------------------------------------------------------------------------
# latencies: timing jobs, the anchor, the projection's domain
def _bench_grid():
    pub = reference.mobilenet_v1_published()
    pub = pub[pub.width_multiplier.isin([0.5, 1.0])]
    rng = np.random.default_rng(0)
    host = pub.pixel2_quant_ms / 10 * np.exp(rng.normal(0, 0.03, len(pub)))
    return pd.DataFrame({"width_multiplier": pub.width_multiplier, "resolution": pub.resolution, "classes": 1001,
                         "precision": "int8", "file": [f"grid/m_{w:g}_{r}.tflite" for w, r in zip(pub.width_multiplier, pub.resolution)],
                         "macs": pub.mmacs * 1e6, "host_ms": host, "latency_ci_low": host * 0.98,
                         "latency_ci_high": host * 1.02, "pixel2_ms_published": pub.pixel2_quant_ms}).reset_index(drop=True)


def test_timing_jobs_only_for_untimed_configurations(tmp_path):
    g = _bench_grid()
    jobs, anchor = rule.timing_jobs([0.5, 0.75, 1.0], [128, 144], g, tmp_path, seed=0)
    assert sorted((j["width_multiplier"], j["resolution"]) for j in jobs) == [(0.5, 144), (0.75, 128), (0.75, 144), (1.0, 144)]
    assert all(j["precision"] == "int8" and j["classes"] == 1001 and j["path"].startswith(str(tmp_path)) for j in jobs)
    assert anchor.macs in set(g.macs)
    assert rule.timing_jobs([0.5], [128, 160], g, tmp_path, seed=0) == ([], None)


def test_host_latencies_rescale_new_timings_by_the_anchor(tmp_path):
    g = _bench_grid()
    jobs, anchor = rule.timing_jobs([1.0], [144], g, tmp_path, seed=0)
    timed = rule.with_anchor([{**jobs[0], "macs": 235e6}], anchor, tmp_path)
    assert timed.anchor.tolist() == [True, False] and timed.file[0] == str(tmp_path / anchor.file)
    timed = timed.assign(latency_ratio=[1.0, 1.5], ratio_ci_low=[1.0, 1.4], ratio_ci_high=[1.0, 1.6])
    host = rule.host_latencies(g, timed, anchor, [1.0], [128, 144])
    new = host.set_index("resolution").loc[144]
    assert len(host) == 2 and new.host_ms == pytest.approx(1.5 * anchor.host_ms)
    assert new.host_low == pytest.approx(1.4 * anchor.host_ms) and new.timed.startswith("here")


def test_projected_latencies_inside_the_domain_only():
    g = _bench_grid()
    fit = projection.fit_projection(g.host_ms, g.macs, g.pixel2_ms_published, "int8")
    host = pd.DataFrame({"width_multiplier": [1.0, 0.25, 2.0], "resolution": [160, 128, 224],
                         "macs": [291e6, 14e6, 2000e6], "host_ms": [g.host_ms[g.macs == 291e6].iloc[0], 0.4, 300.0]})
    out = rule.project_latencies(host, fit)
    assert out.in_projection_domain.tolist() == [True, False, False]
    p = projection.project(fit, host.host_ms[0], host.macs[0], "int8")
    assert out.pixel2_ms[0] == pytest.approx(p["pixel2_ms"]) and (out.pi_low[0], out.pi_high[0]) == pytest.approx(p["ci95"])
    assert out.pixel2_ms[1:].isna().all() and out.latency_log_se[0] > 0


def test_a_wide_host_timing_widens_the_score_interval():
    g = _bench_grid()
    fit = projection.fit_projection(g.host_ms, g.macs, g.pixel2_ms_published, "int8")
    h = g.host_ms[g.macs == 291e6].iloc[0]
    host = pd.DataFrame({"width_multiplier": [1.0, 1.0], "resolution": [160, 160], "macs": [291e6, 291e6],
                         "host_ms": [h, h], "host_low": [h, h / 1.5], "host_high": [h, h * 1.5]})
    out = rule.project_latencies(host, fit)
    assert out.host_log_se[0] == 0 and out.host_log_se[1] > 0
    sim = rule.simulate(out.rename(columns={"pixel2_ms": "latency_ms"}).assign(top1=67.0), 1.0, 4000, seed=0)
    assert sim.latency_high[1] - sim.latency_low[1] > sim.latency_high[0] - sim.latency_low[0]


def test_search_space_labels_every_number():
    g = _bench_grid()
    fit = projection.fit_projection(g.host_ms, g.macs, g.pixel2_ms_published, "int8")
    host = rule.project_latencies(pd.DataFrame({
        "width_multiplier": [1.0, 1.0, 0.5], "resolution": [160, 144, 128], "macs": [291e6, 235e6, 10e6],
        "host_ms": [g.host_ms[g.macs == 291e6].iloc[0], g.host_ms[g.macs == 291e6].iloc[0] * 0.8, 0.1]}), fit)
    model, _ = rule.published_accuracy_model()
    opts = rule.factorization_options([0, 9])
    space = rule.search_space([1.0, 0.5], [160, 144, 128], host, opts, model)
    plain = space[space.option == "unfactorized"].set_index("config")
    assert plain.loc["1.0 @160", "top1_source"] == "published" and plain.loc["1.0 @160", "latency_source"] == "projected"
    assert plain.loc["1.0 @144", "top1_source"] == "interpolated" and plain.loc["1.0 @144", "top1_se"] > 0
    assert plain.loc["0.5 @128", "latency_source"] == "outside the projection's domain"
    assert np.isnan(plain.loc["0.5 @128", "score"])
    assert plain.loc["0.5 @160", "latency_source"] == "not timed"
    f = space[space.option == "9 layers, the entry's rank"].set_index("config").loc["1.0 @160, 9 layers, the entry's rank"]
    e = rule.entry_figures()
    assert f.top1 == pytest.approx(plain.loc["1.0 @160", "top1"] * (1 - e["relative_loss"]))
    assert f.latency_ms == pytest.approx(plain.loc["1.0 @160", "latency_ms"] * e["latency_ratio"])
    assert "outside" in rule.describe_outside(space)


# --------------------------------------------------------------------------------------------------
# the verdict
@pytest.mark.parametrize("top1, latency, verdict", [(70.0, 20.0, REPRODUCED), (40.0, 20.0, NOT_REPRODUCED),
                                                    (63.59, 36.0, INCONCLUSIVE)])
def test_search_claim_reads_the_interval(top1, latency, verdict):
    row = pd.Series({"top1": top1, "latency_ms": latency, "width_multiplier": 1.0, "resolution": 128,
                     "top1_source": "published", "latency_source": "projected"})
    claim = rule.search_claim(row, rule.benchmark_spread()["ratio"], draws=2000, seed=0)
    assert claim.verdict == verdict and claim.id == rule.CLAIM_ID
    assert claim.interval[0] <= claim.estimate <= claim.interval[1]
    assert claim.as_dict()["interval"] == [claim.interval[0], claim.interval[1]]

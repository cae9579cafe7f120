import pytest

from conftest import colour_model, convert_tiny
from lpirc import bench


def test_interleaved_latency_records(tmp_path):
    a = convert_tiny(colour_model(16, 3, False), "float32", tmp_path / "a.tflite")
    b = convert_tiny(colour_model(64, 3, False), "int8", tmp_path / "b.tflite")
    recs = bench.interleaved([a, b], runs=15, warmup=2)
    assert [r["runs"] for r in recs] == [15, 15]
    for r in recs:
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
        assert r["num_threads"] == 1
    assert recs[0]["ratio_to_first"] == 1.0
    lo, hi = recs[1]["ratio_ci95"]
    assert lo <= recs[1]["ratio_to_first"] <= hi


def test_runs_must_be_positive(tmp_path):
    a = convert_tiny(colour_model(16, 3, False), "float32", tmp_path / "a.tflite")
    with pytest.raises(ValueError, match="runs must be >= 1"):
        bench.interleaved([a], runs=0)


def test_session_ratio_uses_the_session_as_unit():
    est, lo, hi = bench.session_ratio([0.70, 0.80, 0.75, 0.72, 0.78])
    assert lo < est < hi and 0.70 < est < 0.80
    # the spread between sessions, not the number of rounds in each, sets the width
    _, lo2, hi2 = bench.session_ratio([0.749, 0.751, 0.750, 0.752, 0.748])
    assert hi2 - lo2 < (hi - lo) / 10
    assert bench.session_ratio([0.75])[1] != bench.session_ratio([0.75])[1]      # one session: NaN interval


def test_timing_table_in_sessions(tmp_path):
    a = convert_tiny(colour_model(16, 3, False), "float32", tmp_path / "a.tflite")
    b = convert_tiny(colour_model(64, 3, False), "float32", tmp_path / "b.tflite")
    table = bench.timing_table({"a": a, "b": b, "a again": a}, runs=12, warmup=2, count=3).set_index("config")
    assert (table.sessions == 3).all() and (table.runs == 12).all()
    assert len(table.session_ratios["b"]) == 3
    assert table.ratio_ci_low["b"] <= table.latency_ratio["b"] <= table.ratio_ci_high["b"]
    assert table.latency_ratio["a"] == 1.0

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

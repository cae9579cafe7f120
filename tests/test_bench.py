import subprocess
import sys

import pandas as pd
import pytest

from conftest import colour_model, convert_tiny
from lpirc import bench, projection, stats


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
    est, lo, hi = stats.session_ratio([0.70, 0.80, 0.75, 0.72, 0.78])
    assert lo < est < hi and 0.70 < est < 0.80
    # the spread between sessions, not the number of rounds in each, sets the width
    _, lo2, hi2 = stats.session_ratio([0.749, 0.751, 0.750, 0.752, 0.748])
    assert hi2 - lo2 < (hi - lo) / 10
    assert stats.session_ratio([0.75])[1] != stats.session_ratio([0.75])[1]      # one session: NaN interval


def test_timing_table_in_sessions(tmp_path):
    a = convert_tiny(colour_model(16, 3, False), "float32", tmp_path / "a.tflite")
    b = convert_tiny(colour_model(64, 3, False), "float32", tmp_path / "b.tflite")
    table = bench.timing_table({"a": a, "b": b, "a again": a}, runs=12, warmup=2, count=3).set_index("config")
    assert (table.sessions == 3).all() and (table.runs == 12).all()
    assert len(table.session_ratios["b"]) == 3
    assert table.ratio_ci_low["b"] <= table.latency_ratio["b"] <= table.ratio_ci_high["b"]
    assert table.latency_ratio["a"] == 1.0


def test_pair_ratio_divides_the_sessions_ratios_to_the_first_file():
    """Two files' ratio read off one table: session by session, a/b = (a/first) / (b/first)."""
    table = pd.DataFrame({"file": ["first", "a", "b"],
                          "session_ratios": ["[1, 1, 1]", "[0.60, 0.66, 0.63]", "[0.80, 0.88, 0.84]"]})
    est, lo, hi = bench.pair_ratio(table, "a", "b")
    assert est == pytest.approx(0.75) and lo == pytest.approx(0.75) and hi == pytest.approx(0.75)
    est, lo, hi = bench.pair_ratio(table, "a", "first")
    assert lo < est < hi and est == pytest.approx(stats.session_ratio([0.60, 0.66, 0.63])[0])


def test_ratio_transfer_adds_the_transfer_error():
    grid = pd.DataFrame({"precision": ["int8"] * 4, "host_ms": [1.0, 1.4, 2.0, 3.0],
                         "pixel2_ms_published": [10.0, 15.0, 19.0, 33.0]})
    t = projection.transfer_error(grid)
    # pairs with a host ratio in [0.5, 1): 1/1.4, 1/2, 1.4/2, 2/3, 1.4/3 is below 0.5 and left out
    assert t["pairs"] == 4 and t["sd_log"] > 0
    plain = projection.ratio_transfer(30.0, 0.8, (0.78, 0.82))
    wide = projection.ratio_transfer(30.0, 0.8, (0.78, 0.82), t["sd_log"])
    assert plain["ci95"] == pytest.approx((23.4, 24.6))
    assert wide["pixel2_ms"] == plain["pixel2_ms"] == pytest.approx(24.0)
    assert wide["ci95"][0] < plain["ci95"][0] and wide["ci95"][1] > plain["ci95"][1]


def test_a_timing_session_imports_only_litert_and_numpy(tmp_path, monkeypatch):
    """bench.sessions runs each timing session in a fresh process, which runs tflite.timed_rounds: what
    that process imports to do so is paid once a session (a timing table has five), and it is not pandas,
    scipy or TensorFlow."""
    from lpirc import tflite

    a = convert_tiny(colour_model(16, 3, False), "float32", tmp_path / "a.tflite")
    code = ("import sys; from lpirc.tflite import timed_rounds; t = timed_rounds([sys.argv[1]], runs=3, warmup=1); "
            "print(len(t[0]), sorted(m for m in ('pandas', 'scipy', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(a)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "[]"]

    submitted = []

    class Inline:                          # a process pool that records what it is given and runs it here
        def __init__(self, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args, **kwargs):
            from concurrent.futures import Future

            submitted.append(fn)
            done = Future()
            done.set_result(fn(*args, **kwargs))
            return done

    monkeypatch.setattr(bench, "ProcessPoolExecutor", Inline)
    assert len(bench.sessions([a], runs=6, warmup=1, count=2)) == 2
    assert submitted == [tflite.timed_rounds] * 2

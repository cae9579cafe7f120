"""The summary's one ratio per pair of files: the chapters' stated ratios checked against the benchmark's
table (lpirc.summary.ratio_consistency), on small tables written here. No TensorFlow, no pipeline."""
import json

import pandas as pd
import pytest

from lpirc import bench, summary


def write(path, frame):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@pytest.fixture
def results(tmp_path):
    """A chapter table (reference file first) and the benchmark's table for the same files: sessions'
    ratios to the first file of each input-size group."""
    write(tmp_path / "factorization" / "tables" / "challenge_architecture.csv", pd.DataFrame({
        "config": ["unfactorized", "last9_r0.5", "last9_r0.25"],
        "file": ["models/arch/u.tflite", "models/arch/h.tflite", "models/arch/q.tflite"],
        "latency_ratio": [1.0, 0.95, 0.80], "ratio_ci_low": [1.0, 0.93, 0.78], "ratio_ci_high": [1.0, 0.97, 0.82]}))
    # a table with ratio columns merged in beside files they were not measured on: not a stated pair
    write(tmp_path / "factorization" / "tables" / "selection_comparison.csv", pd.DataFrame({
        "config": ["a", "b"], "file": ["models/s.tflite", "models/t.tflite"], "latency_ratio": [1.0, 0.5],
        "ratio_ci_low": [1.0, 0.4], "ratio_ci_high": [1.0, 0.6]}))
    write(tmp_path / "benchmark" / "tables" / "latency.csv", pd.DataFrame({
        "file": ["quantization/models/s.tflite", "factorization/models/arch/u.tflite",
                 "factorization/models/arch/h.tflite", "factorization/models/arch/q.tflite"],
        "group": ["32x32", "160x160", "160x160", "160x160"],
        "session_ratios": [json.dumps([1.0] * 3), json.dumps([1.0] * 3), json.dumps([0.95, 0.96, 0.94]),
                           json.dumps([0.90, 0.91, 0.89])]}))
    return tmp_path


def test_every_stated_ratio_is_checked_against_the_benchmarks(results):
    table = summary.ratio_consistency(results)
    assert list(table.file) == ["factorization/models/arch/h.tflite", "factorization/models/arch/q.tflite"]
    assert set(table.reference) == {"factorization/models/arch/u.tflite"}
    h, q = table.itertuples()
    assert h.inside and h.agree and h.benchmark_ratio == pytest.approx(0.95, abs=1e-3)
    assert not q.inside and not q.agree and q.chapter_ratio < q.benchmark_low     # 0.80 against 0.90 [0.875, 0.925]
    text = summary.consistency_sentence(table)
    assert "**1**" in text and "q.tflite" in text and "the benchmark's ratio" in text


def test_no_stated_ratio_gives_an_empty_table_with_its_columns(tmp_path):
    write(tmp_path / "benchmark" / "tables" / "latency.csv", pd.DataFrame({"file": ["x"], "session_ratios": ["[1]"]}))
    table = summary.ratio_consistency(tmp_path)
    assert table.empty and "inside" in table.columns and "agree" in table.columns


def test_a_pair_from_two_timing_groups_has_no_ratio(results):
    latency = pd.read_csv(results / "benchmark" / "tables" / "latency.csv")
    with pytest.raises(ValueError, match="different groups"):
        bench.pair_ratio(latency, "quantization/models/s.tflite", "factorization/models/arch/u.tflite")

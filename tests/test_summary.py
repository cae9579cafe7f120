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
    with pytest.raises(ValueError, match="never timed together"):
        bench.pair_ratio(latency, "quantization/models/s.tflite", "factorization/models/arch/u.tflite")


def test_a_pair_timed_in_two_groups_reads_the_first_or_the_one_asked_for():
    table = pd.DataFrame({"file": ["u", "a", "u", "a"], "group": ["one", "one", "two", "two"],
                          "session_ratios": ["[1, 1]", "[0.5, 0.5]", "[1, 1]", "[0.8, 0.8]"]})
    assert bench.pair_ratio(table, "a", "u")[0] == pytest.approx(0.5)
    assert bench.pair_ratio(table, "a", "u", group="two")[0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="group 'three'"):
        bench.pair_ratio(table, "a", "u", group="three")


def test_the_benchmark_collects_the_chapters_timings_so_each_stated_ratio_is_the_tables_own(tmp_path):
    """A chapter's timing table (files relative to its folder, a file of another step as ../step/...) becomes
    rows of the book's table with its sessions; the ratio the summary then reads is the one the chapter stated."""
    write(tmp_path / "stacked" / "tables" / "timing.csv", pd.DataFrame({
        "stage": ["start", "float", "stacked", "plain baseline"],
        "file": ["models/start.tflite", None, "models/stacked.tflite", "../quantization/models/s.tflite"],
        "latency_ms": [0.05, None, 0.04, 0.06], "latency_ratio": [1.0, None, 0.8, 1.2],
        "ratio_ci_low": [1.0, None, 0.78, 1.1], "ratio_ci_high": [1.0, None, 0.82, 1.3], "sessions": [3, None, 3, 3],
        "session_ratios": ["[1, 1, 1]", None, "[0.79, 0.80, 0.81]", "[1.1, 1.2, 1.3]"]}))
    files = [tmp_path / "stacked" / "models" / "start.tflite", tmp_path / "stacked" / "models" / "stacked.tflite",
             tmp_path / "quantization" / "models" / "s.tflite"]
    table = bench.book_timing_table(tmp_path, files, runs=3)     # every file timed in a chapter: nothing to time here
    assert list(table.file) == ["stacked/models/start.tflite", "stacked/models/stacked.tflite", "quantization/models/s.tflite"]
    assert set(table.group) == {"stacked: timing"} and list(table.columns) == bench.TIMING_COLUMNS
    write(tmp_path / "benchmark" / "tables" / "latency.csv", table)
    check = summary.ratio_consistency(tmp_path)
    assert list(check.file) == ["stacked/models/stacked.tflite", "quantization/models/s.tflite"]
    assert check.inside.all() and (check.chapter_ratio - check.benchmark_ratio).abs().max() < 0.01
    ratio, _, _ = bench.pair_ratio(table, "stacked/models/stacked.tflite", "quantization/models/s.tflite")
    assert ratio == pytest.approx(0.8 / 1.2, rel=0.01)


def test_a_row_a_chapter_copied_from_another_chapters_table_is_one_timing(tmp_path):
    sessions = "[1.0, 1.0]", "[0.9, 0.8]"
    write(tmp_path / "factorization" / "tables" / "challenge_architecture.csv", pd.DataFrame({
        "file": ["models/arch/u.tflite", "models/arch/q.tflite"], "session_ratios": sessions}))
    write(tmp_path / "stacked" / "tables" / "challenge_architecture.csv", pd.DataFrame({
        "file": ["../factorization/models/arch/u.tflite", "../factorization/models/arch/q.tflite"], "session_ratios": sessions}))
    table = bench.chapter_timings(tmp_path)
    assert list(table.file) == ["factorization/models/arch/u.tflite", "factorization/models/arch/q.tflite"]
    assert set(table.group) == {"factorization: challenge_architecture"}

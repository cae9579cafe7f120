"""The pipeline end to end on the smoke profile, in a throwaway copy of the project, then the book.

One run per session feeds several tests: results layout, run.json, caching, the clean -W build.
"""
import html as htmllib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lpirc.paths import project_root
from lpirc.runner import config, steps
from lpirc.results import read_json
from conftest import FAKE_CPU

pytestmark = pytest.mark.slow


def test_every_step_wrote_results_and_run_json(smoke_run):
    dst, results, proc = smoke_run
    for step in steps.STEPS:
        folder = results / step.name
        assert (folder / step.notebook).exists() and (folder / "metrics.json").exists()
        assert (folder / "stamp.json").exists()
        assert "=== [" in proc.stdout          # step banners were shown
    run = read_json(results / "run.json")
    assert run["profile"] == "smoke"
    assert set(run["steps"]) == {s.name for s in steps.STEPS}
    assert all(r["status"] == "ok" and r["wall_s"] > 0 for r in run["steps"].values())
    assert run["packages"]["tensorflow"] and run["host"]["cpu"]["model"]
    assert run["parameters"]["data"]["train_size"] == 600
    assert "commit" in run["git"] and "dirty" in run["git"]
    assert not (results / ".staging").exists()


def test_quantization_results_schema(smoke_run):
    _, results, _ = smoke_run
    m = read_json(results / "quantization" / "metrics.json")
    variants = pd.read_csv(results / "quantization" / m["variants_table"]).set_index("key")
    assert set(variants.index) == {"keras", "qat_keras", "float32", "dynamic_range", "int8_ptq", "int8_qat"}
    files = variants.dropna(subset=["file"])
    assert set(files.index) == {"float32", "dynamic_range", "int8_ptq", "int8_qat"}
    for key, v in files.iterrows():
        assert (results / "quantization" / v.file).exists()
        assert 0 <= v.val_top1 <= 1 and v.latency_ms > 0 and v.latency_ci_low <= v.latency_ms <= v.latency_ci_high


def test_unchanged_rerun_skips_everything(smoke_alone):
    dst, results, _ = smoke_alone
    env = {**os.environ, "LPIRC_ROOT": str(dst)}
    proc = subprocess.run([sys.executable, "-m", "lpirc", "status", "--profile", "smoke"], cwd=dst, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert all(" fresh" in line for line in proc.stdout.strip().splitlines()), proc.stdout


def test_clean_book_build_with_warnings_as_errors(smoke_book, smoke_run):
    html_root, dst = smoke_book
    # Sphinx escapes '@' as '&#64;' and '<' as '&lt;': compare the rendered text, not the markup
    html = htmllib.unescape((html_root / "book" / "index.html").read_text())
    run = read_json(smoke_run[1] / "run.json")                 # the provenance block comes from run.json
    assert run["host"]["cpu"]["model"] == FAKE_CPU
    assert FAKE_CPU in html and "smoke" in html
    chapter = (html_root / "book" / "executed" / "10_quantization.html").read_text()
    assert "int8 PTQ" in chapter and "Traceback" not in chapter


def test_same_profile_twice_gives_identical_data_and_metrics(smoke_run, smoke_twice):
    """Determinism: rerunning data and baseline (forced), in a copy of the smoke run's project made before
    anything else touched it (tests/smoke_followers.py), reproduces the arrays and the accuracies."""
    _, results, _ = smoke_run
    before_data = read_json(results / "data" / "dataset.json")["splits"]
    before = read_json(results / "baseline" / "metrics.json")
    again = Path(smoke_twice["results"])
    assert len(smoke_twice["forced"]) == 2, smoke_twice["forced"]          # both steps ran, forced
    assert read_json(again / "data" / "dataset.json")["splits"] == before_data
    after = read_json(again / "baseline" / "metrics.json")
    for key in ("val_top1", "holdout_top1", "val_top5"):
        assert after["student"][key] == before["student"][key]
    for name in before["teachers"]:
        assert after["teachers"][name]["val_top1"] == before["teachers"][name]["val_top1"]


def test_one_absolute_latency_per_file(smoke_run, smoke_book):
    """Absolute host latencies come from the benchmark step's one table: the chapters show ratios only,
    and the summary's student latencies are that table's numbers. Pixel 2 latencies are published or
    projected by ratio transfer, each with an interval."""
    import re

    _, results, _ = smoke_run
    html_root, _ = smoke_book
    for chapter in ("10_quantization", "20_factorization", "60_stacked", "90_summary"):
        heads = re.findall(r"<th[^>]*>(.*?)</th>", (html_root / "book" / "executed" / f"{chapter}.html").read_text(), re.S)
        host = [h for h in heads if re.search(r"latency \((µs|ms)", h) and "Pixel 2" not in h and "benchmark" not in h]
        assert not host, f"{chapter} shows absolute host latencies: {host}"
    table = pd.read_csv(results / "benchmark" / "tables" / "latency.csv")
    assert not table.duplicated(["file", "group"]).any() and (table.latency_ms > 0).all()
    latency = table.drop_duplicates("file").set_index("file")      # a file timed in two tables: the first
    summary = pd.read_csv(results / "summary" / "tables" / "summary.csv")
    stacked_file = "stacked/" + read_json(results / "stacked" / "metrics.json")["file"]
    row = summary[summary.model.str.startswith("stacked")].iloc[0]
    assert row.student_host_us == pytest.approx(1000 * latency.latency_ms[stacked_file])
    assert row.student_timed_in == latency.group[stacked_file] == "stacked: timing"
    assert set(summary.pixel2_method) <= {"published", "ratio transfer"}
    assert (summary.pixel2_ci_low <= summary.pixel2_ms).all() and (summary.pixel2_ms <= summary.pixel2_ci_high).all()
    assert (summary.score_ci_low <= summary.score).all() and (summary.score <= summary.score_ci_high).all()


def test_no_operator_beats_the_measured_peak(smoke_run):
    _, results, _ = smoke_run
    m = read_json(results / "benchmark" / "metrics.json")
    ops = pd.read_csv(results / "benchmark" / "tables" / "per_layer.csv")
    assert m["per_layer"]["resolved"] >= 1 and ops.resolved.sum() == m["per_layer"]["resolved"]
    assert (ops.efficiency.dropna() <= 1).all(), ops[ops.efficiency > 1]
    for p in ("int8", "float32"):
        assert m["peak"][p]["gmacs_per_s"] > 0 and m["peak"][p]["method"].startswith("measured")


def test_every_chapter_reads_well(smoke_book):
    """In the built book: every figure has a caption and alt text that says what it shows, no raw Python
    repr is on any page, every chapter has its takeaway and at least two exercises, and no solution
    states in typed text a number the page does not show or a measured ratio's side of 1."""
    import json

    from bookcheck import figure_problems, leaked_values, raw_reprs, solution_problems

    html_root, dst = smoke_book
    pages = sorted((html_root / "book").rglob("*.html"))
    chapters = [p for p in pages if p.parent.name == "executed"]
    assert len(chapters) == len(steps.STEPS)
    problems = {}
    for page in pages:
        html = page.read_text()
        found = figure_problems(html) + [f"raw repr: {r}" for r in raw_reprs(html)]
        if page in chapters:
            found += solution_problems(html)
            if 'id="what-to-take-away"' not in html:
                found.append("no 'What to take away' section")
            if html.count('class="exercise') < 2:
                found.append("fewer than two exercises")
        if found:
            problems[page.name] = found
    for step in steps.STEPS:
        if leaked := leaked_values(json.loads((dst / "book" / "executed" / step.notebook).read_text())):
            problems[step.notebook] = leaked
    assert not problems, problems

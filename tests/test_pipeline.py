"""The pipeline end to end on the smoke profile, in a throwaway copy of the project, then the book.

One module-scoped run feeds several tests: results layout, run.json, caching, the clean -W build.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from lpirc import book, pipeline
from lpirc.results import read_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, root):
    from conftest import ROOT

    dst = tmp_path_factory.mktemp("smoke") / "project"
    dst.mkdir()
    for name in ("_config.yml", "_toc.yml", "references.bib", "pyproject.toml"):
        shutil.copy(ROOT / name, dst / name)
    for folder in ("book", "notebooks", "params", "src", "reference", "data_manifest"):
        shutil.copytree(ROOT / folder, dst / folder,
                        ignore=shutil.ignore_patterns("executed", "_generated", "__pycache__"))
    env = {**os.environ, "LPIRC_ROOT": str(dst)}
    env.pop("LPIRC_RESULTS_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "lpirc", "run", "--profile", "smoke"], cwd=dst, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dst, dst / "results" / "smoke", proc


def test_every_step_wrote_results_and_run_json(smoke_run):
    dst, results, proc = smoke_run
    for step in pipeline.STEPS:
        folder = results / step.name
        assert (folder / step.notebook).exists() and (folder / "metrics.json").exists()
        assert (folder / "stamp.json").exists()
        assert "=== [" in proc.stdout          # step banners were shown
    run = read_json(results / "run.json")
    assert run["profile"] == "smoke"
    assert set(run["steps"]) == {s.name for s in pipeline.STEPS}
    assert all(r["status"] == "ok" and r["wall_s"] > 0 for r in run["steps"].values())
    assert run["packages"]["tensorflow"] and run["host"]["cpu"]["model"]
    assert run["parameters"]["data"]["train_size"] == 600
    assert "commit" in run["git"] and "dirty" in run["git"]
    assert not (results / ".staging").exists()


def test_quantization_results_schema(smoke_run):
    _, results, _ = smoke_run
    m = read_json(results / "quantization" / "metrics.json")
    assert set(m["variants"]) == {"float32", "dynamic_range", "int8_ptq", "int8_qat"}
    for v in m["variants"].values():
        assert (results / "quantization" / v["file"]).exists()
        assert 0 <= v["val_top1"] <= 1 and v["latency"]["median_ms"] > 0
    assert (results / "quantization" / "variants.csv").exists()


def test_unchanged_rerun_skips_everything(smoke_run):
    dst, results, _ = smoke_run
    env = {**os.environ, "LPIRC_ROOT": str(dst)}
    proc = subprocess.run([sys.executable, "-m", "lpirc", "status", "--profile", "smoke"], cwd=dst, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert all(" fresh" in line for line in proc.stdout.strip().splitlines()), proc.stdout


def test_clean_book_build_with_warnings_as_errors(smoke_run):
    dst, results, _ = smoke_run
    index = book.build("smoke", root=dst, results=results)
    html = index.read_text()
    assert "AMD" in html or "Intel" in html or "CPU" in html     # provenance block from run.json
    chapter = (dst / "_build" / "html" / "book" / "executed" / "10_quantization.html").read_text()
    assert "int8 PTQ" in chapter and "Traceback" not in chapter

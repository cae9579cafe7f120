"""The imagenet profile end to end, at tiny budgets, on ILSVRC-format folders the tests make (class
folders for train, a flat val folder with val.txt, an unlabeled pool, JPEGs of several sizes); the
student and a teacher start from float MobileNet v1 .tflite files imported by the builder, and a larger
teacher is a .tflite used as it is. The run, and the memory measurements below, are
``tests/imagenet_e2e.py``, started in the background when the session begins (``conftest.py``); the two
tests wait for it and check what it wrote, each its own part.

Memory: the steps whose inputs grow with the images (data, baseline, distillation) stream them, so on
10 N images the functions they run (the same calls, in one process per size) must stay within 20% of
their peak on N. Measured on a 2-core Intel Xeon: streamed, each step's peak on 10 N was within 3% of
its peak on N (726 / 987 / 1,031 MB on N, 726 / 1,003 / 1,062 MB on 10 N, December 2026); with the
splits decoded into memory instead, as the old in-memory path held them, the baseline's peak went from
1,058 MB on N to 2,201 MB on 10 N and the distillation's from 1,230 to 2,802 MB."""
from __future__ import annotations

import json

import numpy as np
import pytest
from imagenet_e2e import GROWING

from lpirc import models, weights
from lpirc.runner.steps import STEPS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def e2e(request):
    """The background script's folder, once it has finished (tests/imagenet_e2e.py)."""
    started = getattr(request.config, "imagenet_e2e", None)
    if started is None:
        pytest.fail("the imagenet end-to-end run was not started (conftest.pytest_collection_finish)")
    proc, out = started
    assert proc.wait(timeout=3600) == 0, (out / "script.log").read_text()[-4000:]
    return out


def finished(out, name: str) -> dict:
    """What the background script recorded of ``name`` ("N": the run; "memory": {size: run}), each run
    checked to have succeeded."""
    rec = json.loads((out / "done.json").read_text())[name]
    for size, run in ({"": rec} if name == "N" else rec).items():
        assert run["returncode"] == 0, f"{name} {size}: {run['output_tail']}"
    return rec


def results(out, name):
    res = out / name / "project" / "results" / "imagenet_tiny"
    return res, json.loads((res / "run.json").read_text())


def test_every_step_runs_on_streamed_folders(e2e):
    finished(e2e, "N")
    res, run = results(e2e, "N")
    assert [s for s, r in run["steps"].items() if r["status"] == "ok"] == [s.name for s in STEPS]
    record = json.loads((res / "data" / "dataset.json").read_text())
    assert record["storage"] == "streamed" and record["preprocess"] == "inception"
    assert {s: v["n"] for s, v in record["splits"].items()} == {"train": 90, "val": 30, "holdout": 30, "extra": 30}
    assert not any((res / "data").glob("*_x.npy"))          # nothing decoded into arrays
    teachers = json.loads((res / "baseline" / "metrics.json").read_text())["teachers"]
    frozen, tuned = teachers["mobilenet_0.75_frozen"], teachers["mobilenet_0.5_pretrained"]
    assert frozen["epochs"] == 0 and frozen["MMACs"] > tuned["MMACs"]
    assert (res / "baseline" / "models" / "mobilenet_0.75_frozen.tflite").exists()
    # The student started from the imported .tflite: one short epoch at lr 1e-4 leaves its weights
    # close to the file's, far from a fresh initialisation.
    trained = models.load_model(res / "baseline" / "models" / "student.keras")
    imported = weights.import_tflite(e2e / "weights" / "mobilenet_v1_0.25_160.tflite")
    a, b = trained.get_layer("conv_pw_5").get_weights()[0], imported.get_layer("conv_pw_5").get_weights()[0]
    assert np.linalg.norm(a - b) < 0.05 * np.linalg.norm(b)
    claims = json.loads((res / "summary" / "claims.json").read_text())
    # One teacher per chapter here, so no lighter-teacher claim: six of the seven.
    assert len(claims) >= 6 and all(c["verdict"] in ("reproduced", "not reproduced", "inconclusive") for c in claims)
    assert all("commit" in r for r in run["steps"].values())     # per step: steps may run at different commits


# --------------------------------------------------------------------------------------------------
# memory against the number of images, on the streaming functions of the steps whose inputs grow: measured
# by the background script beside the end-to-end run (imagenet_e2e.STREAMING_STEPS), checked here
def test_peak_memory_does_not_grow_with_the_images(e2e):
    runs = finished(e2e, "memory")                      # N and 10 N: {images, peak_mb}
    images = {name: run["images"] for name, run in runs.items()}
    peak = {name: {s: round(run["peak_mb"][s]) for s in GROWING} for name, run in runs.items()}
    print(json.dumps({"images": images, "peak_memory_mb": peak}))
    assert images["N"] == {"train": 90, "val": 30, "holdout": 30, "extra": 30}
    assert all(images["10N"][s] == 10 * images["N"][s] for s in images["N"])
    for step in GROWING:
        assert peak["10N"][step] < 1.2 * peak["N"][step], step

"""The imagenet profile end to end, at tiny budgets, on ILSVRC-format folders the tests make (class
folders for train, a flat val folder with val.txt, an unlabeled pool, JPEGs of several sizes); the
student and a teacher start from float MobileNet v1 .tflite files imported by the builder, and a larger
teacher is a .tflite used as it is. The runs are ``tests/imagenet_e2e.py``, started in the background
when the session begins (``conftest.py``); these tests wait for them and check what they wrote.

Memory: the runner records each step's peak memory (its kernel and every process it starts) in
run.json. On 10 N images the steps whose inputs grow must stay within 20% of their peak on N. At
160 px the old in-memory splits would have added, by estimate, about 700 MB to the baseline step on 10 N
(1,500 images at 77 KB of uint8, 900 of them also as 307 KB of floats for training and again as Keras'
tensor of those), against the 20% (about 400 MB) allowed."""
from __future__ import annotations

import json

import numpy as np
import pytest
from imagenet_e2e import GROWING

from lpirc import models, weights
from lpirc.runner.steps import STEPS


@pytest.fixture(scope="module")
def e2e(request):
    """The background runs' folder, once both have finished."""
    started = getattr(request.config, "imagenet_e2e", None)
    if started is None:
        pytest.fail("the imagenet end-to-end runs were not started (conftest.pytest_collection_finish)")
    proc, out = started
    assert proc.wait(timeout=3600) == 0, (out / "script.log").read_text()[-4000:]
    done = json.loads((out / "done.json").read_text())
    for name, rec in done.items():
        assert rec["returncode"] == 0, f"{name}: {rec['output_tail']}"
    return out


def results(out, name):
    res = out / name / "project" / "results" / "imagenet_tiny"
    return res, json.loads((res / "run.json").read_text())


def test_every_step_runs_on_streamed_folders(e2e):
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


def test_peak_memory_does_not_grow_with_the_images(e2e):
    runs = {name: results(e2e, name) for name in ("N", "10N")}
    images = {name: {s: v["n"] for s, v in json.loads((res / "data" / "dataset.json").read_text())["splits"].items()}
              for name, (res, _) in runs.items()}
    peak = {name: {s: round(run["steps"][s]["peak_memory_mb"]) for s in GROWING} for name, (_, run) in runs.items()}
    print(json.dumps({"images": images, "peak_memory_mb": peak}))
    assert all(images["10N"][s] == 10 * images["N"][s] for s in images["N"])
    for step in GROWING:
        assert peak["10N"][step] < 1.2 * peak["N"][step], step

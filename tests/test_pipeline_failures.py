"""Failures never lose results: a failing step, an interrupted step, bad inputs before any work.

The runner's contract holds whatever a step computes: the steps run here are the toy data step of
conftest.py (the real parameters, no TensorFlow), so each run takes seconds."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lpirc.paths import project_root
from lpirc.runner import config, steps
from lpirc.runner.params import ParameterError
from lpirc.results import read_json



def run_cli(project, *args, timeout=300):
    env = {**os.environ, "LPIRC_ROOT": str(project)}
    return subprocess.run([sys.executable, "-m", "lpirc", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


def inject_failure(notebook):
    nb = json.loads(notebook.read_text())
    # after the cell that generates the data: the step has written files into its staging folder
    idx = next(i for i, c in enumerate(nb["cells"]) if "make_dataset" in "".join(c["source"]))
    nb["cells"].insert(idx + 1, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                                 "source": "raise RuntimeError('injected failure')"})
    notebook.write_text(json.dumps(nb))


# The toy step's runs go through the whole runner (a kernel each): pipeline runs, so the slow tier.
@pytest.mark.slow
def test_failing_step_keeps_previous_results_and_names_notebook(toy_copy):
    project_copy = toy_copy
    first = run_cli(project_copy, "run", "--profile", "smoke", "--only", "data")
    assert first.returncode == 0, first.stderr
    results = project_copy / "results" / "smoke"
    before = (results / "data" / "stamp.json").read_text()
    digests = read_json(results / "data" / "dataset.json")["splits"]

    inject_failure(project_copy / "notebooks" / "00_data.ipynb")
    r = run_cli(project_copy, "run", "--profile", "smoke", "--only", "data", "--set", "data.train_size=700")
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert "step 'data' failed: RuntimeError: injected failure" in line
    failed = results / "data.failed.ipynb"
    assert str(failed) in line and failed.exists()
    assert "injected failure" in failed.read_text()          # the traceback is in the notebook
    # previous results untouched, nothing half-written left behind
    assert (results / "data" / "stamp.json").read_text() == before
    assert read_json(results / "data" / "dataset.json")["splits"] == digests
    assert not list((results / ".staging").glob("data*"))
    assert read_json(results / "run.json")["steps"]["data"]["status"] == "failed"


@pytest.mark.slow
def test_interrupted_step_keeps_previous_results_and_resumes(toy_copy):
    project_copy = toy_copy
    first = run_cli(project_copy, "run", "--profile", "smoke", "--only", "data")
    assert first.returncode == 0, first.stderr
    results = project_copy / "results" / "smoke"
    before = (results / "data" / "stamp.json").read_text()
    env = {**os.environ, "LPIRC_ROOT": str(project_copy)}
    proc = subprocess.Popen([sys.executable, "-m", "lpirc", "run", "--profile", "smoke", "--only", "data",
                             "--set", "data.train_size=5000"], cwd=project_copy, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    staging = results / ".staging" / f"data.{proc.pid}"
    deadline = time.time() + 120
    while not (staging / "train_x.npy").exists() and time.time() < deadline:   # mid-step, files being written
        time.sleep(0.2)
    assert staging.exists(), "the step never started"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert (results / "data" / "stamp.json").read_text() == before
    status = run_cli(project_copy, "status", "--profile", "smoke")
    assert "data" in status.stdout and "fresh" in status.stdout.splitlines()[0]
    # the next run with the interrupted parameters starts that step again and completes
    again = run_cli(project_copy, "run", "--profile", "smoke", "--only", "data", "--set", "data.train_size=800")
    assert again.returncode == 0, again.stderr
    assert read_json(results / "data" / "dataset.json")["splits"]["train"]["n"] == 800
    assert not (results / ".staging").exists()


def test_missing_real_data_folder_rejected_before_running(project_copy):
    with pytest.raises(ParameterError, match="data.train_dir.*does not exist"):
        config.resolve_parameters(project_copy, "smoke", ["data.source=folders",
                                                            f"data.train_dir={project_copy / 'nope'}"])
    with pytest.raises(ParameterError, match="data.source"):
        config.resolve_parameters(project_copy, "smoke", ["data.source=imagenet"])


@pytest.fixture(scope="module")
def project_with_data(tmp_path_factory):
    """One project copy with the smoke data step done, shared by the bad-input cases (none may change it)."""
    from conftest import toy_project

    project = toy_project(tmp_path_factory.mktemp("bad-input") / "project")
    first = run_cli(project, "run", "--profile", "smoke", "--only", "data")
    assert first.returncode == 0, first.stderr
    (project / "params" / "broken.yaml").write_text("global:\n  seed: 0\ndata: train_size: 10\n")
    return project


@pytest.mark.parametrize("args,message", [
    (["--set", "baseline.epochs=-1"], "must be >= 0"),
    (["--set", "factorization.rank_fractions=[0.5, 1.5]"], "rank fractions must be in (0, 1]"),
    (["--set", "distillation.teachers=[gpt]"], "unknown teacher 'gpt'"),
    (["--set", "data.source=folders", "--set", "data.train_dir=/nonexistent/train",
      "--set", "data.val_dir=/nonexistent/val"], "does not exist"),
    (["--set", "baseline.epochs=abc"], "must be int"),
    (["--profile", "broken"], "not valid YAML at line 3"),
])
def test_bad_input_is_refused_before_work_and_results_survive(project_with_data, args, message):
    project_copy = project_with_data
    results = project_copy / "results" / "smoke"
    before = (results / "data" / "stamp.json").read_text()
    profile_args = [] if "--profile" in args else ["--profile", "smoke"]
    r = run_cli(project_copy, "run", *profile_args, *args, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "===" not in r.stdout                      # no step started
    assert (results / "data" / "stamp.json").read_text() == before

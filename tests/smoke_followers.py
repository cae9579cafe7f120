"""What the test session runs in the background once the smoke run has finished, beside the other tests
(``conftest.SmokeRun``), each a minute or more that used to run one after the other at the session's end:

- ``python tests/smoke_followers.py by_hand PROJECT``: the distillation chapter executed as a person would
  (nbclient, no papermill) in the smoke run's project, after setting ``profile = "smoke"`` and a small grid
  in its first cell; it makes what it reads (here: finds it fresh) and writes to results/smoke/by_hand/
  (``tests/test_notebooks.py`` checks what it wrote);
- ``python tests/smoke_followers.py dask COPY``: a ``dask scheduler`` and two ``dask worker`` processes on
  127.0.0.1, and the smoke distillation step rerun through ``--scheduler tcp://...`` in COPY, a copy of the
  smoke run's project, on part of its grid (seed 0, alpha 0 and 0.5) (``tests/test_grid.py`` compares its
  rows with the smoke run's);
- ``python tests/smoke_followers.py twice COPY``: the data and baseline steps run again (forced) in COPY, another
  copy of the smoke run's project (``tests/test_pipeline.py`` compares what they wrote with the smoke run's).

Each prints, as its last line, a JSON object of what the test needs to know, and exits non-zero on failure.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

# What a person trying the chapter quickly types into its first cell: the smoke profile, a small grid.
BY_HAND_EDITS = {'profile = "default"': 'profile = "smoke"', "seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]": "seeds = [0, 1]",
                 'teachers = ["resnet8", "mobilenet_0.5"]': 'teachers = ["resnet8"]', "epochs = 3": "epochs = 1",
                 "alphas = [0.0, 0.5, 1.0]": "alphas = [0.0, 0.5]", "representative_size = 256": "representative_size = 32",
                 "cost_images = 512": "cost_images = 128"}
DASK_GRID = ["--set", "distillation.seeds=[0]", "--set", "distillation.alphas=[0.0, 0.5]"]


def by_hand(project: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(project / "notebooks" / "30_distillation.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for old, new in BY_HAND_EDITS.items():
        if old not in params.source:
            raise SystemExit(f"the chapter's parameters cell no longer holds {old!r}: update BY_HAND_EDITS")
        params.source = params.source.replace(old, new)
    os.environ.update(LPIRC_ROOT=str(project), LPIRC_SCHEDULER="serial")
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(project / "notebooks")}}).execute()
    return {"out": str(project / "results" / "smoke" / "by_hand" / "distillation")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask_cluster(env: dict) -> tuple[str, list]:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, once both workers have joined."""
    from distributed import Client

    port = free_port()
    dask = str(Path(sys.executable).with_name("dask"))
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    for _ in range(2):
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-dashboard"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.time() + 120
        with Client(address, timeout=60) as client:
            while len(client.scheduler_info()["workers"]) < 2 and time.time() < deadline:
                time.sleep(0.5)
            if len(client.scheduler_info()["workers"]) != 2:
                raise SystemExit("the two dask workers did not join the scheduler within 2 minutes")
    except BaseException:
        stop(procs)
        raise
    return address, procs


def stop(procs: list) -> None:
    for p in procs[::-1]:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def run_smoke(copy: Path, *args: str) -> str:
    """``lpirc run --profile smoke ARGS`` in the project copy ``copy``; its output (exits on failure)."""
    env = {**os.environ, "LPIRC_ROOT": str(copy)}
    env.pop("LPIRC_RESULTS_DIR", None)
    r = subprocess.run([sys.executable, "-m", "lpirc", "run", "--profile", "smoke", *args], cwd=copy, env=env,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(r.stdout[-2000:] + r.stderr[-2000:])
    return r.stdout


def on_dask(copy: Path) -> dict:
    from lpirc import grid

    address, procs = dask_cluster({**os.environ, **grid.WORKER_ENV})
    try:
        run_smoke(copy, "--only", "distillation", "--force", "distillation", *DASK_GRID, "--scheduler", address)
    finally:
        stop(procs)
    return {"address": address, "results": str(copy / "results" / "smoke")}


def twice(copy: Path) -> dict:
    """The data and baseline steps again, forced, after removing what the smoke run wrote for them in the
    copy: what the test compares was written by this run."""
    results = copy / "results" / "smoke"
    for step in ("data", "baseline"):
        shutil.rmtree(results / step)
    out = run_smoke(copy, "--only", "data", "baseline", "--force", "data", "baseline")
    return {"results": str(results), "forced": [line for line in out.splitlines() if "(forced)" in line]}


if __name__ == "__main__":
    import conftest  # noqa: F401  (the tests' environment: legacy Keras, quiet TensorFlow, the fake CPU name)

    what, folder = sys.argv[1], Path(sys.argv[2])
    print(json.dumps({"by_hand": by_hand, "dask": on_dask, "twice": twice}[what](folder)))

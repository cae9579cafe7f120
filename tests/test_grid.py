"""Grid tasks run the same serially, on a process pool, on a LocalCluster and on a separate Dask scheduler + workers."""
import os
import sys
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from lpirc import grid

cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers need not import this test file


def square_or_fail(*, out_dir: str, x: int, fail_on: int = -1) -> dict:
    if x == fail_on:
        raise ValueError(f"bad point {x}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / f"{x}.txt").write_text(str(x * x))
    return {"x": x, "square": x * x}


# Grids on worker processes (a pool's, a LocalCluster's): the slow tier.
@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["serial", "local", "dask-local"])
def test_a_failing_task_is_named_and_the_others_finish(tmp_path, scheduler):
    points = [{"out_dir": str(tmp_path), "x": x, "fail_on": 2} for x in range(4)]
    with pytest.raises(grid.GridTaskFailed) as info:
        grid.run_grid(square_or_fail, points, label="squares", scheduler=scheduler, progress=False)
    message = str(info.value)
    assert "squares: 1 of 4 tasks failed" in message
    assert "grid point x=2 fail_on=2" in message and "ValueError: bad point 2" in message
    assert "Traceback" in message
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == ["0.txt", "1.txt", "3.txt"]


def worker_state(*, x: int) -> dict:
    return {"x": x, "pid": os.getpid(), "tensorflow": "tensorflow" in sys.modules}


def tensorflow_settings(*, x: int) -> dict:
    from lpirc.tfutil import tensorflow          # imported by the task itself, not by unpickling it

    tf = tensorflow()
    from tensorflow.python.framework.config import is_op_determinism_enabled

    return {"x": x, "pid": os.getpid(), "threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "determinism": is_op_determinism_enabled()}


@pytest.mark.slow
def test_workers_live_on_and_import_tensorflow_only_for_a_task_that_uses_it():
    """A grid's worker serves the next grid of the same process; it has not imported TensorFlow for tasks
    that do not use it, and a task that imports it later finds it set up as every task's is. Inside
    grid.fresh_workers() a grid gets a new worker."""
    with grid.fresh_workers():                                # this test's own workers
        first = grid.run_grid(worker_state, [{"x": 1}], scheduler="serial", progress=False)[0]
        second = grid.run_grid(worker_state, [{"x": 2}, {"x": 3}], scheduler="serial", progress=False)
        assert first["pid"] != os.getpid() and {r["pid"] for r in second} == {first["pid"]}
        assert not first["tensorflow"] and not any(r["tensorflow"] for r in second)
        with grid.fresh_workers():
            other = grid.run_grid(worker_state, [{"x": 4}], scheduler="serial", progress=False)[0]
        assert other["pid"] != first["pid"]
        tf_row = grid.run_grid(tensorflow_settings, [{"x": 5}], scheduler="serial", progress=False)[0]
        assert tf_row["pid"] == first["pid"]
        assert tf_row["threads"] == grid.TASK_THREADS and tf_row["determinism"]


def test_unknown_scheduler_is_refused(tmp_path):
    with pytest.raises(ValueError, match="scheduler 'gpu-farm'"):
        grid.run_grid(square_or_fail, [{"out_dir": str(tmp_path), "x": 1}], scheduler="gpu-farm")


@pytest.fixture(scope="module")
def tiny_distillation_inputs(tmp_path_factory):
    """A small embedded dataset, a student architecture and teacher logits, as the sweep takes them."""
    from lpirc import data, distill, models, weights

    folder = tmp_path_factory.mktemp("tiny")
    data.generate_dataset(folder / "data", {"train": 256, "val": 64, "holdout": 64}, seed=0, progress=False)
    x_train, _ = data.load_split(folder / "data", "train")
    student = weights.build({"arch": "mobilenet_v1", "width_multiplier": 0.25}, classes=10, resolution=32)
    models.save_model(student, folder / "student.keras")
    teacher = weights.build({"arch": "mobilenet_v1", "width_multiplier": 0.25}, classes=10, resolution=32)
    models.save_model(teacher, folder / "teacher.keras")
    logits, _ = distill.teacher_logits_file(folder / "teacher.keras", x_train, folder / "cache")
    return folder, logits


def tiny_sweep(inputs, out: Path, scheduler: str) -> pd.DataFrame:
    from lpirc import distill

    folder, logits = inputs
    rows = distill.sweep(out, folder / "data", folder / "student.keras", {"t": logits}, alphas=[0.0, 0.5],
                         seeds=[1], temperature=4.0, epochs=1, batch_size=64, learning_rate=0.01,
                         representative_size=8, scheduler=scheduler)
    return rows.drop(columns=["train_time_s", "model", "timing_s"], errors="ignore")


@pytest.mark.slow
def test_distillation_sweep_identical_serially_and_on_a_local_cluster(tiny_distillation_inputs, tmp_path):
    serial = tiny_sweep(tiny_distillation_inputs, tmp_path / "serial", "serial")
    assert len(serial) == 2 and set(serial.teacher) == {"none", "t"}
    assert serial.weights_sha256.nunique() == 2          # different alphas train different models
    local = tiny_sweep(tiny_distillation_inputs, tmp_path / "local", "local")
    pd.testing.assert_frame_equal(serial, local)
    dask_local = tiny_sweep(tiny_distillation_inputs, tmp_path / "dask", "dask-local")   # LocalCluster(2 workers, 1 thread)
    pd.testing.assert_frame_equal(serial, dask_local)
    epochs = int(serial.epochs.iloc[0])
    assert (tmp_path / "local" / f"a0.5_t_e{epochs}_s1" / "student.keras").exists()
    assert not (tmp_path / "local" / f"a0.5_t_e{epochs}_s1" / "int8.tflite").exists()   # no claim here reads int8
    assert (tmp_path / "local" / f"a0_none_e{epochs}_s1" / "student.keras").exists()


@pytest.mark.slow
def test_smoke_distillation_step_on_a_separate_dask_cluster(smoke_run, smoke_on_dask):
    """The smoke distillation step rerun through --scheduler tcp://... gives the rows it gave locally. Rerun
    in a copy of the smoke run's project (its results stay as the other tests read them) on part of the
    step's grid (seed 0, alpha 0 and 0.5), whose rows must equal the smoke run's rows of the same points
    (tests/smoke_followers.py: a scheduler and two workers on 127.0.0.1, in the background once the smoke
    run has finished)."""
    _, results, _ = smoke_run
    before = pd.read_csv(results / "distillation" / "tables" / "runs.csv")
    copied = Path(smoke_on_dask["results"])
    after = pd.read_csv(copied / "distillation" / "tables" / "runs.csv")
    points = ["alpha", "teacher", "seed"]
    assert len(after) == 2 and list(after.alpha) == [0.0, 0.5] and set(after.seed) == {0}
    local = before.merge(after[points], on=points)                  # the same grid points, run locally
    timings = {"train_time_s", "timing_s", "wall_s"}           # wall clocks differ between any two runs
    columns = [c for c in before.columns if c not in timings]
    pd.testing.assert_frame_equal(local[columns].sort_values(points, ignore_index=True),
                                  after[columns].sort_values(points, ignore_index=True))
    from lpirc.results import read_json
    assert read_json(copied / "run.json")["steps"]["distillation"]["scheduler"] == smoke_on_dask["address"]

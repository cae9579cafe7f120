import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
FAKE_CPU = "Intel(R) Xeon(R) Fake(TM) CPU @ 2.50GHz <test>"
# Every run the tests start labels its host with a CPU name holding the characters HTML and Markdown
# treat specially ('@', '(R)', '(TM)', '<'), as Intel names do, so no page or test depends on the real CPU.
os.environ["LPIRC_TEST_CPU_MODEL"] = FAKE_CPU


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def colour_images(n_per_class: int, size: int, seed: int = 0):
    """Images whose dominant channel is the class (0 red, 1 green, 2 blue): a task with known answers."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(3):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, size=(size, size, 3))
            img[..., c] = rng.integers(180, 256, size=(size, size))
            images.append(img.astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.array(labels)


def colour_model(size: int, outputs: int, background: bool):
    """A Keras model that predicts the dominant channel: GAP then a Dense with known weights."""
    import tf_keras as keras

    inp = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    out = keras.layers.Dense(outputs, name="logits")(x)
    model = keras.Model(inp, out)
    kernel = np.zeros((3, outputs), np.float32)
    bias = np.zeros(outputs, np.float32)
    offset = 1 if background else 0
    for c in range(3):
        kernel[c, c + offset] = 4.0
    if background:
        bias[0] = -2.0
    model.get_layer("logits").set_weights([kernel, bias])
    return model


def convert_tiny(model, mode: str, path: Path, io_type=None, size=None):
    """Convert with the project's converter, or with a given integer I/O type (uint8 for 'third-party')."""
    import tensorflow as tf
    from lpirc import conversion

    if io_type is None:
        rep = conversion.random_representative(model.input_shape[1:], 16)
        return conversion.convert(model, mode, path, rep if mode == "int8" else None).path
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rep = conversion.random_representative(model.input_shape[1:], 16)
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = io_type
    conv.inference_output_type = io_type
    path.write_bytes(conv.convert())
    return path


def copy_project(dst: Path) -> Path:
    """A throwaway copy of the project's sources (no results, no venv) to run or build in."""
    dst.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "references.bib", "pyproject.toml"):
        shutil.copy(ROOT / name, dst / name)
    for folder in ("book", "notebooks", "params", "src", "reference", "criteria", "data_manifest"):
        shutil.copytree(ROOT / folder, dst / folder,
                        ignore=shutil.ignore_patterns("executed", "_generated", "__pycache__"))
    return dst


@pytest.fixture
def project_copy(tmp_path):
    return copy_project(tmp_path / "project")


# The runner's contract (one writer per profile, results swapped in whole, a kill at any instant loses
# nothing, a failing step names its notebook) holds whatever a step computes: those tests run a toy data
# step, the real notebook's parameters cell and a body that writes the step's files over a while (1 ms
# an image) without TensorFlow, so a run takes seconds, not the real step's import of TensorFlow.
TOY_DATA_STEP = [
    """import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from lpirc.runner.context import _die_with_runner   # the kernel dies with the runner, as start_step has it

out = Path(os.environ.get("LPIRC_STEP_OUT") or "toy_data")
if os.environ.get("LPIRC_STEP_OUT"):
    _die_with_runner()
out.mkdir(parents=True, exist_ok=True)""",
    """def make_dataset(out, sizes, seed):
    \"\"\"Each split's array (train first, as the real step), then a pause of 1 ms an image.\"\"\"
    splits = {}
    for split, n in sizes.items():
        x = np.random.default_rng([seed, n]).integers(0, 256, (n, 8), dtype=np.uint8)
        np.save(out / f"{split}_x.npy", x)
        splits[split] = {"n": n, "sha256": hashlib.sha256(x.tobytes()).hexdigest()}
        time.sleep(n / 1000)
    return splits


splits = make_dataset(out, dict(train=train_size, val=val_size, holdout=holdout_size, extra=extra_size), seed)
(out / "dataset.json").write_text(json.dumps({"source": source, "splits": splits}))""",
    """(out / "metrics.json").write_text(json.dumps({"splits": {s: {"n": v["n"]} for s, v in splits.items()}}))""",
]


def toy_project(dst: Path) -> Path:
    """A project copy whose data step is the toy above (the other steps are the real ones)."""
    import json

    project = copy_project(dst)
    path = project / "notebooks" / "00_data.ipynb"
    nb = json.loads(path.read_text())
    params = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    code = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src}
            for src in TOY_DATA_STEP]
    nb["cells"] = [{"cell_type": "markdown", "metadata": {}, "source": "# A toy data step"}, params, *code]
    path.write_text(json.dumps(nb, indent=1))
    return project


@pytest.fixture
def toy_copy(tmp_path):
    """A project copy whose data step is a toy without TensorFlow (:data:`TOY_DATA_STEP`)."""
    return toy_project(tmp_path / "project")


# What reads the finished smoke run and takes a minute or more starts in the background as soon as the
# run has finished, beside the other tests (it used to run one after the other at the session's end),
# when a selected test asks for its fixture: the command, with {project} and the copies ({dask_copy},
# {twice_copy}) filled in.
FOLLOWERS = {
    "smoke_book": ["-m", "lpirc", "book", "--profile", "smoke"],
    "smoke_by_hand": [str(ROOT / "tests" / "smoke_followers.py"), "by_hand", "{project}"],
    "smoke_on_dask": [str(ROOT / "tests" / "smoke_followers.py"), "dask", "{dask_copy}"],
    "smoke_twice": [str(ROOT / "tests" / "smoke_followers.py"), "twice", "{twice_copy}"],
}
# Followers that rewrite results work in a copy of the project made before any follower starts.
COPIES = {"smoke_on_dask": "dask_copy", "smoke_twice": "twice_copy"}


class SmokeRun:
    """The whole pipeline on the smoke profile in a throwaway project copy, then, when selected tests read
    them, its :data:`FOLLOWERS` (the book built from it with -W -n --keep-going, the distillation chapter by
    hand, the distillation step on a Dask cluster, the data and baseline steps run again), side by side.
    Started in the background as soon as the session has collected its tests (:func:`pytest_collection_finish`);
    the tests that read it run after the others (:func:`pytest_collection_modifyitems`), which run meanwhile."""

    def __init__(self, folder: Path, followers):
        import threading

        self.folder = folder
        self.project = copy_project(folder / "project")
        self.logs = folder / "logs"                   # each process's output, in files: no pipe fills up
        self.logs.mkdir()
        self.copies = {name: folder / name / "project" for name in COPIES.values()}
        self.results = self.project / "results" / "smoke"
        self.wanted, self.procs, self.finished = set(followers), {}, {}
        self.run = self.error = None
        self._lock, self._stopped = threading.Lock(), False
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _start(self, name: str, args: list) -> subprocess.Popen:
        env = {**os.environ, "LPIRC_ROOT": str(self.project)}
        env.pop("LPIRC_RESULTS_DIR", None)
        with self._lock, open(self.logs / f"{name}.out", "w") as out, open(self.logs / f"{name}.err", "w") as err:
            if self._stopped:
                raise RuntimeError("the test session stopped")
            proc = subprocess.Popen([sys.executable, *args], cwd=self.project, env=env, stdout=out, stderr=err,
                                    text=True, start_new_session=True)
            self.procs[name] = proc
        return proc

    def _finish(self, name: str) -> subprocess.CompletedProcess:
        proc = self.procs[name]
        proc.wait(timeout=1800)
        return subprocess.CompletedProcess(proc.args, proc.returncode, (self.logs / f"{name}.out").read_text(),
                                           (self.logs / f"{name}.err").read_text())

    def _work(self):
        try:
            self._start("smoke_run", ["-m", "lpirc", "run", "--profile", "smoke"])
            self.run = self._finish("smoke_run")
            if self.run.returncode != 0:
                return
            for name in sorted(self.wanted & COPIES.keys()):   # copied before anything reads or rewrites the results
                shutil.copytree(self.project, self.copies[COPIES[name]], ignore=shutil.ignore_patterns("_build", "by_hand"))
            for name in sorted(self.wanted):
                self._start(name, [a.format(project=self.project, **self.copies) for a in FOLLOWERS[name]])
        except Exception as exc:          # noqa: BLE001 — reported by the fixture that waits
            self.error = exc

    def wait(self) -> "SmokeRun":
        self._thread.join()
        assert self.error is None, repr(self.error)
        return self

    def follower(self, name: str) -> subprocess.CompletedProcess:
        """A follower's finished process (waits for it)."""
        self.wait()
        if name not in self.finished:
            assert name in self.procs, f"{name} was not started: the smoke run failed, or no test asked for it"
            self.finished[name] = self._finish(name)
        return self.finished[name]

    def stop(self) -> None:
        """Kill every process this started, and what they started (each leads its own process group)."""
        import signal

        with self._lock:
            self._stopped = True
            for proc in self.procs.values():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="session")
def smoke_run(request, tmp_path_factory):
    """The whole pipeline on the smoke profile, once per test session, in a throwaway project copy:
    (project, results, the run's CompletedProcess)."""
    job = getattr(request.config, "smoke", None)
    if job is None:                        # not started at collection: start it now
        job = request.config.smoke = SmokeRun(tmp_path_factory.mktemp("smoke"), FOLLOWERS)
    job.wait()
    proc = job.run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return job.project, job.results, proc


def _followed(request, name: str) -> subprocess.CompletedProcess:
    done = request.config.smoke.follower(name)
    assert done.returncode == 0, f"{name}: " + done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _reported(request, name: str) -> dict:
    """What a follower of tests/smoke_followers.py printed as its last line (a JSON object), once it succeeded."""
    import json

    return json.loads(_followed(request, name).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def smoke_book(request, smoke_run):
    """The smoke results built into a book with -W -n --keep-going; (html root, project copy)."""
    _followed(request, "smoke_book")
    dst = smoke_run[0]
    return dst / "_build" / "html", dst


@pytest.fixture(scope="session")
def smoke_by_hand(request, smoke_run):
    """The distillation chapter executed by hand on the smoke run (tests/smoke_followers.py): its output folder."""
    return Path(_reported(request, "smoke_by_hand")["out"])


@pytest.fixture(scope="session")
def smoke_on_dask(request, smoke_run):
    """The smoke distillation step rerun on part of its grid on a separate Dask cluster, in a copy of the
    smoke run's project (tests/smoke_followers.py): {"address", "results"}."""
    return _reported(request, "smoke_on_dask")


@pytest.fixture(scope="session")
def smoke_twice(request, smoke_run):
    """The smoke data and baseline steps run again (forced) in a copy of the smoke run's project
    (tests/smoke_followers.py): {"results", "forced"}."""
    return _reported(request, "smoke_twice")


@pytest.fixture
def smoke_alone(request, smoke_run):
    """The smoke run, once no follower reads its results or sources or takes its lock: for a test that runs
    the runner or its status on the project, or edits its sources."""
    for name in ("smoke_book", "smoke_by_hand"):
        if name in request.config.smoke.procs:
            request.config.smoke.follower(name)
    return smoke_run


# --------------------------------------------------------------------------------------------------
# The imagenet profile's end-to-end run and the memory measurements beside it (tests/imagenet_e2e.py) keep
# a core busy for minutes: they start in the background as soon as a test reading them (fixture ``e2e``)
# is collected and selected, and run beside the others.


def _order(item) -> int:
    """Where a test runs in the session: 0 the quick tests, 1 the other slow ones, 2 those reading the
    smoke run (started in the background at collection, done by then), 3 the imagenet end-to-end tests,
    which wait for their run (in the background at a lower priority, it takes the cores the others leave)."""
    names = getattr(item, "fixturenames", ())
    if "e2e" in names:
        return 3
    if "smoke_run" in names:
        return 2
    return 1 if item.get_closest_marker("slow") else 0


def pytest_collection_modifyitems(config, items):
    """The quick tests first, then the slow ones, then those that wait for a background run (each group
    in its order): the background runs use the other core meanwhile."""
    items.sort(key=_order)


def pytest_configure(config):
    """``-n`` (pytest-xdist) is for the quick tier: the slow tier's background runs belong to one session."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput") \
            and config.option.markexpr.strip() != "not slow":
        raise pytest.UsageError("-n (pytest-xdist) is for the quick tier, selected by exactly -m 'not slow': add "
                                "it, or drop -n (from PYTEST_ADDOPTS or PYTEST_ARGS too); the slow tier starts its "
                                "background runs once per session, so make test runs in one process")


def pytest_collection_finish(session):
    import tempfile

    if session.config.option.collectonly:
        return
    needs = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    if "smoke_run" in needs:
        session.config.smoke = SmokeRun(Path(tempfile.mkdtemp(prefix="lpirc-smoke-")), needs & FOLLOWERS.keys())
    if "e2e" not in needs:
        return
    out = Path(tempfile.mkdtemp(prefix="lpirc-imagenet-e2e-"))
    log = open(out / "script.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "imagenet_e2e.py"), str(out)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: os.nice(10))     # the other tests first; it fills idle cores
    session.config.imagenet_e2e = (proc, out)


def pytest_sessionfinish(session, exitstatus):
    """An interrupted session stops the background runs too. The temporary folders they wrote in (about
    300 MB each) are removed when the session passed, and kept, with their paths printed, when it did not."""
    smoke = getattr(session.config, "smoke", None)
    if smoke is not None:
        smoke.stop()
        smoke._thread.join(timeout=120)         # it may still be copying the project for a follower
    started = getattr(session.config, "imagenet_e2e", None)
    if started and started[0].poll() is None:
        import signal

        os.killpg(started[0].pid, signal.SIGKILL)
        started[0].wait(timeout=60)
    folders = [f for f in (getattr(smoke, "folder", None), started and started[1]) if f is not None]
    for folder in folders:
        if exitstatus == 0:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"\nkept for inspection: {folder}")

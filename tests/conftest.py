import os
import shutil
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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The whole pipeline on the smoke profile, once per test session, in a throwaway project copy."""
    import subprocess
    import sys

    dst = copy_project(tmp_path_factory.mktemp("smoke") / "project")
    env = {**os.environ, "LPIRC_ROOT": str(dst)}
    env.pop("LPIRC_RESULTS_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "lpirc", "run", "--profile", "smoke"], cwd=dst, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dst, dst / "results" / "smoke", proc


@pytest.fixture(scope="session")
def smoke_book(smoke_run):
    """The smoke results built into a book with -W -n --keep-going; (html root, project copy)."""
    from lpirc.runner import book

    dst, results, _ = smoke_run
    book.build("smoke", root=dst, results=results)
    return dst / "_build" / "html", dst


# --------------------------------------------------------------------------------------------------
# The imagenet profile's end-to-end runs (tests/imagenet_e2e.py) take about ten minutes on one core:
# they start in the background as soon as their tests are collected, and run beside the other tests.
def pytest_collection_finish(session):
    import subprocess
    import sys
    import tempfile

    if not any(Path(str(item.fspath)).name == "test_imagenet_profile.py" for item in session.items):
        return
    out = Path(tempfile.mkdtemp(prefix="lpirc-imagenet-e2e-"))
    log = open(out / "script.log", "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "imagenet_e2e.py"), str(out)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    session.config.imagenet_e2e = (proc, out)


def pytest_sessionfinish(session):
    started = getattr(session.config, "imagenet_e2e", None)
    if started and started[0].poll() is None:       # an interrupted session: stop the runs too
        import signal

        os.killpg(started[0].pid, signal.SIGKILL)

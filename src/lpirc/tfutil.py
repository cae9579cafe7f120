"""Importing TensorFlow lazily and quietly: keeping its native log lines out of notebooks and the book.

TensorFlow's C++ logging (oneDNN, cuInit, converter notes) writes straight to file descriptor 2 and
survives TF_CPP_MIN_LOG_LEVEL=3; ipykernel captures that descriptor into cell outputs. Redirecting
fd 2 while TensorFlow imports and while the converter runs keeps the book clean; Python warnings and
exceptions are unaffected (they go through sys.stderr after the redirect is undone).
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def native_stderr_to_log(log_path: str | None = None):
    """Send everything written to fd 2 inside the block to a temporary file (or log_path)."""
    sys.stderr.flush()
    saved = os.dup(2)
    target = open(log_path, "ab") if log_path else tempfile.TemporaryFile()
    try:
        os.dup2(target.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        target.close()


_QUIET = False
_WHEN_IMPORTED: list = []      # set-up to run once TensorFlow is imported (see when_imported)


def when_imported(setup) -> None:
    """Call ``setup()`` now if TensorFlow is imported, else right after :func:`quiet_tensorflow` imports
    it: a grid worker sets TensorFlow's threads this way without importing it for tasks that never
    use it."""
    if "tensorflow" in sys.modules:
        setup()
    elif setup not in _WHEN_IMPORTED:
        _WHEN_IMPORTED.append(setup)


def quiet_tensorflow() -> None:
    """Import TensorFlow and tf_keras once with native logging muted; silence known-harmless warnings."""
    global _QUIET
    if _QUIET:
        return
    with native_stderr_to_log():
        import tensorflow as tf  # noqa: F401
        import tf_keras  # noqa: F401
        tf.get_logger().setLevel("ERROR")
    # Emitted on every int8 conversion; harmless (book/method.md, "Log lines").
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    _QUIET = True
    while _WHEN_IMPORTED:
        _WHEN_IMPORTED.pop(0)()


def tensorflow():
    """The ``tensorflow`` module, imported quietly: the package's lazy TensorFlow import. Modules below the
    networks (lpirc.runtime, lpirc.stream, lpirc.grid, ...) call it inside functions, so importing them
    does not import TensorFlow (``lpirc status`` and the runner stay quick)."""
    quiet_tensorflow()
    import tensorflow as tf

    return tf


def keras():
    """``tf_keras`` (Keras 2, book/method.md "One Keras"), imported quietly like :func:`tensorflow`."""
    quiet_tensorflow()
    import tf_keras

    return tf_keras


def model_optimization():
    """``tensorflow_model_optimization`` (fake quantization for QAT), imported quietly when QAT first needs
    it: about 2 s of import that the steps and grid workers which never train with fake quantization
    (distillation, pretraining, factorization) no longer pay."""
    quiet_tensorflow()
    with native_stderr_to_log():
        import tensorflow_model_optimization

    return tensorflow_model_optimization

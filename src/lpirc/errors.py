"""Errors about a model file or a weights parameter, which the command line reports as a message (exit
status 2). Defined here, apart from the modules that raise them (lpirc.tflite, lpirc.weights), so that
the command line can catch them without importing LiteRT or TensorFlow."""
from __future__ import annotations


class ModelFileError(ValueError):
    """A model file that cannot be used (missing, not a TFLite flatbuffer, the wrong inputs or outputs)."""


class WeightsError(ValueError):
    """A weights file or parameter that cannot be used; the message says what to do."""

"""Where and how TensorFlow runs: seeds, op determinism, and the devices training uses.

The default book trains on one CPU thread with TensorFlow's op determinism on, so every run of it
gives bit-identical weights. On GPUs determinism costs speed (some cuDNN kernels are replaced) and a
few ops raise under it, so ``$LPIRC_DETERMINISM`` chooses: ``auto`` (the default) means on without a
GPU, off with one; ``1`` / ``0`` force it.

Training runs under :func:`strategy`: ``tf.distribute.MirroredStrategy`` across the logical GPUs when
there are two or more (or across the logical CPU devices when the CPU has been split into several, as
the tests do to stand in for two GPUs), TensorFlow's default strategy otherwise. ``CUDA_VISIBLE_DEVICES``
chooses the GPUs. The training recipe (``lpirc.models.compile_and_fit``) is where the strategy is used;
:func:`record` says where a training ran.

TensorFlow is imported lazily (lpirc.tfutil): the runner imports this module to seed a step.
"""
from __future__ import annotations

import functools
import os

from lpirc.tfutil import keras as _keras
from lpirc.tfutil import tensorflow as _tf

DETERMINISM = {"auto": None, "1": True, "0": False, "true": True, "false": False}


def configure(determinism: str = "auto") -> bool:
    """Turn TensorFlow's op determinism on (see the module docstring); returns whether it is on."""
    tf = _tf()
    if determinism not in DETERMINISM:
        raise ValueError(f"determinism must be auto, 1 or 0, got {determinism!r}")
    on = DETERMINISM[determinism]
    if on is None:
        on = not tf.config.list_physical_devices("GPU")
    if on:
        tf.config.experimental.enable_op_determinism()
    return on


def set_seed(seed: int) -> None:
    """Seed Python, numpy, TensorFlow and Keras' own seed generator, and set op determinism from
    ``$LPIRC_DETERMINISM`` (see the module docstring)."""
    _keras().utils.set_random_seed(seed)
    configure(os.environ.get("LPIRC_DETERMINISM", "auto"))


@functools.lru_cache(maxsize=1)
def strategy():
    """The tf.distribute strategy training runs under: MirroredStrategy across the logical GPUs when
    there are two or more, else across the logical CPU devices when there are two or more, else the
    default strategy (one device). Chosen once per process: devices do not change once TensorFlow
    has started."""
    tf = _tf()
    devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
              [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def record(strat=None) -> dict:
    """The devices TensorFlow sees and the ones a strategy (default: :func:`strategy`) trains on."""
    tf = _tf()
    strat = strat or strategy()
    try:
        used = list(strat.extended.worker_devices)
    except RuntimeError:                  # the default strategy lists none: one device, TensorFlow's placement
        used = []
    return {"physical": [d.name for d in tf.config.list_physical_devices()],
            "logical": [d.name for d in tf.config.list_logical_devices()],
            "strategy": type(strat).__name__, "replicas": int(strat.num_replicas_in_sync), "training_devices": used}

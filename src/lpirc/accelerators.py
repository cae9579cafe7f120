"""Where training runs: one device, or every visible GPU with MirroredStrategy; determinism and
mixed precision as parameters; the devices recorded in run.json.

The default book trains on one CPU thread with TensorFlow's op determinism on, so every run of it
gives bit-identical weights. On GPUs determinism costs speed (some cuDNN kernels are replaced) and a
few ops raise under it, so it is a parameter: ``determinism: auto`` means on without a GPU, off with one.

``devices``: ``auto`` (MirroredStrategy across the visible GPUs when there are two or more, else the
default device), ``one`` (the first device only) or a list of device names such as
``["/gpu:0", "/gpu:1"]``. Tests split the CPU into two logical devices (:func:`split_cpu`) and pass
``["/cpu:0", "/cpu:1"]``, which runs the same MirroredStrategy code path as two GPUs.
"""
from __future__ import annotations

from lpirc.tfutil import tensorflow as _tf


def split_cpu(n: int) -> None:
    """Present the CPU as ``n`` logical devices; must run before TensorFlow initialises its devices."""
    tf = _tf()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def strategy(devices="auto"):
    """A tf.distribute strategy for ``devices`` (see the module docstring)."""
    tf = _tf()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if isinstance(devices, (list, tuple)):
        if len(devices) == 0:
            raise ValueError("devices: an empty list; pass auto, one or device names such as ['/gpu:0']")
        return tf.distribute.MirroredStrategy(list(devices)) if len(devices) > 1 else \
            tf.distribute.OneDeviceStrategy(devices[0])
    if devices == "one" or (devices == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    if devices == "auto":
        return tf.distribute.MirroredStrategy(gpus)
    raise ValueError(f"devices must be auto, one or a list of device names, got {devices!r}")


def configure(determinism="auto", mixed_precision: bool = False) -> dict:
    """Set op determinism and the Keras precision policy; returns what was set, for run.json.

    Under ``mixed_float16`` the builder's logits are float16 too; Keras' losses compute in float32."""
    tf = _tf()
    from lpirc import models

    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    choices = {"auto": None, True: True, False: False, "1": True, "0": False, "true": True, "false": False}
    if determinism not in choices:
        raise ValueError(f"determinism must be auto, 1 or 0, got {determinism!r}")
    on = (not has_gpu) if choices[determinism] is None else choices[determinism]
    if on:
        tf.config.experimental.enable_op_determinism()
    if mixed_precision:
        models.keras.mixed_precision.set_global_policy("mixed_float16")
    return {"op_determinism": on, "precision_policy": models.keras.mixed_precision.global_policy().name}


def record(strat=None) -> dict:
    """The devices TensorFlow sees and the ones a strategy trains on (run.json's ``devices``)."""
    tf = _tf()
    strat = strat or tf.distribute.get_strategy()
    used = list(getattr(strat.extended, "worker_devices", ()) or [])
    return {"physical": [d.name for d in tf.config.list_physical_devices()],
            "logical": [d.name for d in tf.config.list_logical_devices()],
            "strategy": type(strat).__name__, "replicas": int(strat.num_replicas_in_sync), "training_devices": used}

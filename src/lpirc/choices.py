"""The named choices a parameter or a command takes, written once.

The science modules act on them, the runner's parameter schema (``lpirc.runner.schema``) checks a
profile against them, and the command line offers them; all three import them from here. Plain
tuples and dicts and one check, no imports: a module any step may import for the price of nothing.
"""
from __future__ import annotations

# Evaluation crop of streamed images (lpirc.stream.eval_image): TF-slim's central 87.5% and resize,
# or the shorter side to S / 0.875 and a centre crop (the in-memory PIL path's).
PREPROCESS = ("inception", "resize_crop")

# Where a distillation or pretraining grid task starts (lpirc.distill.fresh_student): a new
# initialisation drawn from its seed, or the baseline student's trained weights.
INITS = ("fresh", "trained")

# The data step's source (lpirc.data.make_dataset): the generated embedded dataset or image folders.
DATA_SOURCES = ("embedded", "folders")

# A model spec's architecture (lpirc.weights.build); "frozen" (a pretrained file used as it is) is
# for teachers only.
ARCHS = ("mobilenet_v1", "resnet", "frozen")
TRAINABLE_ARCHS = ("mobilenet_v1", "resnet")

# Where grid tasks run (lpirc.grid.run_grid): one by one in this process's worker, a process pool on
# this machine, a local Dask cluster; or a Dask scheduler's address (see check_scheduler).
SCHEDULERS = ("serial", "local", "dask-local")
DASK_ADDRESS_PREFIXES = ("tcp://", "tls://", "ucx://", "inproc://")


def check_scheduler(scheduler: str) -> str:
    """One of :data:`SCHEDULERS` or a Dask address; anything else is refused with what to write instead."""
    if scheduler in SCHEDULERS or scheduler.startswith(DASK_ADDRESS_PREFIXES):
        return scheduler
    raise ValueError(f"scheduler {scheduler!r}: use {', '.join(map(repr, SCHEDULERS))} or a Dask address like "
                     f"tcp://HOST:8786")


# Where the stacked model starts: step, file (under results/<profile>/) of each choice.
STACKED_SOURCES = {"distilled": ("distillation", "models", "best_student.keras"),
                   "pretrained": ("open_images", "models", "pretrained_student.keras"),
                   "baseline": ("baseline", "models", "student.keras")}

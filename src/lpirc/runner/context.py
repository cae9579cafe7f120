"""What a chapter notebook calls first: :func:`start_step`, and the :class:`StepContext` it returns.

This is the one runner module notebooks import, kept small on purpose: its code is part of every
step's cache key.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Image, display

from lpirc.paths import results_dir
from lpirc.results import save_figure, write_csv, write_json
from lpirc.runtime import set_seed
from lpirc.tfutil import quiet_tensorflow

@dataclasses.dataclass
class StepContext:
    step: str
    profile: str
    results: Path   # results/<profile>/
    out: Path       # where this step writes (a staging folder while the runner runs it)
    seed: int

    def input(self, step: str, *parts: str) -> Path:
        """A file another step wrote; a clear error if that step has not run."""
        path = self.results.joinpath(step, *parts)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run the {step!r} step first "
                                    f"(lpirc run --profile {self.profile} --only {step})")
        return path

    def path(self, *parts: str) -> Path:
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def relative(self, path) -> str:
        """A path this step wrote, relative to its folder (what metrics.json records: the folder moves
        from staging to results/<profile>/<step>/ when the step succeeds); a file another step wrote as
        ``../<that step>/...``, which stays true after the move."""
        path = Path(path)
        if path.is_relative_to(self.out):
            return str(path.relative_to(self.out))
        return str(Path("..") / path.relative_to(self.results))

    def save_table(self, frame, name: str) -> None:
        write_csv(self.path("tables", f"{name}.csv"), frame)

    def save_figure(self, fig, name: str, *, caption: str, alt: str, wide: bool = False) -> None:
        """Save the figure under figures/, show that very PNG in the notebook, close the figure.

        ``caption`` says what to see (MyST markdown; build it from the results, never type a number);
        ``alt`` says what the image shows, for a reader who cannot see it. Both travel in the display
        output's metadata (``{"lpirc": {...}}``), and ``lpirc book`` turns them into MyST-NB's cell
        metadata, so the book shows a numbered, captioned figure named ``fig-<step>-<name>``. ``wide``:
        a figure too detailed to shrink to a phone's width, shown at a legible size with a sideways
        scroll there instead (the book's CSS class ``lpirc-wide``)."""
        if not str(caption).strip() or not str(alt).strip():
            raise ValueError(f"figure {name!r}: give a caption (what to see) and alt text (what it shows)")
        path = save_figure(fig, self.path("figures", f"{name}.png"))
        plt.close(fig)
        meta = {"caption": " ".join(str(caption).split()), "alt": " ".join(str(alt).split()),
                "name": f"fig-{self.step}-{name}".replace("_", "-"), "wide": bool(wide)}
        display(Image(filename=str(path)), metadata={"lpirc": meta})

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path("metrics.json"), metrics)


def _die_with_runner() -> None:
    """Linux: have the kernel killed when the runner that started it dies (even by SIGKILL), so an
    orphaned kernel never writes into a staging folder the next run has already cleaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:                  # the runner is already gone
        os.kill(os.getpid(), signal.SIGKILL)


def _prepare_by_hand(step: str, profile: str, results: Path) -> Path:
    """A chapter opened by hand in Jupyter: on the smoke profile, make the results it reads first (the
    runner skips what is fresh); on others, say which command does. It writes to results/<profile>/by_hand/,
    never into the runner's own step folders."""
    command = [sys.executable, "-m", "lpirc", "run", "--profile", profile, "--upstream-of", step]
    if profile == "smoke":
        print("making the smoke profile's upstream results: " + " ".join(command[2:]), flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elif not (results / "run.json").exists():
        raise FileNotFoundError(f"no results for profile {profile!r}: run `lpirc run --profile {profile} "
                                f"--upstream-of {step}` first (or set profile = \"smoke\" to have them made here)")
    return results / "by_hand" / step


def start_step(step: str, profile: str, seed: int = 0) -> StepContext:
    """Locate results, seed everything (Python, numpy, TensorFlow, op determinism), quiet TF logs."""
    if os.environ.get("LPIRC_STEP_OUT"):   # run by the runner, not by hand
        _die_with_runner()
    results = results_dir(profile)
    out = Path(os.environ.get("LPIRC_STEP_OUT") or _prepare_by_hand(step, profile, results))
    out.mkdir(parents=True, exist_ok=True)
    quiet_tensorflow()
    set_seed(seed)
    return StepContext(step, profile, results, out, seed)

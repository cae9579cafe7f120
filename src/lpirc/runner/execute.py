"""Running the steps: one writer per profile, papermill per notebook, results swapped in whole.

Each step is one parameterized notebook. The runner merges and validates parameters for every step
before running anything, then executes the notebooks in order. A step writes into a staging folder
of its own (``results/<profile>/.staging/<step>.<pid>/``); only when its notebook finishes is that
folder swapped in as ``results/<profile>/<step>/``, so an interrupted or failed step never replaces
the previous results.

The swap is two renames (old results aside to ``.<step>.old``, staging into place) and then the
removal of the old folder. A run killed at any instant (even ``kill -9``) leaves one of: the old
results in place, the old results in ``.<step>.old`` with no ``<step>/`` (restored by the next run
or status), or the new results with an ``.old`` leftover (removed). :func:`recover` does that under
the profile's lock.

``results/<profile>/.lock`` is held with an OS file lock (``fcntl.flock``) for the whole run: it
dies with the process, so it never goes stale, and a second run of the same profile stops at once
naming the holder.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from lpirc import runinfo
from lpirc.choices import check_scheduler
from lpirc.paths import project_root, results_dir
from lpirc.results import read_json, write_json
from lpirc.runner.cache import key_inputs, key_of, step_status
from lpirc.runner.config import profile_scheduler, resolve_parameters
from lpirc.runner.params import ParameterError
from lpirc.runner.steps import STEPS, StepFailed, select_steps


class ProfileLocked(ParameterError):
    """Another process is running this profile."""


# --------------------------------------------------------------------------------------------------
# one writer per profile
@contextlib.contextmanager
def profile_lock(results: Path, profile: str, blocking: bool = False):
    """Hold ``results/<profile>/.lock`` exclusively; raise :class:`ProfileLocked` naming the holder."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            try:
                info = json.loads(holder)
                who = f"PID {info['pid']} on {info['host']}, started {info['started']} ({info['command']})"
            except (ValueError, KeyError):
                who = "another process"
            raise ProfileLocked(f"profile {profile!r} is being run by {who}; wait for it to finish or stop "
                                f"it (results/{profile}/ has one writer at a time; other profiles can run)") from None
        record = json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": runinfo.now_iso(),
                             "command": " ".join(sys.argv[:8])}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield
    finally:
        os.close(fd)                         # closing the descriptor releases the lock


# --------------------------------------------------------------------------------------------------
# swapping results in, and recovering from a kill at any point of it
def _failpoint(name: str) -> None:
    """Fault injection for the tests: LPIRC_KILL_AT=<name> kills this process here with SIGKILL."""
    if os.environ.get("LPIRC_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _remove_tree(folder: Path) -> None:
    """rmtree, file by file, with a failpoint after the first file (a kill mid-removal)."""
    first = True
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
            if first:
                _failpoint("mid-remove-old")
                first = False
    folder.rmdir()


def swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging``: old aside, new into place, old removed."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        _remove_tree(old)
    _failpoint("before-swap")
    if final.exists():
        os.replace(final, old)
    _failpoint("after-old-aside")
    os.replace(staging, final)
    _failpoint("after-new-in-place")
    if old.exists():
        _remove_tree(old)
    _failpoint("after-swap")


def recover(results: Path) -> list[str]:
    """Undo what a killed run left: restore ``.<step>.old`` where ``<step>/`` is missing, remove
    ``.old`` leftovers beside complete results and every staging folder. Call under the lock."""
    actions = []
    for old in sorted(results.glob(".*.old")):
        final = results / old.name[1:-len(".old")]
        if final.exists():
            shutil.rmtree(old)
            actions.append(f"removed leftover {old.name}")
        else:
            os.replace(old, final)
            actions.append(f"restored {final.name}/ from an interrupted swap")
    staging = results / ".staging"
    if staging.exists():
        shutil.rmtree(staging)
    return actions


# --------------------------------------------------------------------------------------------------
# running
@contextlib.contextmanager
def _environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tag_for_book(notebook: Path) -> None:
    """In the executed copy, show the parameters actually used (papermill's injected cell, collapsed)
    and drop the notebook's own defaults, which the injected values override."""
    nb = json.loads(notebook.read_text())
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
        elif injected and "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    notebook.write_text(json.dumps(nb, indent=1))


def _update_run_json(results: Path, profile: str, root: Path, merged: dict, budgets: dict,
                     step_records: dict) -> None:
    path = results / "run.json"
    record = read_json(path) if path.exists() else {}
    record.update({
        "profile": profile,
        "updated": runinfo.now_iso(),
        "git": runinfo.git_state(root),
        "packages": runinfo.package_versions(),
        "host": runinfo.host_record(),
        "parameters": merged,
        "budgets_s": budgets,
    })
    steps = record.setdefault("steps", {})
    steps.update(step_records)
    record["total_wall_s"] = sum(s.get("wall_s", 0) for s in steps.values() if s.get("status") == "ok")
    write_json(path, record)


def _print(msg: str) -> None:
    print(msg, flush=True)


def _papermill_logging(progress: bool) -> None:
    logger = logging.getLogger("papermill")
    if progress and not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run(profile: str = "default", only: list[str] | None = None, start: str | None = None,
        overrides: list[str] | None = None, force: list[str] | bool | None = None,
        root: Path | None = None, progress: bool = True, scheduler: str | None = None) -> dict:
    """Run the pipeline; returns {step: record}. Raises ParameterError (ProfileLocked) before anything
    runs, or StepFailed naming the step and the notebook that holds the traceback.

    ``scheduler``: where grid tasks run (lpirc.grid); else $LPIRC_SCHEDULER, else the profile's
    ``scheduler:``, else 'local'. Not part of the cache key: results do not depend on it."""
    root = Path(root or project_root())
    steps = select_steps(only, start)
    merged, budgets = resolve_parameters(root, profile, overrides)
    results = results_dir(profile, root)
    try:
        scheduler = check_scheduler(scheduler or os.environ.get("LPIRC_SCHEDULER")
                                    or profile_scheduler(root, profile) or "local")
    except ValueError as exc:
        raise ParameterError(f"--scheduler: {exc}") from None
    with profile_lock(results, profile):
        for action in recover(results):
            _print(f"recovered: {action}")
        return _run_locked(root, profile, steps, merged, budgets, results, force, progress, scheduler)


def _run_locked(root, profile, steps, merged, budgets, results, force, progress, scheduler) -> dict:
    import papermill as pm

    forced = set(s.name for s in STEPS) if force is True else set(force or [])
    _papermill_logging(progress)
    records: dict[str, dict] = {}
    run_start = time.perf_counter()
    for index, step in enumerate(steps, start=1):
        values = merged[step.name]
        state, why = step_status(root, results, step, values)
        if state == "fresh" and step.name not in forced:
            _print(f"[{index}/{len(steps)}] {step.name}: fresh, skipped (results/{profile}/{step.name})")
            continue
        reason = "forced" if step.name in forced else why
        _print(f"\n=== [{index}/{len(steps)}] {step.name} ({reason}) — "
               f"{time.perf_counter() - run_start:.0f} s elapsed ===")
        staging = results / ".staging" / f"{step.name}.{os.getpid()}"
        staging.mkdir(parents=True)
        executed = staging / step.notebook
        failed_copy = results / f"{step.name}.failed.ipynb"
        inputs = key_inputs(root, results, step, values)
        t0 = time.perf_counter()
        started = runinfo.now_iso()
        memory = runinfo.PeakMemory()
        try:
            with memory, _environ(LPIRC_ROOT=root, LPIRC_RESULTS_DIR=results, LPIRC_STEP_OUT=staging, LPIRC_SCHEDULER=scheduler,
                          TF_CPP_MIN_LOG_LEVEL=3, TF_USE_LEGACY_KERAS=1, TF_DETERMINISTIC_OPS=1,
                          PYTHONHASHSEED=values.get("seed", 0)):
                pm.execute_notebook(str(root / "notebooks" / step.notebook), str(executed),
                                    parameters=values, kernel_name="python3", cwd=str(root),
                                    progress_bar=progress, log_output=progress, report_mode=False)
        except pm.PapermillExecutionError as exc:
            if executed.exists():
                os.replace(executed, failed_copy)
            shutil.rmtree(staging, ignore_errors=True)
            records[step.name] = {"status": "failed", "started": started,
                                  "wall_s": time.perf_counter() - t0, "error": f"{exc.ename}: {exc.evalue}"}
            _update_run_json(results, profile, root, merged, budgets, records)
            raise StepFailed(step.name, exc.ename, exc.evalue, failed_copy) from None
        except BaseException:
            # Ctrl-C, SIGTERM or a crash of the kernel: previous results stay as they were.
            shutil.rmtree(staging, ignore_errors=True)
            raise
        wall = time.perf_counter() - t0
        _tag_for_book(executed)
        write_json(staging / "stamp.json", {"step": step.name, "key": key_of(inputs), "inputs": inputs,
                                            "started": started, "wall_s": wall})
        swap_in(staging, results / step.name)
        if failed_copy.exists():
            failed_copy.unlink()
        budget = budgets.get(step.name)
        records[step.name] = {"status": "ok", "started": started, "wall_s": wall, "budget_s": budget,
                              "scheduler": scheduler, "peak_memory_mb": memory.peak_mb,
                              "commit": runinfo.git_state(root)["commit"],
                              "notebook": f"{step.name}/{step.notebook}"}
        _update_run_json(results, profile, root, merged, budgets, records)
        over = f" — over its {budget} s budget" if budget and wall > budget else ""
        _print(f"=== {step.name} done in {wall:.0f} s{over} ===")
    shutil.rmtree(results / ".staging", ignore_errors=True)
    return records


def status(profile: str = "default", root: Path | None = None) -> list[tuple[str, str, str]]:
    """(step, fresh | stale | missing, why) for every step. Works while a run holds the lock (read
    only); otherwise it first repairs what a killed run left."""
    root = Path(root or project_root())
    merged, _ = resolve_parameters(root, profile)
    results = results_dir(profile, root)
    if results.exists():
        with contextlib.suppress(ProfileLocked), profile_lock(results, profile):
            recover(results)
    rows, not_fresh = [], set()
    for s in STEPS:
        state, why = step_status(root, results, s, merged[s.name])
        waiting = [dep for dep in s.reads if dep in not_fresh]
        if state == "fresh" and waiting:
            # its own key still matches, but it will change once the steps it reads are rerun
            state, why = "stale", "upstream stale: " + ", ".join(waiting)
        if state != "fresh":
            not_fresh.add(s.name)
        rows.append((s.name, state, why))
    return rows

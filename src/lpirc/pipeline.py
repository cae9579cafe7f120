"""The pipeline: steps, their notebooks, running them with papermill, caching and provenance.

Each step is one parameterized notebook. The runner merges and validates parameters for every step
before running anything, then executes the notebooks in order. A step writes into a staging folder;
only when its notebook finishes is the staging folder swapped in as ``results/<profile>/<step>/``, so
an interrupted or failed step never replaces the previous results. ``stamp.json`` in each step folder
holds the content key (notebook, parameters, package code, upstream stamps) that makes unchanged
steps skip on the next run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from lpirc import params as P
from lpirc import runinfo
from lpirc.results import read_json, write_json


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    notebook: str        # file name in notebooks/
    reads: tuple = ()    # steps whose results this step reads (its cache depends on their stamps)
    title: str = ""


STEPS = (
    Step("data", "00_data.ipynb", (), "Datasheet: the embedded dataset"),
    Step("baseline", "01_baseline.ipynb", ("data",), "Baseline student and teachers"),
    Step("quantization", "10_quantization.ipynb", ("data", "baseline"), "Quantization"),
    Step("factorization", "20_factorization.ipynb", ("data", "baseline"), "Low-rank factorization"),
    Step("distillation", "30_distillation.ipynb", ("data", "baseline"), "Knowledge distillation"),
    Step("open_images", "40_open_images.ipynb", ("data", "baseline"), "Open Images pretraining"),
    Step("benchmark", "50_benchmark.ipynb", ("quantization", "factorization"), "Benchmark"),
    Step("stacked", "60_stacked.ipynb", ("data", "baseline", "quantization", "distillation", "open_images",
                                         "benchmark"), "The stacked model"),
    Step("summary", "90_summary.ipynb", ("baseline", "quantization", "factorization", "distillation", "open_images",
                                         "benchmark", "stacked"), "Summary"),
)
RESERVED_PROFILE_KEYS = ("budgets_s", "description")
# Where the stacked model starts: step, file (under results/<profile>/) of each choice.
STACKED_SOURCES = {"distilled": ("distillation", "models", "best_student.keras"),
                   "pretrained": ("open_images", "models", "pretrained_student.keras"),
                   "baseline": ("baseline", "models", "student.keras")}


class StepFailed(RuntimeError):
    def __init__(self, step: str, ename: str, evalue: str, notebook: Path):
        self.step, self.ename, self.evalue, self.notebook = step, ename, evalue, notebook
        super().__init__(f"step {step!r} failed: {ename}: {evalue} (traceback in {notebook})")


# --------------------------------------------------------------------------------------------------
# paths
def project_root() -> Path:
    """The project folder: $LPIRC_ROOT, else the nearest parent of the cwd with _toc.yml and src/lpirc,
    else the checkout this package was imported from."""
    if env := os.environ.get("LPIRC_ROOT"):
        return Path(env).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "_toc.yml").exists() and (folder / "src" / "lpirc").exists():
            return folder
    return Path(__file__).resolve().parents[2]


def steps_by_name() -> dict[str, Step]:
    return {s.name: s for s in STEPS}


def results_dir(profile: str, root: Path | None = None) -> Path:
    if env := os.environ.get("LPIRC_RESULTS_DIR"):
        return Path(env)
    return (root or project_root()) / "results" / profile


# --------------------------------------------------------------------------------------------------
# what a notebook calls first
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

    def save_table(self, frame, name: str) -> None:
        from lpirc.results import write_csv
        write_csv(self.path("tables", f"{name}.csv"), frame)

    def save_figure(self, fig, name: str) -> None:
        """Save the figure under figures/, show that very PNG in the notebook, close the figure."""
        import matplotlib.pyplot as plt
        from IPython.display import Image, display
        from lpirc.results import save_figure

        path = save_figure(fig, self.path("figures", f"{name}.png"))
        plt.close(fig)
        display(Image(filename=str(path)))

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path("metrics.json"), metrics)


def start_step(step: str, profile: str, seed: int = 0) -> StepContext:
    """Locate results, seed everything (Python, numpy, TensorFlow, op determinism), quiet TF logs."""
    results = results_dir(profile)
    out = Path(os.environ.get("LPIRC_STEP_OUT") or results / step)
    out.mkdir(parents=True, exist_ok=True)
    from lpirc.tfutil import quiet_tensorflow
    quiet_tensorflow()
    from lpirc.models import set_seed
    set_seed(seed)
    return StepContext(step, profile, results, out, seed)


# --------------------------------------------------------------------------------------------------
# parameters of all steps
def step_parameters(root: Path) -> dict[str, dict[str, P.Param]]:
    out = {}
    for step in STEPS:
        nb = root / "notebooks" / step.notebook
        if not nb.exists():
            raise FileNotFoundError(f"notebook {nb} for step {step.name!r} is missing")
        out[step.name] = P.notebook_parameters(nb)
    return out


def resolve_parameters(root: Path, profile: str, overrides: list[str] | None = None) -> tuple[dict, dict]:
    """(merged parameters per step, budgets) for a profile plus --set overrides; validated."""
    prof = P.load_profile(root / "params" / f"{profile}.yaml")
    budgets = prof.get("budgets_s", {}) or {}
    prof = {k: v for k, v in prof.items() if k not in RESERVED_PROFILE_KEYS}
    merged = P.merge(step_parameters(root), prof, P.parse_set(overrides or []))
    for step, values in merged.items():
        if "profile" in values:
            values["profile"] = profile
    _check_cross_step(merged)
    return merged, budgets


def _check_cross_step(merged: dict) -> None:
    """Checks that need more than one value: choices, folders that must exist, names across steps."""
    d = merged.get("data", {})
    if d.get("source") not in (None, "embedded", "folders"):
        raise P.ParameterError(f"data.source = {d.get('source')!r}: must be 'embedded' (generated) or "
                               "'folders' (real image folders, see book/reproduce.md)")
    if d.get("source") == "folders":
        for key in ("train_dir", "val_dir", "holdout_dir", "extra_dir", "val_labels_file"):
            value = d.get(key)
            if key in ("train_dir", "val_dir") and not value:
                raise P.ParameterError(f"data.{key} is required when data.source is 'folders'")
            if value and not Path(value).exists():
                raise P.ParameterError(f"data.{key} = {value!r} does not exist; fix the path in the "
                                       "profile or check the copy with `lpirc data verify`")
    source = merged.get("stacked", {}).get("source")
    if source is not None and source not in STACKED_SOURCES:
        raise P.ParameterError(f"stacked.source = {source!r}: must be one of {', '.join(STACKED_SOURCES)}")
    teachers = {t["name"] for t in merged.get("baseline", {}).get("teachers", [])}
    for step, values in merged.items():
        if step == "baseline":
            continue
        for key in ("teacher", "teachers"):
            for name in ([values[key]] if key == "teacher" else values[key]) if key in values else []:
                if name not in teachers:
                    raise P.ParameterError(f"{step}.{key}: unknown teacher {name!r}; baseline trains: "
                                           f"{', '.join(sorted(teachers))} (add it to baseline.teachers or pick one)")


# --------------------------------------------------------------------------------------------------
# cache keys
def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted((root / "src" / "lpirc").rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def key_inputs(root: Path, results: Path, step: Step, values: dict, code: str) -> dict:
    upstream = {}
    for dep in step.reads:
        stamp = results / dep / "stamp.json"
        upstream[dep] = read_json(stamp)["key"] if stamp.exists() else None
    return {"notebook": _sha256_bytes((root / "notebooks" / step.notebook).read_bytes()),
            "params": values, "code": code, "upstream": upstream}


def key_of(inputs: dict) -> str:
    return _sha256_bytes(json.dumps(inputs, sort_keys=True, default=str).encode())


def step_status(root: Path, results: Path, step: Step, values: dict, code: str) -> tuple[str, str]:
    """("fresh" | "stale" | "missing", why)."""
    stamp_path = results / step.name / "stamp.json"
    if not stamp_path.exists():
        return "missing", "never run"
    stamp = read_json(stamp_path)
    now = key_inputs(root, results, step, values, code)
    if key_of(now) == stamp.get("key"):
        return "fresh", ""
    old = stamp.get("inputs", {})
    reasons = []
    if old.get("notebook") != now["notebook"]:
        reasons.append("notebook changed")
    changed = sorted(k for k in set(now["params"]) | set(old.get("params", {}))
                     if now["params"].get(k) != old.get("params", {}).get(k))
    if changed:
        reasons.append("parameters changed: " + ", ".join(changed))
    if old.get("code") != now["code"]:
        reasons.append("package code changed")
    for dep, k in now["upstream"].items():
        if k is None:
            reasons.append(f"{dep} has no results")
        elif old.get("upstream", {}).get(dep) != k:
            reasons.append(f"{dep} results changed")
    return "stale", "; ".join(reasons) or "key changed"


# --------------------------------------------------------------------------------------------------
# running
def select_steps(only: list[str] | None, start: str | None) -> list[Step]:
    names = [s.name for s in STEPS]
    for n in (only or []) + ([start] if start else []):
        if n not in names:
            raise P.ParameterError(f"unknown step {n!r}; steps: {', '.join(names)}")
    if only:
        return [s for s in STEPS if s.name in only]
    if start:
        return list(STEPS[names.index(start):])
    return list(STEPS)


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


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames; the old folder is removed last."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)


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


def run(profile: str = "default", only: list[str] | None = None, start: str | None = None,
        overrides: list[str] | None = None, force: list[str] | bool | None = None,
        root: Path | None = None, progress: bool = True) -> dict:
    """Run the pipeline; returns {step: record}. Raises ParameterError before anything runs, or
    StepFailed naming the step and the notebook that holds the traceback."""
    import papermill as pm

    root = Path(root or project_root())
    steps = select_steps(only, start)
    merged, budgets = resolve_parameters(root, profile, overrides)
    results = results_dir(profile, root)
    results.mkdir(parents=True, exist_ok=True)
    code = code_digest(root)
    forced = set(s.name for s in STEPS) if force is True else set(force or [])

    logger = logging.getLogger("papermill")
    if progress and not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

    records: dict[str, dict] = {}
    run_start = time.perf_counter()
    for index, step in enumerate(steps, start=1):
        values = merged[step.name]
        status, why = step_status(root, results, step, values, code)
        if status == "fresh" and step.name not in forced:
            _print(f"[{index}/{len(steps)}] {step.name}: fresh, skipped (results/{profile}/{step.name})")
            continue
        reason = "forced" if step.name in forced else why
        _print(f"\n=== [{index}/{len(steps)}] {step.name} ({reason}) — "
               f"{time.perf_counter() - run_start:.0f} s elapsed ===")
        staging = results / ".staging" / step.name
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        executed = staging / step.notebook
        failed_copy = results / f"{step.name}.failed.ipynb"
        inputs = key_inputs(root, results, step, values, code)
        t0 = time.perf_counter()
        started = runinfo.now_iso()
        try:
            with _environ(LPIRC_ROOT=root, LPIRC_RESULTS_DIR=results, LPIRC_STEP_OUT=staging,
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
        _swap_in(staging, results / step.name)
        if failed_copy.exists():
            failed_copy.unlink()
        budget = budgets.get(step.name)
        records[step.name] = {"status": "ok", "started": started, "wall_s": wall, "budget_s": budget,
                              "notebook": f"{step.name}/{step.notebook}"}
        _update_run_json(results, profile, root, merged, budgets, records)
        over = f" — over its {budget} s budget" if budget and wall > budget else ""
        _print(f"=== {step.name} done in {wall:.0f} s{over} ===")
    shutil.rmtree(results / ".staging", ignore_errors=True)
    return records


def status(profile: str = "default", root: Path | None = None) -> list[tuple[str, str, str]]:
    root = Path(root or project_root())
    merged, _ = resolve_parameters(root, profile)
    results = results_dir(profile, root)
    code = code_digest(root)
    return [(s.name, *step_status(root, results, s, merged[s.name], code)) for s in STEPS]

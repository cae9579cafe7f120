"""The step cache reruns what changed and nothing else; one writer per profile; a kill loses nothing."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lpirc.results import read_json
from lpirc.runner import cache, execute, steps

ALL = {s.name for s in steps.STEPS}


def run_cli(project, *args, env=None, timeout=300):
    env = {**os.environ, "LPIRC_ROOT": str(project), **(env or {})}
    env.pop("LPIRC_RESULTS_DIR", None)
    return subprocess.run([sys.executable, "-m", "lpirc", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


def stale_steps(project, profile="smoke") -> dict[str, str]:
    return {name: why for name, state, why in execute.status(profile, root=project) if state != "fresh"}


# --------------------------------------------------------------------------------------------------
# the import graph (no notebooks run)
def test_import_graph_of_the_notebooks(root):
    rows = {m: (direct, stale) for m, direct, stale in cache.explain(root)}
    for unused in ("lpirc/runner/cli.py", "lpirc/fetch.py", "lpirc/runner/execute.py", "lpirc/runner/cache.py"):
        assert rows[unused] == ([], []), unused
    assert set(rows["lpirc/factorize.py"][0]) == {"factorization", "stacked"}
    assert set(rows["lpirc/factorize.py"][1]) == steps.downstream({"factorization", "stacked"})
    assert set(rows["lpirc/runner/context.py"][0]) == ALL        # every notebook calls start_step
    # the science never imports the runner
    for module, (direct, _) in rows.items():
        if not module.startswith("lpirc/runner/") and module != "lpirc/__main__.py":  # entry point
            imported = cache._imported_names((root / "src" / module).read_text())
            assert not any(n == "lpirc.runner" or n.startswith("lpirc.runner.") for n in imported), module


# The lowest layers (pyproject.toml [tool.importlinter]): core utilities, statistics, the runtime, the
# data step's modules, and the runner module every notebook calls first. Only these may stale every step.
LOWEST_LAYERS = {"lpirc/__init__.py", "lpirc/paths.py", "lpirc/choices.py", "lpirc/errors.py", "lpirc/plots.py",
                 "lpirc/reference.py", "lpirc/report.py", "lpirc/results.py", "lpirc/runinfo.py", "lpirc/claims.py",
                 "lpirc/stats.py",
                 "lpirc/tfutil.py", "lpirc/runtime.py", "lpirc/grid.py", "lpirc/loaders.py", "lpirc/stream.py",
                 "lpirc/data.py", "lpirc/runner/__init__.py", "lpirc/runner/context.py"}
# The one exception: every chapter ends with its "what to take away" points (lpirc.takeaways, one module
# for all chapters), so an edit to any chapter's takeaway reruns every step. It imports only the lowest
# layers (claims, stats, report), so no timing, data or training code rides along with it.
KNOWN_EXCEPTIONS = {"lpirc/takeaways.py"}
TRAINING = {"baseline", "quantization", "factorization", "distillation", "open_images", "stacked"}


def test_only_the_lowest_layers_stale_every_step(root):
    rows = {m: stale for m, _, stale in cache.explain(root)}
    assert {m for m, stale in rows.items() if set(stale) == ALL} <= LOWEST_LAYERS | KNOWN_EXCEPTIONS
    # the per-layer profiler feeds the benchmark alone: no training reruns
    assert set(rows["lpirc/profiler.py"]) == steps.downstream({"benchmark"})
    assert not set(rows["lpirc/profiler.py"]) & TRAINING
    assert not set(rows["lpirc/distill.py"]) & {"data", "baseline", "quantization", "factorization"}


def fabricate_stamps(root: Path, profile: str = "smoke") -> None:
    """Every step's stamp as a run would have written it from the current inputs (no notebook runs)."""
    results = root / "results" / profile
    merged, _ = execute.resolve_parameters(root, profile)
    for step in steps.STEPS:                       # in pipeline order: upstream stamps exist first
        inputs = cache.key_inputs(root, results, step, merged[step.name])
        (results / step.name).mkdir(parents=True, exist_ok=True)
        (results / step.name / "stamp.json").write_text(json.dumps({"key": cache.key_of(inputs), "inputs": inputs},
                                                                   default=str))


def test_editing_the_profiler_or_distillation_reruns_only_their_steps(project_copy):
    """A comment appended to a module makes exactly the steps importing it, and what reads them, stale."""
    fabricate_stamps(project_copy)
    assert stale_steps(project_copy) == {}

    def stale_after_editing(name: str) -> dict[str, str]:
        module = project_copy / "src" / "lpirc" / name
        saved = module.read_text()
        module.write_text(saved + "\n# a comment\n")
        try:
            return stale_steps(project_copy)
        finally:
            module.write_text(saved)

    stale = stale_after_editing("profiler.py")
    assert set(stale) == steps.downstream({"benchmark"}), stale     # the benchmark and what reads it
    assert not set(stale) & TRAINING                                # every training step stays fresh
    assert stale["benchmark"] == "code changed: lpirc/profiler.py"
    assert all(why.startswith("upstream stale: ") for step, why in stale.items() if step != "benchmark")
    stale = stale_after_editing("distill.py")
    assert set(stale) == steps.downstream({"distillation", "open_images"}), stale
    assert stale["distillation"] == stale["open_images"] == "code changed: lpirc/distill.py"
    assert stale["stacked"] == "upstream stale: distillation, open_images"   # reads their students
    assert not set(stale) & {"data", "baseline", "quantization", "factorization"}
    assert stale_steps(project_copy) == {}


def test_steps_that_use_reference_figures_declare_them(root):
    for step in steps.STEPS:
        if "lpirc/reference.py" in cache.step_modules(root, step):
            assert step.files, f"{step.name} imports lpirc.reference but declares no reference files"


def test_status_names_every_kind_of_change(project_copy, monkeypatch):
    """Fabricate a stamp from the current inputs, then change one input at a time."""
    root = project_copy
    results = root / "results" / "smoke"
    merged, _ = execute.resolve_parameters(root, "smoke")
    step = steps.steps_by_name()["quantization"]
    for name in step.reads:                       # upstream stamps, so the key is complete
        (results / name).mkdir(parents=True)
        (results / name / "stamp.json").write_text(json.dumps({"key": name}))
    inputs = cache.key_inputs(root, results, step, merged[step.name])
    (results / step.name).mkdir()
    (results / step.name / "stamp.json").write_text(json.dumps({"key": cache.key_of(inputs), "inputs": inputs}))
    status = lambda: cache.step_status(root, results, step, merged[step.name])  # noqa: E731
    assert status() == ("fresh", "")

    with open(root / "src" / "lpirc" / "runner" / "cli.py", "a") as f:
        f.write("\n# a comment\n")
    assert status() == ("fresh", "")
    quantize = root / "src" / "lpirc" / "quantize.py"
    saved = quantize.read_text()
    quantize.write_text(saved + "\n# a comment\n")
    assert status() == ("stale", "code changed: lpirc/quantize.py")
    quantize.write_text(saved)
    assert status() == ("fresh", "")

    csv = root / "reference" / "mobilenet_v1_published.csv"
    saved = csv.read_text()
    csv.write_text(saved + "\n")
    assert status() == ("stale", "reference changed: reference/mobilenet_v1_published.csv")
    csv.write_text(saved)

    versions = dict(cache.key_package_versions(), tensorflow="2.99.0")
    monkeypatch.setattr(cache, "key_package_versions", lambda: versions)
    state, why = status()
    assert state == "stale" and why == f"tensorflow {inputs['packages']['tensorflow']} -> 2.99.0"


def test_folder_digest_notices_a_changed_dataset(tmp_path):
    folder = tmp_path / "train" / "n01440764"
    folder.mkdir(parents=True)
    (folder / "a.JPEG").write_bytes(b"x" * 10)
    before = cache.folder_inputs({"train_dir": str(tmp_path / "train"), "seed": 0})
    assert set(before) == {"train_dir"}
    (folder / "b.JPEG").write_bytes(b"y")
    assert cache.folder_inputs({"train_dir": str(tmp_path / "train")}) != before


# --------------------------------------------------------------------------------------------------
# on a complete smoke run
@pytest.mark.slow
def test_editing_unused_code_keeps_every_step_fresh(smoke_alone):
    project, _, _ = smoke_alone
    assert stale_steps(project) == {}
    touched = [project / "src" / "lpirc" / "runner" / "cli.py", project / "src" / "lpirc" / "fetch.py"]
    saved = {p: p.read_text() for p in touched}
    try:
        for p in touched:
            p.write_text(saved[p] + "\n# a comment\n")
        assert stale_steps(project) == {}
    finally:
        for p, text in saved.items():
            p.write_text(text)


@pytest.mark.slow
def test_editing_factorize_makes_exactly_its_steps_stale(smoke_alone):
    project, _, _ = smoke_alone
    module = project / "src" / "lpirc" / "factorize.py"
    saved = module.read_text()
    try:
        module.write_text(saved + "\n# a comment\n")
        stale = stale_steps(project)
        assert set(stale) == {"factorization", "stacked", "benchmark", "rule", "summary"}, stale
        assert stale["factorization"] == "code changed: lpirc/factorize.py"
        assert stale["stacked"] == "code changed: lpirc/factorize.py"
        assert stale["benchmark"] == "upstream stale: factorization, stacked"   # stale by what it reads only
        assert stale["rule"] == "upstream stale: benchmark, factorization"
        assert stale["summary"] == "upstream stale: factorization, benchmark, stacked, rule"
    finally:
        module.write_text(saved)
    assert stale_steps(project) == {}


# --------------------------------------------------------------------------------------------------
# one writer per profile
@pytest.mark.slow
def test_a_second_run_of_a_profile_is_refused_naming_the_holder(toy_copy):
    """On the toy data step of conftest.py: the lock does not depend on what a step computes."""
    project_copy = toy_copy
    results = project_copy / "results" / "smoke"
    shutil_profile = project_copy / "params" / "smoke_b.yaml"
    shutil_profile.write_text((project_copy / "params" / "smoke.yaml").read_text())
    with execute.profile_lock(results, "smoke"):
        t0 = time.perf_counter()
        r = run_cli(project_copy, "run", "--profile", "smoke", "--only", "data")
        assert r.returncode == 2, r.stderr
        assert f"profile 'smoke' is being run by PID {os.getpid()}" in r.stderr
        assert time.perf_counter() - t0 < 30 and "===" not in r.stdout
        s = run_cli(project_copy, "status", "--profile", "smoke")       # status still works
        assert s.returncode == 0 and "data" in s.stdout
        other = run_cli(project_copy, "run", "--profile", "smoke_b", "--only", "data")   # side by side
        assert other.returncode == 0, other.stderr
    assert (project_copy / "results" / "smoke_b" / "data" / "stamp.json").exists()
    with execute.profile_lock(results, "smoke"):     # released with its holder: free again
        pass


# --------------------------------------------------------------------------------------------------
# killed at any instant
KILL_SIZES = ["--set", "data.val_size=60", "--set", "data.holdout_size=60", "--set", "data.extra_size=60"]


def consistent(results: Path) -> int:
    """The data step's results are whole: its stamp and its files agree. Returns train_size."""
    stamp = read_json(results / "data" / "stamp.json")
    dataset = read_json(results / "data" / "dataset.json")
    n = stamp["inputs"]["params"]["train_size"]
    assert dataset["splits"]["train"]["n"] == n
    assert (results / "data" / "00_data.ipynb").exists()
    return n


def fake_step_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "stamp.json").write_text(json.dumps({"key": str(n), "inputs": {"params": {"train_size": n}}}))
    (folder / "dataset.json").write_text(json.dumps({"splits": {"train": {"n": n}}}))
    (folder / "00_data.ipynb").write_text("{}")
    for i in range(5):
        (folder / f"part{i}.npy").write_bytes(b"x" * 1000)
    return folder


SWAP_POINTS = {"before-swap": "old", "after-old-aside": "old", "after-new-in-place": "new",
               "mid-remove-old": "new", "after-swap": "new"}


@pytest.mark.parametrize("point", SWAP_POINTS)
def test_sigkill_inside_the_swap_leaves_old_or_new_results(project_copy, point):
    """Each instant of the swap (fault injection: LPIRC_KILL_AT), then status repairs what is left."""
    results = project_copy / "results" / "smoke"
    fake_step_folder(results / "data", 1)
    staging = fake_step_folder(results / ".staging" / "data.999", 2)
    code = f"from pathlib import Path; from lpirc.runner.execute import swap_in; " \
           f"swap_in(Path({str(staging)!r}), Path({str(results / 'data')!r}))"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "LPIRC_KILL_AT": point}, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    if point == "after-old-aside":
        assert not (results / "data").exists()              # the state the next run must repair
    status = run_cli(project_copy, "status", "--profile", "smoke")
    assert status.returncode == 0, status.stderr
    assert consistent(results) == {"old": 1, "new": 2}[SWAP_POINTS[point]]
    assert not list(results.glob(".*.old")) and not (results / ".staging").exists()


@pytest.mark.slow
def test_sigkill_at_random_points_of_a_smoke_step(toy_copy):
    """A real run of a data step killed at random instants (8 here, 5 more inside the swap above): the
    toy data step of conftest.py, which writes its files over a while without TensorFlow."""
    project_copy = toy_copy
    results = project_copy / "results" / "smoke"
    env = {**os.environ, "LPIRC_ROOT": str(project_copy)}
    t0 = time.perf_counter()
    first = run_cli(project_copy, "run", "--profile", "smoke", "--only", "data", *KILL_SIZES,
                    "--set", "data.train_size=110")
    step_time = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr
    previous = consistent(results)
    rng = random.Random(0)
    outcomes = []
    for i in range(8):
        delay = rng.uniform(0.2, step_time * 1.05)
        size = 120 + 10 * i                      # every attempt asks for new results
        proc = subprocess.Popen([sys.executable, "-m", "lpirc", "run", "--profile", "smoke", "--only", "data",
                                 *KILL_SIZES, "--set", f"data.train_size={size}"],
                                cwd=project_copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        status = run_cli(project_copy, "status", "--profile", "smoke")
        assert status.returncode == 0, status.stderr
        line = status.stdout.splitlines()[0]
        assert line.startswith("data") and ("fresh" in line or "stale" in line), (delay, line)
        now = consistent(results)
        assert now in (previous, size), (delay, now, previous, size)
        assert not list(results.glob(".*.old")) and not (results / ".staging").exists()
        outcomes.append("new" if now == size else "old")
        previous = now
    assert "old" in outcomes                     # some kills landed mid-step

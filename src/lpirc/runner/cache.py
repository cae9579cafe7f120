"""Cache keys: a step is fresh when nothing it depends on changed since its results were written.

A step's key covers exactly what its results depend on:

- its notebook file and its merged parameters;
- the package code its notebook imports, followed through every ``lpirc`` import of those modules
  (static analysis of the import graph: imports inside functions count too), not every file of the
  package, so editing the CLI or the fetcher leaves the results fresh;
- the repository files it declares (``Step.files``, e.g. ``reference/*.csv``);
- the installed versions of the packages that compute the numbers (:data:`KEY_PACKAGES`);
- for parameters naming a folder or file (``*_dir``, ``*_file``), a digest of the file list (names,
  sizes, modification times), so a changed dataset folder is noticed without rehashing images;
- the keys of the steps whose results it reads.

``stamp.json`` in each step folder stores the inputs, so :func:`step_status` can say what changed.
"""
from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from lpirc.results import read_json
from lpirc.runinfo import package_versions
from lpirc.runner.steps import STEPS, Step, downstream

KEY_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert")
PACKAGE = "lpirc"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# the import graph
def _imported_names(source: str) -> set[str]:
    """Dotted names of the ``lpirc`` modules (or module attributes) imported anywhere in ``source``."""
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == PACKAGE:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _module_file(src: Path, dotted: str) -> Path | None:
    parts = dotted.split(".")
    base = src.joinpath(*parts)
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None                              # an attribute (function, class), not a module


def notebook_code(notebook: Path) -> str:
    """The notebook's code cells as one Python source (IPython magics and shell lines dropped)."""
    nb = json.loads(Path(notebook).read_text())
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            lines += [l for l in "".join(cell["source"]).splitlines() if not l.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def module_closure(src: Path, source: str) -> list[Path]:
    """Every package file that running ``source`` may execute: imported modules, transitively, and
    the ``__init__.py`` of each package on the way."""
    seen: set[Path] = set()
    todo = list(_imported_names(source))
    while todo:
        dotted = todo.pop()
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):      # importing a.b.c runs a/__init__, a/b/__init__, a/b/c
            path = _module_file(src, ".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo += list(_imported_names(path.read_text()))
    return sorted(seen)


def step_modules(root: Path, step: Step) -> list[str]:
    """Package files (relative to src/, e.g. ``lpirc/factorize.py``) a step's notebook depends on."""
    src = root / "src"
    return [p.relative_to(src).as_posix()
            for p in module_closure(src, notebook_code(root / "notebooks" / step.notebook))]


# --------------------------------------------------------------------------------------------------
# the other inputs
def declared_files(root: Path, step: Step) -> dict[str, str]:
    out = {}
    for pattern in step.files:
        for path in sorted(root.glob(pattern)):
            out[path.relative_to(root).as_posix()] = sha256_bytes(path.read_bytes())
    return out


@lru_cache(maxsize=None)
def key_package_versions() -> dict[str, str | None]:
    return package_versions(KEY_PACKAGES)


def folder_listing_digest(path: Path) -> str:
    """Names, sizes and modification times of every file under ``path`` (or of the file itself)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(path) if p != path else p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def folder_inputs(values: dict) -> dict[str, str]:
    out = {}
    for key, value in sorted(values.items()):
        if key.endswith(("_dir", "_file")) and isinstance(value, str) and value and Path(value).exists():
            out[key] = folder_listing_digest(Path(value))
    return out


def key_inputs(root: Path, results: Path, step: Step, values: dict) -> dict:
    src = root / "src"
    upstream = {}
    for dep in step.reads:
        stamp = stamp_path(results, dep)
        upstream[dep] = read_json(stamp)["key"] if stamp else None
    return {"notebook": sha256_bytes((root / "notebooks" / step.notebook).read_bytes()),
            "params": values,
            "code": {m: sha256_bytes((src / m).read_bytes()) for m in step_modules(root, step)},
            "files": declared_files(root, step),
            "packages": key_package_versions(),
            "folders": folder_inputs(values),
            "upstream": upstream}


def key_of(inputs: dict) -> str:
    return sha256_bytes(json.dumps(inputs, sort_keys=True, default=str).encode())


def stamp_path(results: Path, step: str) -> Path | None:
    """The step's stamp; a step whose folder was moved aside by an interrupted swap still counts."""
    for folder in (results / step, results / f".{step}.old"):
        if (folder / "stamp.json").exists():
            return folder / "stamp.json"
    return None


def _dict_changes(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def step_status(root: Path, results: Path, step: Step, values: dict) -> tuple[str, str]:
    """("fresh" | "stale" | "missing", why)."""
    path = stamp_path(results, step.name)
    if path is None:
        return "missing", "never run"
    stamp = read_json(path)
    now = key_inputs(root, results, step, values)
    if key_of(now) == stamp.get("key"):
        return "fresh", ""
    old = stamp.get("inputs", {})
    reasons = []
    if old.get("notebook") != now["notebook"]:
        reasons.append("notebook changed")
    if changed := _dict_changes(old.get("params", {}), now["params"]):
        reasons.append("parameters changed: " + ", ".join(changed))
    old_code = old.get("code")
    if not isinstance(old_code, dict):
        reasons.append("code changed (stamp from an older runner)")
    elif changed := _dict_changes(old_code, now["code"]):
        reasons.append("code changed: " + ", ".join(changed))
    if changed := _dict_changes(old.get("files", {}), now["files"]):
        reasons.append("reference changed: " + ", ".join(changed))
    old_pkgs = old.get("packages", {})
    for name in _dict_changes(old_pkgs, now["packages"]):
        reasons.append(f"{name} {old_pkgs.get(name)} -> {now['packages'].get(name)}")
    if changed := _dict_changes(old.get("folders", {}), now["folders"]):
        reasons.append("data folder changed: " + ", ".join(changed))
    for dep, k in now["upstream"].items():
        if k is None:
            reasons.append(f"{dep} has no results")
        elif old.get("upstream", {}).get(dep) != k:
            reasons.append(f"{dep} results changed")
    return "stale", "; ".join(reasons) or "key changed"


def explain(root: Path) -> list[tuple[str, list[str], list[str]]]:
    """For each package module: (module, steps importing it, steps a change to it makes stale)."""
    src = root / "src"
    imports = {s.name: set(step_modules(root, s)) for s in STEPS}
    rows = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        module = path.relative_to(src).as_posix()
        direct = [s.name for s in STEPS if module in imports[s.name]]
        stale = [s.name for s in STEPS if s.name in downstream(set(direct))]
        rows.append((module, direct, stale))
    return rows


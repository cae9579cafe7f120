"""The package in layers: the import-linter contract of pyproject.toml, and no imports inside functions.

The step cache follows every ``lpirc`` import, imports inside functions included (lpirc.runner.cache), so
a module's place in the layers decides which steps an edit to it reruns. An import tucked inside a
function is still an import: the layers contract (grimp) counts it, and this file forbids it outright
outside the modules of ``LAZY_BY_DESIGN`` below (the lazy TensorFlow import of lpirc.tfutil and a few
named others), so the imports a reader sees at the top of a module are all of them.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

# Imports inside functions that are there on purpose:
# - lpirc/tfutil.py: the package's lazy import of TensorFlow (TensorFlow, tf_keras, absl, and the model optimization
#   toolkit for QAT), so that importing the runner or a module below the networks does not import
#   TensorFlow, and only what trains with fake quantization imports the toolkit (2 s);
# - lpirc/grid.py: Dask (distributed), imported by the Dask schedulers only: a chapter's kernel and each
#   of its pool workers skip its half second;
# - lpirc/runner/cli.py: each command imports what it runs, so `lpirc status` starts without TensorFlow;
# - lpirc/runner/execute.py: papermill, imported when a step runs, not for `lpirc status`.
# The runner is in no step's cache key but lpirc/runner/context.py, which follows the rule.
LAZY_BY_DESIGN = {"lpirc/tfutil.py", "lpirc/grid.py", "lpirc/runner/cli.py", "lpirc/runner/execute.py"}
# Modules still importing inside functions, owned by another change under way; delete a name from here
# when its module is done (the layers contract already holds for them: their imports point downwards).
PENDING: set[str] = set()


def imports_inside_functions(path: Path) -> list[str]:
    """'line: module' of every import statement inside a function or lambda of ``path``."""
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                names = child.module if isinstance(child, ast.ImportFrom) else ", ".join(a.name for a in child.names)
                found.append(f"{child.lineno}: {names}")
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found


def test_the_layers_contract_holds(root):
    """`lint-imports` with the contract in pyproject.toml ([tool.importlinter]): every module of the
    package is in a layer (exhaustive) and imports only layers below its own."""
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail(f"{lint} not found: install requirements-test.txt (import-linter)")
    r = subprocess.run([str(lint), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
                       capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "1 kept, 0 broken" in r.stdout


def test_no_imports_inside_functions(root):
    src = root / "src"
    offenders = {}
    for path in sorted((src / "lpirc").rglob("*.py")):
        module = path.relative_to(src).as_posix()
        if module in LAZY_BY_DESIGN | PENDING:
            continue
        if found := imports_inside_functions(path):
            offenders[module] = found
    assert not offenders, ("import at the top of the module (TensorFlow through lpirc.tfutil.tensorflow()): "
                           f"{offenders}")


def test_the_checker_sees_nested_imports(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import os\n\ndef f():\n    import json\n    g = lambda: __import__('x')\n\n"
                 "class C:\n    def m(self):\n        from lpirc import data\n")
    assert imports_inside_functions(p) == ["4: json", "9: lpirc"]

"""Where the project and a profile's results live (the science and the runner both need this)."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project folder: $LPIRC_ROOT, else the nearest parent of the cwd with _toc.yml and src/lpirc,
    else the checkout this package was imported from."""
    if env := os.environ.get("LPIRC_ROOT"):
        return Path(env).resolve()
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "_toc.yml").exists() and (folder / "src" / "lpirc").exists():
            return folder
    return Path(__file__).resolve().parents[2]


def results_dir(profile: str, root: Path | None = None) -> Path:
    """results/<profile>/ of the project ($LPIRC_RESULTS_DIR while the runner executes a step)."""
    if env := os.environ.get("LPIRC_RESULTS_DIR"):
        return Path(env)
    return (root or project_root()) / "results" / profile
